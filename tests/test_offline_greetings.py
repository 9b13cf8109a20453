"""What people type first, through the real `routing-runner chat`, with 3 and 14 languages.

Each greeting is a line typed into one chat: the agent that answers it must speak it, or be
triage when nobody does (issue 10's list). The chat runs in its own process, so the 14
languages' models it might load never weigh on the test process; the lexicon answers every
greeting, so none are loaded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

THREE = REPO / "configs" / "languages.yaml"
FOURTEEN = REPO / "tests" / "data" / "configs" / "fourteen-languages.yaml"
# Greeting → who answers with 3 languages (en, fr, es), and with 14. "hallo" is German and
# Dutch: with both configured it goes to the likelier, German.
GREETINGS = [
    ("Hola", "spanish", "spanish"), ("hello", "english", "english"),
    ("hi", "english", "english"), ("bonjour", "french", "french"),
    ("salut", "french", "french"), ("merci", "french", "french"),
    ("gracias", "spanish", "spanish"), ("thanks", "english", "english"),
    ("ciao", "triage", "italian"), ("olá", "triage", "portuguese"),
    ("hallo", "triage", "german"),
]


def _chat(config: Path, lines: list[str], data_home: Path) -> list[str]:
    """The agent that answered each line of a chat fed `lines`."""
    env = {**os.environ, "ROUTING_RUNNER_PROVIDER": "offline", "XDG_DATA_HOME": str(data_home)}
    done = subprocess.run([sys.executable, "-m", "routing_runner", "chat", str(config)],
                          input="".join(f"{line}\n" for line in lines), capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return re.findall(r"^(\w+): \[offline model", done.stdout, re.MULTILINE)


@pytest.mark.parametrize(("config", "column"), [(THREE, 1), (FOURTEEN, 2)],
                         ids=["3 languages", "14 languages"])
def test_every_greeting_reaches_the_agent_that_speaks_it_or_stays_with_triage(
        config: Path, column: int, isolated_environment: Path) -> None:
    # One chat, one greeting a line: each is read by the agent that answered the one before,
    # which hands it on (through triage when it cannot reach the speaker itself).
    answered = _chat(config, [g[0] for g in GREETINGS], isolated_environment)
    assert answered == [g[column] for g in GREETINGS]
