"""`routing-runner replay`: arguments in, library calls, report and exit code out.

Everything is checked before the first model call - the config, every transcript, the
selection, the provider, the session store and where the reports go. The Agents SDK is
imported only once there is something to run, so `--help` stays fast. How the batch runs
(worker processes or one event loop) is `replay.batch.run_batch`'s decision.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from routing_runner.errors import EXIT_INTERRUPTED, ConfigError, ReportError, RoutingRunnerError
from routing_runner.private_files import UnsafePathError, check_existing
from routing_runner.wording import Style, count, inert, use_colour

from .common import ConfigArg, fail, load, usage

if TYPE_CHECKING:
    from routing_runner.config.model import Config
    from routing_runner.replay.baseline import Comparison
    from routing_runner.replay.cassettes import Cassettes
    from routing_runner.replay.plan import Job
    from routing_runner.replay.results import BatchResult
    from routing_runner.replay.script import Transcript

Transcripts = Annotated[list[str], typer.Argument(
    help="Transcript files, folders (searched for *.yaml) or globs.", show_default=False)]
Concurrency = Annotated[int, typer.Option(
    "--concurrency", "-j", min=1, max=256, metavar="N",
    help="Conversations run at once, over all workers.")]
Workers = Annotated[int, typer.Option(
    "--workers", "-w", min=0, max=64, metavar="N",
    help="Worker processes, each with its own event loop (0: one per CPU core).")]
Keywords = Annotated[list[str] | None, typer.Option(
    "-k", metavar="TEXT",
    help="Only transcripts whose name contains TEXT, ignoring case (repeatable).")]
Tags = Annotated[list[str] | None, typer.Option(
    "--tag", "-t", metavar="TAG", help="Only transcripts with this tag (repeatable).")]
FailFast = Annotated[bool, typer.Option(
    "--fail-fast", "-x", help="Stop at the first failing conversation.")]
Repeat = Annotated[int, typer.Option(
    "--repeat", min=1, max=1000, metavar="N",
    help="Run each transcript N times and show each turn's pass rate.")]
JsonReport = Annotated[str | None, typer.Option(
    "--json", metavar="FILE|-", help="Write a JSON report (- for stdout).")]
JUnitReport = Annotated[Path | None, typer.Option(
    "--junit", metavar="FILE", help="Write a JUnit XML report.")]
Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Show each conversation as chat would.")]
CassetteDir = Annotated[Path | None, typer.Option(
    "--cassettes", metavar="DIR",
    help="Record each transcript's model calls into DIR, or replay them from it.")]
RecordMode = Annotated[str | None, typer.Option(
    "--record-mode", metavar="MODE",
    help="With --cassettes: once (record what has no cassette, the default), new_episodes "
         "(record what is missing), none (replay only; a call not recorded fails its turn), "
         "all (record everything again).")]
Baseline = Annotated[Path | None, typer.Option(
    "--baseline", metavar="FILE",
    help="Compare with an earlier --json report: route drift, new failures, fixed turns, "
         "significant pass-rate drops.")]
FailOn = Annotated[str | None, typer.Option(
    "--fail-on", metavar="any|new",
    help="With --baseline: any (the default) exits 1 for any failure or regression; new only "
         "for what got worse since the baseline.")]
RequireJudge = Annotated[bool, typer.Option(
    "--require-judge", help="Fail expect.judge checks that cannot run (no judge model) "
                            "instead of reporting them as not run.")]
OnlyFailing = Annotated[Path | None, typer.Option(
    "--only-failing", metavar="FILE",
    help="Run only the transcripts that failed in an earlier --json report.")]
RerecordFailing = Annotated[bool, typer.Option(
    "--rerecord-failing",
    help="With --cassettes: replay (--record-mode none unless given), then record again the "
         "cassettes of the transcripts that failed, and report that run.")]


def _check_writable(target: str | Path | None, option: str) -> None:
    if target is None or str(target) == "-":
        return
    folder = Path(target).parent
    if not folder.is_dir():
        usage(f"{option} {target}: the folder {folder} does not exist")
    try:
        check_existing(Path(target), regular=False)
    except UnsafePathError as error:
        usage(f"{option} {error}")


def _silence_stdout() -> None:
    # What failed to reach stdout stays buffered; Python would fail again flushing it at exit
    # and print a traceback of its own. /dev/null takes it instead.
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


def _report_problem(option: str, target: object, error: Exception) -> str:
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return f"{option} {target}: cannot write the report: {reason}"


def replay(config: ConfigArg, transcripts: Transcripts, concurrency: Concurrency = 4,
           workers: Workers = 1, keyword: Keywords = None, tag: Tags = None,
           fail_fast: FailFast = False, repeat: Repeat = 1, json_report: JsonReport = None,
           junit: JUnitReport = None, verbose: Verbose = False,
           cassettes: CassetteDir = None, record_mode: RecordMode = None,
           baseline: Baseline = None, fail_on: FailOn = None,
           only_failing: OnlyFailing = None, require_judge: RequireJudge = False,
           rerecord_failing: RerecordFailing = False) -> None:
    """Replay scripted conversations (transcripts) and check every reply; 1 if any fails."""
    from routing_runner.replay.batch import check_batch_options

    cfg, chosen = _transcripts(config, transcripts, keyword, tag, only_failing)
    previous = _read_baseline(baseline, fail_on)
    workers = workers or os.cpu_count() or 1
    check_batch_options(workers=workers, verbose=verbose)
    _check_writable(json_report, "--json")
    _check_writable(junit, "--junit")

    from routing_runner.replay.batch import batch_shape, run_batch
    from routing_runner.replay.plan import check_stores, plan

    shelf, environment = _cassettes(cassettes, record_mode, chosen, rerecord_failing)
    jobs = plan(chosen, repeat, environment)
    check_stores(jobs)
    workers, fitted = batch_shape(jobs, workers=workers, concurrency=concurrency)
    if fitted.notice is not None:
        typer.echo(fitted.notice, err=True)
    concurrency = fitted.allowed
    # SIGTERM stops a replay as Ctrl-C does, also before and after the run: exit 130, no
    # death by signal (the run itself turns both into a clean stop).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # With the JSON report on stdout, everything meant for people goes to stderr.
    out = sys.stderr if json_report == "-" else sys.stdout
    styled = use_colour(out, os.environ)
    typer.echo(f"replay: {count(len(jobs), 'conversation')} from "
               f"{count(len(chosen), 'transcript')} on {inert(str(config))} "
               f"(-j {concurrency}" + (f", {workers} workers)" if workers > 1 else ")"),
               err=True)
    typer.echo(f"model: {inert(jobs[0].provider.label)}", err=True)
    _describe(shelf)
    run = partial(run_batch, config=cfg, workers=workers, concurrency=concurrency,
                  fail_fast=fail_fast, style=Style(enabled=styled), require_judge=require_judge)
    result = _run(run, jobs, shelf, out if verbose and not rerecord_failing else None)
    if rerecord_failing and shelf is not None:
        result = _rerecord(result, run, shelf, chosen, repeat, out if verbose else None)
    _cassette_report(result, out)
    compared = _compare(result, previous, baseline)
    _report(result, out, Style(styled), verbose=verbose, json_report=json_report, junit=junit)
    raise typer.Exit(_verdict(result, compared, out, fail_on))


def _run(run: Callable[..., BatchResult], jobs: list[Job], shelf: Cassettes | None,
         show: TextIO | None) -> BatchResult:
    """`jobs` run by `run` (`run_batch` with the run's options), progress on stderr."""
    from routing_runner.replay.report import Progress

    progress = Progress(sys.stderr, len(jobs), live=sys.stderr.isatty() and show is None)
    try:
        return run(jobs, progress=progress, show=show, cassettes=shelf)
    finally:
        progress.close()


def _rerecord(result: BatchResult, run: Callable[..., BatchResult], shelf: Cassettes,
              chosen: list[Transcript], repeat: int, show: TextIO | None) -> BatchResult:
    """The run again with the cassettes of the transcripts that failed in `result` recorded
    anew (the others replayed as they are); `result` itself when none failed."""
    from routing_runner.replay.cassettes import failing_transcripts
    from routing_runner.replay.plan import plan

    failing = failing_transcripts(result.conversations)
    if result.stopped == "interrupted" or not failing:
        return result
    typer.echo(f"re-recording {count(len(failing), 'failing transcript')}: "
               f"{inert(', '.join(failing))}", err=True)
    try:
        jobs = plan(chosen, repeat)  # the real environment: the model is called this time
    except RoutingRunnerError as error:
        fail(error)
    return _run(run, jobs, shelf.rerecording(failing), show)


def _cassettes(folder: Path | None, record_mode: str | None, transcripts: list[Transcript],
               rerecord_failing: bool) -> tuple[Cassettes | None, dict[str, str]]:
    """The cassettes of the run (None without --cassettes) and the environment providers are
    resolved in: with replay only, a key variable left unset gets a placeholder."""
    from routing_runner.replay.cassettes import (
        RECORD_MODES,
        plan_cassettes,
        replay_environment,
    )

    if folder is None:
        if record_mode is not None:
            usage("--record-mode needs --cassettes DIR")
        if rerecord_failing:
            usage("--rerecord-failing needs --cassettes DIR")
        return None, dict(os.environ)
    if rerecord_failing and record_mode == "all":
        usage("--rerecord-failing with --record-mode all: all records every transcript "
              "again already; drop one of them")
    mode = record_mode or ("none" if rerecord_failing else "once")
    if mode not in RECORD_MODES:
        usage(f"--record-mode {mode}: choose one of {', '.join(RECORD_MODES)}")
    try:
        shelf = plan_cassettes(folder, mode, transcripts)
    except RoutingRunnerError as error:
        fail(error)
    return shelf, replay_environment(os.environ, shelf.replay_only,
                                     [t.config for t in transcripts])


def _describe(shelf: Cassettes | None) -> None:
    if shelf is not None:
        typer.echo(inert(shelf.describe()), err=True)


def _transcripts(config: Path, arguments: list[str], keyword: list[str] | None,
                 tag: list[str] | None, only_failing: Path | None,
                 ) -> tuple[Config, list[Transcript]]:
    """The config and the transcripts chosen to run, their guardrail functions imported."""
    from routing_runner.config.guardrails import check_guardrail_imports
    from routing_runner.replay.load import choose, load_transcripts

    loaded = load(config, imports=True)
    try:
        every = load_transcripts(arguments, loaded)
    except ConfigError as error:
        fail(error, " in the transcripts")
    chosen = _only_failing(choose(every, keyword or (), tag or ()), only_failing)
    check_guardrail_imports([t.config for t in chosen])  # overrides may name others
    return loaded.config, chosen


def _only_failing(chosen: list[Transcript], report: Path | None) -> list[Transcript]:
    """The chosen transcripts that failed in `report` (all of them without one); exit 0 when
    none did: there is nothing to re-run."""
    if report is None:
        return chosen
    from routing_runner.replay.baseline import only_failing, read_report

    try:
        failing = only_failing(chosen, read_report(report, "--only-failing"))
    except RoutingRunnerError as error:
        fail(error)
    if not failing:
        typer.echo(f"replay: no chosen transcript failed in {inert(str(report))}; "
                   "nothing to run", err=True)
        raise typer.Exit(0)
    return failing


def _read_baseline(baseline: Path | None, fail_on: str | None) -> dict[str, object] | None:
    if fail_on is not None and fail_on not in ("any", "new"):
        usage(f"--fail-on {fail_on}: choose any or new")
    if baseline is None:
        if fail_on is not None:
            usage("--fail-on needs --baseline FILE")
        return None
    from routing_runner.replay.baseline import read_report

    try:
        return read_report(baseline, "--baseline")
    except RoutingRunnerError as error:
        fail(error)


def _compare(result: BatchResult, previous: dict[str, object] | None,
             baseline: Path | None) -> Comparison | None:
    if previous is None:
        return None
    from routing_runner.replay.baseline import compare
    from routing_runner.replay.files import to_json

    return compare(previous, to_json(result), str(baseline))


def _verdict(result: BatchResult, compared: Comparison | None, out: TextIO,
             fail_on: str | None) -> int:
    """Print the comparison with the baseline; the exit code it leads to."""
    from routing_runner.replay.baseline import exit_code

    if compared is not None:
        out.write("\n".join(inert(line) for line in compared.lines()) + "\n")
        out.flush()
    return exit_code(result.exit_code, compared, fail_on or "any")


def _cassette_report(result: BatchResult, out: TextIO) -> None:
    """Model calls per transcript from cassettes, and the judged turns not judged."""
    from routing_runner.replay.cassettes import cassette_lines
    from routing_runner.replay.judge import not_run_lines

    for title, lines in (("cassettes (model calls):", cassette_lines(result.conversations)),
                         ("not run (not passed either):", not_run_lines(result.conversations))):
        if lines:
            out.write(title + "\n" + "\n".join(inert(line) for line in lines) + "\n")


def _report(result: BatchResult, out: TextIO, style: Style, *, verbose: bool,
            json_report: str | None, junit: Path | None) -> None:
    """The summary on `out`, then the report files; a report that cannot be written is one
    line and exit 3 (after the summary), unless the run was interrupted (130 stays)."""
    from routing_runner.replay.files import write_json, write_junit
    from routing_runner.replay.report import summary

    problems: list[str] = []
    try:
        out.write(("\n" if verbose else "") + summary(result, style))
        out.flush()
    except OSError as error:
        problems.append(_report_problem("the summary", "on stdout", error))
        if out is sys.stdout:
            _silence_stdout()
    if json_report is not None:
        try:
            write_json(result, json_report, sys.stdout)
        except (OSError, RoutingRunnerError) as error:
            problems.append(_report_problem("--json", json_report, error))
            if json_report == "-":
                _silence_stdout()
    if junit is not None:
        try:
            write_junit(result, junit)
        except (OSError, RoutingRunnerError) as error:
            problems.append(_report_problem("--junit", junit, error))
    if problems and result.exit_code != EXIT_INTERRUPTED:
        fail(ReportError("; ".join(problems)))
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
