"""7. OpenTelemetry's cost per turn: off against the code before telemetry existed, and on.

Three sides run the overhead scenario's conversations (bench.rr_worker replay) against the
same loopback server, in fresh processes taking turns, the order rotating each repetition:
`before` is the tree of the commit before `runtime/telemetry.py` was added (exported with
`git archive`), `off` and `on` today's code, `on` sending every span over OTLP/HTTP to a
loopback collector in this process. The ratios are medians of the per-repetition ratios of
CPU time per turn.
"""

from __future__ import annotations

import http.server
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    BenchError,
    Loopback,
    Section,
    at_most,
    bench_env,
    median,
    ratio,
    run_json,
    scratch,
)
from bench.scenario import config_yaml, transcripts_yaml

OFF_TARGET = 1.02
ADDED = "routing_runner/runtime/telemetry.py"


@dataclass(frozen=True)
class TelemetrySettings:
    """How much to measure."""

    repetitions: int = 5
    conversations: int = 4
    latency: float = 0.05
    token_delay: float = 0.002


class _Collector(http.server.ThreadingHTTPServer):
    """Accepts OTLP/HTTP posts and counts them (the spans are not decoded: not measured)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Accept)
        self.posts = 0


class _Accept(http.server.BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def _collector() -> Iterator[_Collector]:
    server = _Collector()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _tree_before(folder: Path) -> Path:
    """The repository as it was just before telemetry was added, exported into `folder`."""
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H",
                            "-1", "--", ADDED], capture_output=True, text=True, check=False)
    if added.returncode != 0 or not added.stdout.strip():
        raise BenchError(f"no commit adds {ADDED}: the code before telemetry is unknown")
    archive = folder / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", f"{added.stdout.strip()}^"],
                       stdout=out, check=True)
    tree = folder / "before"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def _side(root: Path, server: Loopback, folder: Path, settings: TelemetrySettings,
          **env: str) -> dict[str, Any]:
    config = folder / "bench.yaml"
    config.write_text(config_yaml(server.base_url, folder / "rr.db"), encoding="utf-8")
    transcripts = folder / "conversations.yaml"
    names = ["warmup-1", *(f"measured-{n}" for n in range(settings.conversations))]
    transcripts.write_text(transcripts_yaml(names), encoding="utf-8")
    environ = {k: v for k, v in bench_env(folder, **env).items()
               if k != "OTEL_EXPORTER_OTLP_ENDPOINT" or "OTEL_EXPORTER_OTLP_ENDPOINT" in env}
    # The child imports routing_runner from `root`: its working folder comes first on its path.
    environ["PYTHONPATH"] = str(root)
    return run_json([PYTHON, "-m", "bench.rr_worker", "replay", str(config), str(transcripts),
                     "--warmup-prefix", "warmup"], environ, cwd=root)


def run(settings: TelemetrySettings) -> Section:
    """Interleaved repetitions; CPU per turn off/before (bounded) and on/off (reported)."""
    section = Section("9 OpenTelemetry")
    started = time.perf_counter()
    cpu: dict[str, list[float]] = {"before": [], "off": [], "on": []}
    with scratch("telemetry-before") as base, Loopback(settings.latency,
                                                        settings.token_delay) as server, \
            _collector() as collector:
        before = _tree_before(base)
        endpoint = f"http://127.0.0.1:{collector.server_port}"
        sides = ["before", "off", "on"]
        for repetition in range(settings.repetitions):
            for side in sides[repetition % 3:] + sides[:repetition % 3]:
                with scratch(f"telemetry-{side}") as folder:
                    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint} if side == "on" else {}
                    result = _side(before if side == "before" else ROOT, server, folder,
                                   settings, **env)
                cpu[side].append(result["cpu"] / result["turns"])
        posts = collector.posts
    section.raw = {"settings": settings.__dict__, "cpu_per_turn": cpu, "otlp_posts": posts}
    if posts == 0:
        raise BenchError("telemetry on sent nothing to the collector")
    off = median(cpu["off"])
    off_ratio = median(ratio(o, b) for o, b in zip(cpu["off"], cpu["before"], strict=True))
    on_ratio = median(ratio(o, f) for o, f in zip(cpu["on"], cpu["off"], strict=True))
    section.add("CPU per turn, telemetry off", _ms(off), "ms",
                baseline=_ms(median(cpu["before"])), ratio=off_ratio,
                target=f"<= {OFF_TARGET:g}", verdict=at_most(off_ratio, OFF_TARGET),
                note="baseline: the code before telemetry")
    section.add("CPU per turn, telemetry on", _ms(median(cpu["on"])), "ms", baseline=_ms(off),
                ratio=on_ratio, verdict="info",
                note=f"OTLP/HTTP to a loopback collector ({posts} posts)")
    section.seconds = time.perf_counter() - started
    return section


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
