"""The machine's foreign load: CPU that neither the bench nor its children nor the simulated
model used, sampled around each measurement, so a figure taken on a busy machine is flagged
rather than scored.

/proc/stat counts every core's busy time; the bench's own share is its process, the children it
has waited for (each measured side is one) and the loopback server. What remains, over the
wall time, is how many cores something else kept busy. `os.getloadavg` is recorded beside it
for the reader, but it counts the bench's own runnable processes and lags by a minute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import CLOCK_TICKS, CORES, children_cpu

# A pair taken while other work kept more than this many cores busy is not scored: on this
# 2-core machine, half a core taken by others moves a ratio by more than the targets allow.
BUSY_CORES = 0.5


def _busy_seconds() -> float:
    """CPU seconds every core has been busy since boot (idle and iowait excluded)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(part) for part in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system + children_cpu()


@dataclass
class LoadSample:
    """Foreign cores busy during one measurement, and the load average before and after."""

    foreign_cores: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0

    @property
    def busy(self) -> bool:
        """Whether others took enough CPU for the measurement not to be scored."""
        return self.foreign_cores > BUSY_CORES


class ForeignLoad:
    """`with ForeignLoad(server_cpu) as sample:` fills `sample` when the block ends.

    `server_cpu` returns the simulated model's CPU so far (it is the bench's, not foreign).
    """

    def __init__(self, server_cpu: Callable[[], float] | None = None) -> None:
        self.server_cpu = server_cpu
        self.sample = LoadSample()

    def _ours(self) -> float:
        return _own_seconds() + (self.server_cpu() if self.server_cpu else 0.0)

    def __enter__(self) -> LoadSample:
        self.sample.load_before = os.getloadavg()[0]
        self._start = (time.perf_counter(), _busy_seconds(), self._ours())
        return self.sample

    def __exit__(self, *exc: object) -> None:
        wall, busy, ours = (now - then for now, then in zip(
            (time.perf_counter(), _busy_seconds(), self._ours()), self._start, strict=True))
        self.sample.foreign_cores = min(max((busy - ours) / wall, 0.0), float(CORES)) \
            if wall > 0 else 0.0
        self.sample.load_after = os.getloadavg()[0]


def describe(samples: list[LoadSample]) -> str:
    """`foreign load 0.1-1.3 cores, 2 of 5 pairs busy (load avg 3.2-7.9)`."""
    if not samples:
        return ""
    cores = [s.foreign_cores for s in samples]
    loads = [value for s in samples for value in (s.load_before, s.load_after)]
    busy = sum(s.busy for s in samples)
    return (f"foreign load {min(cores):.1f}-{max(cores):.1f} cores, {busy} of {len(samples)} "
            f"pairs busy (load avg {min(loads):.1f}-{max(loads):.1f})")
