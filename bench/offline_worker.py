"""The offline model's detection time, start-up and memory, in fresh processes (bench.offline).

    python -m bench.offline_worker [--runs N] [--limit N]

In this process: build the 3-language config's detectors (timed), then time `detect` (CPU time)
on every held-out message. As child processes, side by side: `python -c "import agents"` and
`routing-runner chat configs/languages.yaml -m Hola` alternately, the wall time to exit of the
first and to the reply's first text of the second; and a 3-language chat fed a few typed
messages, for its peak RSS (ru_maxrss from wait4) against that of `import agents`. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.common import PYTHON, ROOT, ROUTING_RUNNER, median, percentile
from bench.offline import SETS, _messages

CONFIG = ROOT / "configs" / "languages.yaml"
CONFIGURED = ("en", "fr", "es")
# Typed into the memory run: short and long, configured and not, so every model is used.
TYPED = ("Hola", "Where is my package? It should have arrived on Monday.",
         "Olá, tudo bem?", "Ho un problema con il mio ordine", "merci beaucoup",
         "Je voudrais changer l'adresse de livraison de ma commande.", "quebrar centralismo",
         "¿Puedo hablar con una persona?", "/exit")
REPLY_MARK = b"[offline model"


def detection(limit: int | None) -> dict[str, Any]:
    """Build time of the detectors, what they load, and per-message detection time."""
    from routing_runner.runtime.offline.language_id import detect, detectors, prepare

    started = time.perf_counter()
    prepare(CONFIGURED, wait=True)
    build = time.perf_counter() - started
    wide, narrow, lists = detectors(CONFIGURED).loaded
    seconds = []
    for _set, _lang, text in _messages(limit):
        # CPU time: on a shared machine, wall time would count other processes' turns.
        started = time.process_time()
        detect(text, CONFIGURED)
        seconds.append(time.process_time() - started)
    return {"build_seconds": build,
            "loaded": {"trigram models": sorted(wide), "all n-gram models": sorted(narrow),
                       "word lists": sorted(lists)},
            "detect_ms": {"n": len(seconds), "median": 1000 * (median(seconds) or 0),
                          "p99": 1000 * (percentile(seconds, 0.99) or 0)}}


def _wait(process: subprocess.Popen[bytes]) -> float:
    """Reap `process`; its peak RSS in MiB."""
    _pid, _status, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return usage.ru_maxrss / 1024


def import_agents() -> tuple[float, float]:
    """Wall seconds and peak MiB of `python -c "import agents"`."""
    started = time.perf_counter()
    process = subprocess.Popen([PYTHON, "-c", "import agents"], cwd=ROOT)
    peak = _wait(process)
    return time.perf_counter() - started, peak


def first_token(env: dict[str, str]) -> float:
    """Seconds from starting `chat -m Hola` to the first text of its reply on stdout."""
    started = time.perf_counter()
    process = subprocess.Popen([ROUTING_RUNNER, "chat", str(CONFIG), "-m", "Hola"], cwd=ROOT,
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, bufsize=0)
    assert process.stdout is not None
    seen, at = b"", None
    while chunk := process.stdout.read(1):
        seen += chunk
        if at is None and seen.endswith(REPLY_MARK):
            at = time.perf_counter() - started
    _wait(process)
    if at is None:
        raise RuntimeError(f"chat -m Hola printed no reply: {seen[-500:]!r}")
    return at


def chat_peak(env: dict[str, str], typed: Sequence[str]) -> float:
    """Peak MiB of a 3-language chat the messages `typed` are sent to."""
    process = subprocess.Popen([ROUTING_RUNNER, "chat", str(CONFIG)], cwd=ROOT, env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    assert process.stdin is not None
    process.stdin.write("".join(f"{line}\n" for line in typed).encode())
    process.stdin.close()
    return _wait(process)


def main(argv: list[str] | None = None) -> None:
    """Measure and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="side-by-side start-up runs")
    parser.add_argument("--limit", type=int, help="messages per language and set")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    # Side by side: each chat run right after an `import agents` run, so load affects both.
    agents_seconds, agents_peaks, firsts = [], [], []
    for _ in range(args.runs):
        seconds, peak = import_agents()
        agents_seconds.append(seconds)
        agents_peaks.append(peak)
        firsts.append(first_token(env))
    result = {
        "import_agents_seconds": median(agents_seconds),
        "import_agents_peak_mib": max(agents_peaks),
        "first_token_seconds": median(firsts),
        "runs": {"import_agents": agents_seconds, "first_token": firsts},
        "chat_peak_mib": chat_peak(env, TYPED),
        "chat_messages": len(TYPED) - 1,
        "sets": list(SETS),
    }
    result |= detection(args.limit)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
