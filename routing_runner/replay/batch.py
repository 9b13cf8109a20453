"""Running a planned batch: in worker processes when asked and possible, else on this process.

`run_batch` is what `routing-runner replay` calls once everything is checked: the command
parses arguments and renders; this module decides how the jobs run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from routing_runner.config.model import Config
from routing_runner.errors import UserInputError
from routing_runner.wording import Style

from .cassettes import Cassettes
from .plan import Concurrency, Job, fit_concurrency
from .report import Progress
from .results import BatchResult
from .runner import Replayer, run_replay
from .workers import available, run_in_workers, worker_count


def check_batch_options(*, workers: int, verbose: bool) -> None:
    """UserInputError for options that cannot run together."""
    if verbose and workers > 1:
        raise UserInputError("--verbose shows conversations as they run, which needs --workers 1")


def batch_shape(jobs: Sequence[Job], *, workers: int,
                concurrency: int) -> tuple[int, Concurrency]:
    """The worker processes and the conversations at once a batch runs with: one process where
    the platform cannot fork, and -j lowered to what the open-file limit allows (`notice`)."""
    if workers > 1 and not available():
        workers = 1
    return workers, fit_concurrency(jobs, concurrency,
                                    worker_count(workers, len(jobs), concurrency))


def run_batch(jobs: Sequence[Job], config: Config, *, workers: int, concurrency: int,
              fail_fast: bool, progress: Progress, show: TextIO | None = None,
              style: Style | None = None, cassettes: Cassettes | None = None,
              require_judge: bool = False) -> BatchResult:
    """Run `jobs`: across `workers` forked processes when more than one is asked for and the
    platform can fork, else on one event loop here (`show` renders each conversation live).

    `progress` hears about each conversation; with `show` the conversations are rendered as
    they run instead, so progress only counts starts.
    """
    check_batch_options(workers=workers, verbose=show is not None)
    if workers > 1 and available():
        return run_in_workers(jobs, config, workers=workers, concurrency=concurrency,
                              fail_fast=fail_fast, on_start=progress.started,
                              on_finish=progress.finished, cassettes=cassettes,
                              require_judge=require_judge)
    replayer = Replayer(jobs, config, concurrency=concurrency, fail_fast=fail_fast,
                        on_start=progress.started,
                        on_finish=None if show is not None else progress.finished,
                        show=show, style=style, cassettes=cassettes,
                        require_judge=require_judge)
    return run_replay(replayer)
