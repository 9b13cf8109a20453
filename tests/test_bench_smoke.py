"""The benchmark entry point runs end to end with tiny sizes and prints its table.

This checks the bench itself (child processes, the loopback server, the pty chat, every
section's rows), not the figures: quick sizes are far too small for the targets. The real
run is `python bench/run.py` (see bench/run.py); it is not part of the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # processes or builds: `-m "not slow"` skips it

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("1 per-turn overhead", "2 batch throughput", "3 start-up", "4 long conversations",
            "5 offline model", "6 serve", "7 cassettes", "8 tool turn",
            "9 OpenTelemetry")


def test_quick_bench_prints_every_section_and_writes_json(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "bench/run.py", "--quick", "--json", str(report)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    header = done.stdout.splitlines()[0].split()
    assert header[:3] == ["measure", "routing-runner", "baseline/limit"]
    for section in SECTIONS:
        assert f"[{section}]" in done.stdout
    assert "quick run" in done.stdout
    sections = json.loads(report.read_text(encoding="utf-8"))["sections"]
    assert list(sections) == list(SECTIONS)
    for name, section in sections.items():
        assert section["rows"], name
        assert "error" not in section["raw"], section["raw"].get("error")
