"""What every benchmark shares: the simulated model's process, child processes, statistics
and the result rows the table is made of.

Measurements run in child processes started from the repository root (`python -m bench.X`),
so each starts cold, imports what it needs, and cannot be helped or hurt by what an earlier
measurement left in memory.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from bench.scenario import API_KEY

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The console script installed next to the interpreter: what a user runs.
ROUTING_RUNNER = str(Path(PYTHON).with_name("routing-runner"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CORES = os.cpu_count() or 1


class BenchError(RuntimeError):
    """A measurement could not be taken (a child failed, a reply was wrong)."""


# "load": the figure was taken while other work kept the machine busy (bench.load): not scored.
Verdict = Literal["ok", "MISS", "pending", "info", "load"]


@dataclass
class Row:
    """One line of the results table.

    `value` is routing-runner's figure, `baseline` the hand-written SDK loop's (or the limit it
    is compared with), `ratio` value / baseline where that is what the target bounds.
    """

    section: str
    measure: str
    value: float | str | None
    unit: str = ""
    baseline: float | str | None = None
    ratio: float | None = None
    target: str = ""
    verdict: Verdict = "info"
    note: str = ""


@dataclass
class Section:
    """The rows of one benchmark and the raw measurements behind them (for --json)."""

    name: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, measure: str, value: float | str | None, unit: str = "", **kwargs: Any) -> Row:
        """Append a row to this section."""
        row = Row(self.name, measure, value, unit, **kwargs)
        self.rows.append(row)
        return row

    def as_json(self) -> dict[str, Any]:
        """Rows and raw data, JSON-ready."""
        return {"rows": [asdict(row) for row in self.rows], "raw": self.raw,
                "seconds": self.seconds}


def at_most(value: float | None, limit: float) -> Verdict:
    """`ok` when `value` <= `limit` (a missing value cannot pass)."""
    return "ok" if value is not None and value <= limit else "MISS"


def at_least(value: float | None, limit: float) -> Verdict:
    """`ok` when `value` >= `limit`."""
    return "ok" if value is not None and value >= limit else "MISS"


# ---------------------------------------------------------------------------------------------
# Statistics


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are present, None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def percentile(values: Iterable[float], share: float) -> float | None:
    """The `share` quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, None when either is missing or the baseline is zero."""
    if value is None or not baseline:
        return None
    return value / baseline


# ---------------------------------------------------------------------------------------------
# Child processes


def bench_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of every measured child: a fake key, no colour, its own data folder.

    The key only satisfies `provider: openai`; every request goes to the loopback server.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_BASE_URL", "ROUTING_RUNNER_PROVIDER", "PYTHONPROFILEIMPORTTIME")}
    env.update(OPENAI_API_KEY=API_KEY, NO_COLOR="1", OPENAI_AGENTS_DISABLE_TRACING="1",
               XDG_DATA_HOME=str(folder / "data"), PYTHONPATH=str(ROOT),
               PYTHONDONTWRITEBYTECODE="")
    env.update(extra)
    return env


def run_json(args: Sequence[str], env: Mapping[str, str],
             timeout: float = 600, cwd: Path = ROOT) -> dict[str, Any]:
    """Run a child that prints one JSON object on its last line; return it parsed."""
    done = subprocess.run(args, cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(args[:4])}... exited {done.returncode}:\n"
                         f"{done.stderr[-2000:]}{done.stdout[-500:]}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise BenchError(f"{' '.join(args[:4])}... printed nothing:\n{done.stderr[-2000:]}")
    result = json.loads(lines[-1])
    if not isinstance(result, dict):
        raise BenchError(f"{' '.join(args[:4])}... printed {lines[-1][:200]!r}, not an object")
    return result


def children_cpu() -> float:
    """CPU seconds of every child process waited for so far (grandchildren included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds a live process has used so far (user + system), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # Fields after the command: state is [0], so utime/stime (14th/15th overall) are [11]/[12].
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Loopback:
    """The simulated model (bench.loopback) running in a process of its own."""

    def __init__(self, latency: float, token_delay: float) -> None:
        self.latency = latency
        self.token_delay = token_delay
        self._process = subprocess.Popen(
            [PYTHON, "-m", "bench.loopback", "--latency", str(latency),
             "--token-delay", str(token_delay)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.kill()
            raise BenchError("the loopback server did not start")
        self.base_url: str = json.loads(line)["base_url"]
        self.pid = self._process.pid

    def cpu_seconds(self) -> float:
        """CPU the server has used so far: the simulated model's cost on this machine."""
        return process_cpu(self.pid)

    def close(self) -> dict[str, Any]:
        """Stop the server; return what it reports (requests served, script errors)."""
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        stdin.close()
        report = stdout.readline()
        self._process.wait(timeout=30)
        stdout.close()
        return json.loads(report) if report else {}

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process.poll() is None:
            self.close()


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder for configs, transcripts and session files."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-") as folder:
        yield Path(folder)


# ---------------------------------------------------------------------------------------------
# Watching a process tree (peak memory, open files)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(_children(current))
    return found


def _pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages split between sharers, so forked workers are not
    counted twice for what they inherited. Falls back to RSS where smaps_rollup is missing."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError):
        return 0


def _open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class TreeSampler:
    """Samples a process and its descendants: peak total memory (PSS) and open descriptors."""

    # Reading smaps_rollup costs about 1 ms per process: twice a second keeps the sampler's
    # own CPU (taken from the cores being measured) near 0.5 % of one core.
    def __init__(self, pid: int, period: float = 0.5) -> None:
        self.pid = pid
        self.period = period
        self.peak_bytes = 0
        self.peak_files = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _tree(self.pid)
            self.peak_processes = max(self.peak_processes, len(pids))
            self.peak_bytes = max(self.peak_bytes, sum(_pss_bytes(p) for p in pids))
            self.peak_files = max(self.peak_files, sum(_open_files(p) for p in pids))
            self._stop.wait(self.period)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Watched:
    """A child process run to its end while sampled."""

    returncode: int
    wall: float
    cpu: float
    peak_mb: float
    peak_files: int
    processes: int
    stdout: str
    stderr: str


def run_watched(args: Sequence[str], env: Mapping[str, str], timeout: float = 1200) -> Watched:
    """Run a child to its end: wall time, CPU of it and its children, peak memory and files."""
    cpu = children_cpu()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, cwd=ROOT, env=dict(env), stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL)
        sampler = TreeSampler(process.pid)
        try:
            returncode = process.wait(timeout=timeout)
        finally:
            sampler.stop()
            if process.poll() is None:
                process.kill()
                process.wait()
        wall = time.perf_counter() - started
        return Watched(returncode, wall, children_cpu() - cpu, sampler.peak_bytes / 2**20,
                       sampler.peak_files, sampler.peak_processes, _read(out), _read(err))


def _read(stream: IO[str]) -> str:
    stream.seek(0)
    return stream.read()
