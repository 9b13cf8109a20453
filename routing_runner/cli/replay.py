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
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from routing_runner.errors import EXIT_INTERRUPTED, ConfigError, ReportError, RoutingRunnerError
from routing_runner.private_files import UnsafePathError, check_existing
from routing_runner.wording import Style, count, inert, use_colour

from .common import ConfigArg, fail, load, usage

if TYPE_CHECKING:
    from routing_runner.replay.results import BatchResult

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
           junit: JUnitReport = None, verbose: Verbose = False) -> None:
    """Replay scripted conversations (transcripts) and check every reply; 1 if any fails."""
    from routing_runner.replay.batch import check_batch_options
    from routing_runner.replay.load import choose, load_transcripts

    loaded = load(config, imports=True)
    cfg = loaded.config
    try:
        every = load_transcripts(transcripts, loaded)
    except ConfigError as error:
        fail(error, " in the transcripts")
    chosen = choose(every, keyword or (), tag or ())
    workers = workers or os.cpu_count() or 1
    check_batch_options(workers=workers, verbose=verbose)
    _check_writable(json_report, "--json")
    _check_writable(junit, "--junit")

    from routing_runner.replay.batch import batch_shape, run_batch
    from routing_runner.replay.plan import check_stores, plan
    from routing_runner.replay.report import Progress

    jobs = plan(chosen, repeat, os.environ)
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
    progress = Progress(sys.stderr, len(jobs), live=sys.stderr.isatty() and not verbose)
    try:
        result = run_batch(jobs, cfg, workers=workers, concurrency=concurrency,
                           fail_fast=fail_fast, progress=progress,
                           show=out if verbose else None, style=Style(enabled=styled))
    finally:
        progress.close()
    _report(result, out, Style(styled), verbose=verbose, json_report=json_report, junit=junit)
    raise typer.Exit(result.exit_code)


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
