"""`routing-runner replay`: arguments in, library calls, report and exit code out.

Everything is checked before the first model call - the config, every transcript, the
selection, the provider, the session store and where the reports go. The Agents SDK is
imported only once there is something to run, so `--help` stays fast. How the batch runs
(worker processes or one event loop) is `replay.batch.run_batch`'s decision.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from routing_runner.errors import ConfigError
from routing_runner.wording import Style, count, use_colour

from .common import ConfigArg, fail, load, usage

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


def replay(config: ConfigArg, transcripts: Transcripts, concurrency: Concurrency = 4,
           workers: Workers = 1, keyword: Keywords = None, tag: Tags = None,
           fail_fast: FailFast = False, repeat: Repeat = 1, json_report: JsonReport = None,
           junit: JUnitReport = None, verbose: Verbose = False) -> None:
    """Replay scripted conversations (transcripts) and check every reply; 1 if any fails."""
    from routing_runner.replay.batch import check_batch_options
    from routing_runner.replay.load import choose, load_transcripts

    loaded = load(config)
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

    from routing_runner.replay.batch import run_batch
    from routing_runner.replay.files import write_json, write_junit
    from routing_runner.replay.plan import check_stores, plan
    from routing_runner.replay.report import Progress, summary

    jobs = plan(chosen, repeat, os.environ)
    check_stores(jobs)
    # With the JSON report on stdout, everything meant for people goes to stderr.
    out = sys.stderr if json_report == "-" else sys.stdout
    styled = use_colour(out, os.environ)
    typer.echo(f"replay: {count(len(jobs), 'conversation')} from "
               f"{count(len(chosen), 'transcript')} on {config} "
               f"(-j {concurrency}" + (f", {workers} workers)" if workers > 1 else ")"),
               err=True)
    typer.echo(f"model: {jobs[0].provider.label}", err=True)
    progress = Progress(sys.stderr, len(jobs), live=sys.stderr.isatty() and not verbose)
    try:
        result = run_batch(jobs, cfg, workers=workers, concurrency=concurrency,
                           fail_fast=fail_fast, progress=progress,
                           show=out if verbose else None, style=Style(enabled=styled))
    finally:
        progress.close()
    out.write(("\n" if verbose else "") + summary(result, Style(styled)))
    out.flush()
    if json_report is not None:
        write_json(result, json_report, sys.stdout)
    if junit is not None:
        write_junit(result, junit)
    raise typer.Exit(result.exit_code)
