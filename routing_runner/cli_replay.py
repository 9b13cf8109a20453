"""`routing-runner replay`: arguments in, library calls, report and exit code out.

Everything is checked before the first model call - the config, every transcript, the
selection, the provider, the session store and where the reports go. The Agents SDK is
imported only once there is something to run, so `--help` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_common import ConfigArg, fail, load, usage
from .errors import EXIT_INTERRUPTED, ConfigError, ReportError, RoutingRunnerError
from .private_files import UnsafePathError, check_existing
from .render import inert


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


def replay(
    config: ConfigArg,
    transcripts: Annotated[list[str], typer.Argument(
        help="Transcript files, folders (searched for *.yaml) or globs.", show_default=False)],
    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-j", min=1, max=256, metavar="N",
        help="Conversations run at once, over all workers.")] = 4,
    workers: Annotated[int, typer.Option(
        "--workers", "-w", min=0, max=64, metavar="N",
        help="Worker processes, each with its own event loop (0: one per CPU core).")] = 1,
    keyword: Annotated[list[str] | None, typer.Option(
        "-k", metavar="TEXT",
        help="Only transcripts whose name contains TEXT, ignoring case (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", "-t", metavar="TAG", help="Only transcripts with this tag (repeatable).")] = None,
    fail_fast: Annotated[bool, typer.Option(
        "--fail-fast", "-x", help="Stop at the first failing conversation.")] = False,
    repeat: Annotated[int, typer.Option(
        "--repeat", min=1, max=1000, metavar="N",
        help="Run each transcript N times and show each turn's pass rate.")] = 1,
    json_report: Annotated[str | None, typer.Option(
        "--json", metavar="FILE|-", help="Write a JSON report (- for stdout).")] = None,
    junit: Annotated[Path | None, typer.Option(
        "--junit", metavar="FILE", help="Write a JUnit XML report.")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show each conversation as chat would.")] = False,
) -> None:
    """Replay scripted conversations (transcripts) and check every reply; 1 if any fails."""
    from .schema import did_you_mean
    from .transcript import load_transcripts, select

    cfg = load(config).config
    try:
        every = load_transcripts(transcripts, cfg)
    except ConfigError as error:
        fail(error, " in the transcripts")
    chosen = select(every, keyword or (), tag or ())
    if not chosen:
        known_tags = sorted({t for transcript in every for t in transcript.tags})
        hints = "".join(did_you_mean(t, known_tags) for t in tag or ())
        asked = " ".join([*(f"-k {k!r}" for k in keyword or ()),
                          *(f"--tag {t!r}" for t in tag or ())])
        usage(f"no transcript matches {asked} among the {len(every)} loaded{hints}")
    if workers == 0:
        workers = os.cpu_count() or 1
    if verbose and workers > 1:
        usage("--verbose shows conversations as they run, which needs --workers 1")
    _check_writable(json_report, "--json")
    _check_writable(junit, "--junit")

    from .render import Style, use_colour
    from .replay import Replayer, check_stores, fit_concurrency, plan, run_replay
    from .report import Colours, Progress, summary, write_json, write_junit
    from .workers import available, run_in_workers, worker_count

    try:
        jobs = plan(chosen, repeat, os.environ)
        check_stores(jobs)
    except RoutingRunnerError as error:
        fail(error)
    if workers > 1 and not available():
        workers = 1
    fitted = fit_concurrency(jobs, concurrency, worker_count(workers, len(jobs), concurrency))
    if fitted.notice is not None:
        typer.echo(fitted.notice, err=True)
    concurrency = fitted.allowed
    # SIGTERM stops a replay as Ctrl-C does, also before and after the run: exit 130, no
    # death by signal (the run itself turns both into a clean stop).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # With the JSON report on stdout, everything meant for people goes to stderr.
    out = sys.stderr if json_report == "-" else sys.stdout
    styled = use_colour(out)
    typer.echo(f"replay: {len(jobs)} conversation{'s' if len(jobs) != 1 else ''} from "
               f"{len(chosen)} transcript{'s' if len(chosen) != 1 else ''} on {inert(str(config))} "
               f"(-j {concurrency}" + (f", {workers} workers)" if workers > 1 else ")"),
               err=True)
    typer.echo(f"model: {inert(jobs[0].provider.label)}", err=True)
    progress = Progress(sys.stderr, len(jobs), live=sys.stderr.isatty() and not verbose)
    try:
        if workers > 1:
            result = run_in_workers(jobs, cfg, workers=workers, concurrency=concurrency,
                                    fail_fast=fail_fast, on_start=progress.started,
                                    on_finish=progress.finished)
        else:
            replayer = Replayer(jobs, cfg, concurrency=concurrency, fail_fast=fail_fast,
                                on_start=progress.started,
                                on_finish=None if verbose else progress.finished,
                                show=out if verbose else None, style=Style(enabled=styled))
            result = run_replay(replayer)
    except RoutingRunnerError as error:
        fail(error)
    finally:
        progress.close()
    problems: list[str] = []
    try:
        out.write(("\n" if verbose else "") + summary(result, Colours(styled)))
        out.flush()
    except OSError as error:
        problems.append(_report_problem("the summary", "on stdout", error))
        if out is sys.stdout:
            _silence_stdout()
    if json_report is not None:
        try:
            write_json(result, json_report)
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
    raise typer.Exit(result.exit_code)

