"""`replay -j N` within the open-file limit: lowered to what fits (said once), never failing.

Each conversation holds files while it runs (a SQLite lock file and connections, a socket to
the model), so more conversations at once than the limit allows used to fail with "Too many
open files". These run the real entry point in a process with a low RLIMIT_NOFILE.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .conftest import run_cli_with_few_files
from .test_replay_batch import _batch

CONVERSATIONS = 120
NOTICE = re.compile(r"^replay: -j 256 lowered to (\d+): the open-file limit \(256, ulimit -n\) "
                    r"leaves room for (\d+) conversations at once(?: in each of 2 workers)?, "
                    r"5 files each; raise the limit to run more$", re.MULTILINE)


def _passed_all(done: subprocess.CompletedProcess[str], count: int = CONVERSATIONS) -> None:
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert f"replay: {count} passed, 0 failed, 0 errors ({count} conversations, " \
           f"{2 * count} turns)" in done.stdout
    assert "Too many open files" not in done.stdout + done.stderr


def test_a_j_beyond_the_open_file_limit_is_lowered_once_and_every_conversation_passes(
        tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, CONVERSATIONS)
    done = run_cli_with_few_files("replay", str(config), str(transcripts), "-j", "256",
                                  open_files=256)
    _passed_all(done)
    (notice,) = NOTICE.findall(done.stderr)
    allowed, each = map(int, notice)
    assert allowed == each and 8 <= allowed < 256 // 5
    assert f"(-j {allowed})" in done.stderr  # the banner shows what really runs


def test_with_workers_each_worker_gets_a_share_that_fits_the_limit(tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, CONVERSATIONS)
    done = run_cli_with_few_files("replay", str(config), str(transcripts), "-j", "256",
                                  "-w", "2", open_files=256)
    _passed_all(done)
    (notice,) = NOTICE.findall(done.stderr)
    allowed, each = map(int, notice)
    assert allowed == 2 * each and 8 <= each < 256 // 5
    assert f"(-j {allowed}, 2 workers)" in done.stderr


def test_the_soft_limit_is_raised_when_the_hard_limit_allows_and_nothing_is_lowered(
        tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 48)
    # 32 conversations of 5 files need more than a soft limit of 64, far less than 4096.
    done = run_cli_with_few_files("replay", str(config), str(transcripts), "-j", "32",
                                  open_files=64, hard_limit=4096)
    _passed_all(done, 48)
    assert "lowered" not in done.stderr
    assert "(-j 32)" in done.stderr
