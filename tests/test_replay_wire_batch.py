"""A batch of hundreds of conversations against the loopback OpenAI-format server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from routing_runner_testing.wire_server import Reply, Text, ToolCall, WireServer

from .conftest import run_cli_with_few_files, write_config

CONVERSATIONS = 200


def _answer(body: dict[str, Any]) -> Reply:
    """Triage hands off to Spanish; Spanish answers. Each request stands alone (stateless)."""
    if body["instructions"].startswith("Hand off"):
        return ToolCall("transfer_to_spanish")
    return Text("Claro, te ayudo con eso.", chunk_size=4)


def test_hundreds_of_transcripts_run_32_at_a_time_over_the_wire(tmp_path: Path) -> None:
    transcripts = tmp_path / "transcripts"
    transcripts.mkdir()
    documents = [
        f"name: wire {i}\nturns:\n"
        f"  - user: Hola, necesito ayuda número {i}.\n"
        "    expect: {route: [triage, spanish], contains: te ayudo}\n"
        "  - user: Gracias.\n"
        "    expect: {route: [spanish], model_calls: 1}\n"
        for i in range(CONVERSATIONS)]
    (transcripts / "batch.yaml").write_text("---\n".join(documents), encoding="utf-8")
    # Latency on every request: conversations overlap, so 32 are really open at once.
    with WireServer(responder=_answer, latency=0.02) as server:
        config = write_config(tmp_path, (
            f"entry: triage\nmodel: {{provider: openai, base_url: '{server.base_url}'}}\n"
            f"session: {{path: {tmp_path / 'sessions.db'}}}\n"
            "agents:\n"
            "  triage: {instructions: Hand off., handoffs: [spanish]}\n"
            "  spanish: {language: es, instructions: Responde., handoffs: [triage]}\n"))
        # At most 256 open files: holding every conversation's session and connection at
        # once would not fit.
        done = run_cli_with_few_files("replay", str(config), str(transcripts), "-j", "32",
                                      env={**os.environ, "OPENAI_API_KEY": "sk-test"})
        requests = len(server.requests)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert f"replay: {CONVERSATIONS} passed, 0 failed, 0 errors ({CONVERSATIONS} " \
           f"conversations, {2 * CONVERSATIONS} turns)" in done.stdout
    assert requests == 3 * CONVERSATIONS  # handoff, answer, answer: nothing retried or lost
