"""Run the benchmarks and print one table: routing-runner against its baselines and limits.

    python bench/run.py                      # everything: about 8 minutes on 2 cores
    python bench/run.py --quick              # tiny sizes: checks the bench itself works
    python bench/run.py --only overhead,startup --json results.json

Sections: overhead (1, per turn, against a hand-written SDK loop), throughput (2, batches
against the model and CPU limits), startup (3), long (4, conversations with long histories),
offline (5, the embedded offline model's routing), serve (6, `serve` against in-process replay,
and many open streams), cassettes (7, replaying recorded model calls against the offline model's
CPU), tools (8, a turn with one function-tool call, against a hand-written SDK loop with the
same tool), telemetry (9, OpenTelemetry off against the code before it, and on). Every model call
goes to a loopback server
speaking the OpenAI wire format (routing_runner_testing/wire_server.py) in its own process, with
a simulated latency and token rate, so the model's share of every figure is known exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (`python bench/run.py`): make the repository root importable, so that
    # `bench` resolves as it does for `python -m bench.run` (the loopback server comes with the
    # installed package: routing_runner_testing).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cassettes, offline, overhead, serve, startup, telemetry, throughput, tool_turn
from bench import long_history as long
from bench.common import CORES, BenchError, Row, Section

SECTIONS = ("overhead", "throughput", "startup", "long", "offline", "serve", "cassettes", "tools",
            "telemetry")


def _number(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 1 else f"{value:.3f}"


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table, one block per section."""
    header = ("measure", "routing-runner", "baseline/limit", "ratio", "target", "", "note")
    lines: list[tuple[str, ...]] = []
    current = None
    for row in rows:
        if row.section != current:
            current = row.section
            lines.append((f"[{row.section}]",))
        unit = f" {row.unit}" if row.unit and row.value is not None else ""
        base_unit = f" {row.unit}" if row.unit and isinstance(row.baseline, float | int) else ""
        lines.append((
            "  " + row.measure,
            _number(row.value) + unit,
            _number(row.baseline) + base_unit if row.baseline is not None else "",
            f"{row.ratio:.2f}" if row.ratio is not None else "",
            row.target,
            "" if row.verdict == "info" else row.verdict,
            row.note,
        ))
    widths = [max(len(line[i]) for line in [header, *lines] if len(line) > i)
              for i in range(len(header) - 1)]
    out = []
    for line in [header, *lines]:
        if len(line) == 1:
            out.append(line[0])
            continue
        cells = [cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                 for i, cell in enumerate(line[:-1])]
        out.append("  ".join(cells) + ("  " + line[-1] if line[-1] else ""))
    rule = "-" * max(len(line) for line in out)
    return "\n".join([out[0], rule, *out[1:]])


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(
            __doc__.splitlines()[1:]))
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, to check that the bench runs (seconds, not minutes)")
    parser.add_argument("--only", metavar="LIST", default=",".join(SECTIONS),
                        help=f"comma-separated sections among {', '.join(SECTIONS)}")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write the results here")
    parser.add_argument("--latency", type=float, metavar="MS", default=50.0,
                        help="simulated model latency before the first byte (default 50 ms)")
    parser.add_argument("--token-rate", type=float, metavar="PER_S", default=500.0,
                        help="streamed deltas per second (default 500; 0: no pacing)")
    parser.add_argument("--repetitions", type=int, metavar="N",
                        help="overhead/startup repetitions (default 5; quick 1)")
    parser.add_argument("--conversations", type=int, metavar="N",
                        help="largest batch for throughput (default 1000; quick 4)")
    parser.add_argument("--concurrency", metavar="LIST",
                        help="throughput concurrencies (default 1,8,64,128; quick 2)")
    parser.add_argument("--workers", type=int, metavar="N", default=CORES,
                        help=f"replay worker processes for the batch rows (default {CORES})")
    parser.add_argument("--history-sizes", metavar="LIST",
                        help="long: stored items (default 10,100,1000,10000; quick 10)")
    parser.add_argument("--history-limit", type=int, default=200, metavar="N",
                        help="long: session.history_limit of the windowed runs (default 200)")
    parser.add_argument("--offline-limit", type=int, metavar="N",
                        help="offline: messages per language and set (default all; quick 5)")
    parser.add_argument("--streams", type=int, metavar="N",
                        help="serve: streams open at once (default 1000; quick 10)")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; "
                     f"choose among {', '.join(SECTIONS)}")
    return args


def _ints(text: str | None, default: Sequence[int]) -> list[int]:
    return [int(part) for part in text.split(",")] if text else list(default)


def plan(args: argparse.Namespace) -> list[tuple[str, Callable[[], Section]]]:
    """The sections to run, with their sizes, in order."""
    quick = args.quick
    latency = args.latency / 1000
    token_delay = 1 / args.token_rate if args.token_rate > 0 else 0.0
    repetitions = args.repetitions or (1 if quick else 5)
    steps: dict[str, Callable[[], Section]] = {
        "overhead": lambda: overhead.run(overhead.OverheadSettings(
            repetitions=repetitions, conversations=1 if quick else 4,
            latency=latency, token_delay=token_delay)),
        "throughput": lambda: throughput.run(throughput.ThroughputSettings(
            conversations=args.conversations or (4 if quick else 1000),
            concurrency=_ints(args.concurrency, (2,) if quick else (1, 8, 64, 128)),
            workers=args.workers, latency=latency, token_delay=token_delay, quick=quick)),
        "startup": lambda: startup.run(startup.StartupSettings(
            repetitions=repetitions, latency=latency, token_delay=token_delay, quick=quick)),
        "long": lambda: long.run(long.LongSettings(
            sizes=_ints(args.history_sizes, (10,) if quick else (10, 100, 1000, 10000)),
            history_limit=args.history_limit, turns=1 if quick else 3, quick=quick)),
        "offline": lambda: offline.run(offline.OfflineSettings(
            limit=args.offline_limit or (5 if quick else None))),
        "serve": lambda: serve.run(serve.ServeSettings(
            repetitions=1 if quick else 3, conversations=1 if quick else 4, latency=latency,
            token_delay=token_delay, streams=args.streams or (10 if quick else 1000))),
        "cassettes": lambda: cassettes.run(cassettes.CassetteSettings(
            repetitions=repetitions, conversations=1 if quick else 8)),
        "tools": lambda: tool_turn.run(tool_turn.ToolTurnSettings(
            repetitions=repetitions, conversations=1 if quick else 4, turns=1 if quick else 5,
            latency=latency, token_delay=token_delay)),
        "telemetry": lambda: telemetry.run(telemetry.TelemetrySettings(
            repetitions=repetitions, conversations=1 if quick else 4,
            latency=latency, token_delay=token_delay)),
    }
    chosen = args.only.split(",")
    return [(name, steps[name]) for name in SECTIONS if name in chosen]


def _section(name: str, step: Callable[[], Section]) -> Section:
    """Run one section; a failure becomes a row saying so rather than ending the run."""
    print(f"bench: {name}...", file=sys.stderr, flush=True)
    try:
        return step()
    except BenchError as error:
        print(f"bench: {name} failed: {error}", file=sys.stderr, flush=True)
        section = Section(name)
        section.add("failed", str(error).splitlines()[0][:100], verdict="MISS")
        section.raw = {"error": str(error)}
        return section


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections, print the table, write JSON.

    Exit code 2 when a section could not be measured, 1 when a target was missed (full runs
    only: quick sizes are too small for the targets to mean anything), else 0.
    """
    args = _arguments(argv)
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "command": " ".join(["python bench/run.py", *(argv if argv is not None
                                                      else sys.argv[1:])]),
        "python": platform.python_version(), "machine": platform.machine(), "cores": CORES,
        "load_before": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    steps = plan(args)
    # Quick runs only check that the bench works: their sections run side by side. Full runs
    # take one section at a time, or they would measure each other.
    with ThreadPoolExecutor(max_workers=len(steps) if args.quick else 1) as pool:
        futures = [pool.submit(_section, name, step) for name, step in steps]
        sections = [future.result() for future in futures]
    failed = [s.name for s in sections if "error" in s.raw]
    meta["load_after"] = os.getloadavg()
    meta["seconds"] = time.perf_counter() - started
    rows = [row for section in sections for row in section.rows]
    print(table(rows))
    missed = [row for row in rows if row.verdict == "MISS"]
    pending = [row for row in rows if row.verdict == "pending"]
    loaded = [row for row in rows if row.verdict == "load"]
    print(f"\n{len(rows)} rows, {len(missed)} missed, {len(pending)} pending, "
          f"{len(loaded)} not scored (taken under foreign load); "
          f"{meta['seconds']:.0f} s on {CORES} cores, load {meta['load_before'][0]:.1f} -> "
          f"{meta['load_after'][0]:.1f}; {meta['command']}")
    if args.json is not None:
        payload = {"meta": meta, "sections": {s.name: s.as_json() for s in sections}}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.quick:
        print("quick run: sizes too small for the targets; verdicts are indicative only")
    if failed:
        return 2
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
