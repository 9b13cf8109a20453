"""The benchmarked conversation, its agents, and the scripted model that answers it.

Both sides of every comparison run this scenario: the hand-written SDK loop
(`bench/baseline_sdk_loop.py`) builds these agents in Python, routing-runner reads them from
the YAML that `config_yaml` writes. The loopback server answers with `reply_for`, a pure
function of the request body, so any number of conversations can run at once against one
server without a per-conversation script.

Standard library only: the baseline imports this module, and it must not import routing_runner.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_NAME = "gpt-bench"
API_KEY = "sk-bench-not-a-key"


@dataclass(frozen=True)
class AgentSpec:
    """One agent of the scenario: instructions and the agents it can hand off to."""

    name: str
    instructions: str
    handoff_description: str | None
    handoffs: tuple[str, ...]


# The SDK's routing example (examples/agent_patterns/routing.py): a triage agent and three
# language agents. The language agents also hand off to each other and back to triage, as in
# configs/languages.yaml, so a user who switches language mid-chat is routed again.
AGENTS: tuple[AgentSpec, ...] = (
    AgentSpec("triage", "Handoff to the appropriate agent based on the language of the request.",
              None, ("french", "spanish", "english")),
    AgentSpec("french", "You only speak French.", "Speaks French.",
              ("spanish", "english", "triage")),
    AgentSpec("spanish", "You only speak Spanish.", "Speaks Spanish.",
              ("french", "english", "triage")),
    AgentSpec("english", "You only speak English.", "Speaks English.",
              ("french", "spanish", "triage")),
)
ENTRY = "triage"


@dataclass(frozen=True)
class Step:
    """One user message, the agent that must answer it and the model calls that takes."""

    message: str
    agent: str
    model_calls: int


# Five turns, three of them with a handoff (a tool call, then the text): 8 model calls.
CONVERSATION: tuple[Step, ...] = (
    Step("Hola, ¿cómo estás?", "spanish", 2),
    Step("¿Me ayudas con mi pedido, por favor?", "spanish", 1),
    Step("Je veux apprendre le français.", "french", 2),
    Step("Merci, c'est très clair.", "french", 1),
    Step("Could you answer me in English instead?", "english", 2),
)
TARGETS: Mapping[str, str] = {step.message: step.agent for step in CONVERSATION}

# Words per text reply: each word is one streamed delta, paced by the token rate.
REPLY_WORDS = 20
_FILLER = ("this is a scripted answer from the loopback model with a fixed number of words "
           "so that the token rate decides how long it streams").split()


def reply_text(agent: str) -> str:
    """The text reply of `agent`: exactly REPLY_WORDS words."""
    words = [f"[{agent}]", *_FILLER]
    return " ".join(words[:REPLY_WORDS])


def tool_name(agent: str) -> str:
    """The handoff tool the SDK (and routing-runner) names for `agent`."""
    return f"transfer_to_{agent}"


def _text_of(item: Mapping[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _speaker(body: Mapping[str, Any]) -> str:
    """Which agent is calling, from its instructions (each agent's are distinct)."""
    instructions = str(body.get("instructions") or "")
    for spec in AGENTS:
        if instructions.startswith(spec.instructions):
            return spec.name
    return "assistant"


def reply_for(body: Mapping[str, Any]) -> tuple[str, str]:
    """What the scripted model answers to a Responses API request body.

    `("tool", name)` when the latest item is a user message meant for another agent and the
    calling agent has the handoff tool to it; `("function", name)` for the tool turn's message
    when the agent has its tool; `("text", text)` otherwise (the handoff's
    output, or the right agent). Stateless, so concurrent conversations need no bookkeeping.
    """
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else {}
    if isinstance(last, dict) and last.get("role") == "user":
        target = TARGETS.get(_text_of(last))
        tools = {tool.get("name") for tool in body.get("tools") or () if isinstance(tool, dict)}
        if target is not None and tool_name(target) in tools:
            return "tool", tool_name(target)
        if _text_of(last) == TOOL_MESSAGE and TOOL_NAME in tools:
            return "function", TOOL_NAME
    return "text", reply_text(_speaker(body))


# The tool turn (bench/tool_turn.py): one agent, one function tool; the message makes the
# model call the tool with TOOL_ARGUMENTS, and its output makes it answer (two model calls).
TOOL_MESSAGE = "Where is my order A1?"
TOOL_NAME = "lookup_order"
TOOL_ARGUMENTS: Mapping[str, str] = {"order_id": "A1"}
TOOL_AGENT = AgentSpec("orders", "You look orders up with lookup_order.", None, ())


def model_seconds(latency: float, token_delay: float, steps: Sequence[Step] = CONVERSATION
                  ) -> float:
    """Exactly how long the scripted model takes to answer one whole conversation.

    Every call waits `latency` before its first byte; a text reply then paces its deltas
    `token_delay` apart (REPLY_WORDS - 1 gaps), a handoff call is a single delta.
    """
    calls = sum(step.model_calls for step in steps)
    return calls * latency + len(steps) * (REPLY_WORDS - 1) * token_delay


def model_calls(steps: Sequence[Step] = CONVERSATION) -> int:
    """Model calls one conversation makes."""
    return sum(step.model_calls for step in steps)


def config_yaml(base_url: str, database: Path, *, history_limit: int | str | None = None,
                provider: str = "openai") -> str:
    """The scenario as a routing-runner config on the loopback server (or offline);
    `history_limit` None leaves the default window, "all" sends the whole history."""
    lines = [
        "# Written by bench/scenario.py: the SDK routing example's agents.",
        "version: 1",
        "name: Bench routing",
        f"entry: {ENTRY}",
        "model:",
        f"  provider: {provider}",
        f"  name: {MODEL_NAME}",
    ]
    if provider != "offline":
        lines.append(f"  base_url: {base_url}")
    lines += ["session:", "  backend: sqlite", f"  path: {json.dumps(str(database))}"]
    if history_limit is not None:
        lines.append(f"  history_limit: {history_limit}")
    lines += ["run:", "  max_turns: 6", "agents:"]
    languages = {"french": "fr", "spanish": "es", "english": "en"}
    for spec in AGENTS:
        lines.append(f"  {spec.name}:")
        if spec.name in languages:
            lines.append(f"    language: {languages[spec.name]}")
        if spec.handoff_description:
            lines.append(f"    handoff_description: {json.dumps(spec.handoff_description)}")
        lines.append(f"    instructions: {json.dumps(spec.instructions)}")
        lines.append(f"    handoffs: [{', '.join(spec.handoffs)}]")
    return "\n".join(lines) + "\n"


def transcripts_yaml(names: Sequence[str], steps: Sequence[Step] = CONVERSATION) -> str:
    """One transcript per name, each the whole conversation, expecting the answering agent."""
    turns = "".join(f"  - user: {json.dumps(step.message, ensure_ascii=False)}\n"
                    f"    expect: {{agent: {step.agent}}}\n" for step in steps)
    return "---\n".join(f"name: {name}\nturns:\n{turns}" for name in names)


def history_items(count: int) -> tuple[list[dict[str, Any]], str]:
    """`count` stored items shaped as the SDK stores a routed conversation, and the last agent.

    Turns cycle through the scenario: the user's message, then for a handoff the tool call and
    its output, then the assistant's message. The oldest items are cut to leave exactly
    `count`, so the history ends on a whole turn but may start inside one, as a store whose
    early items were pruned would.
    """
    items: list[dict[str, Any]] = []
    turn = 0
    current = ENTRY
    while len(items) < count:
        step = CONVERSATION[turn % len(CONVERSATION)]
        items.append({"role": "user", "content": step.message})
        if step.agent != current:
            call_id = f"call_prefill_{turn:06d}"
            items.append({"type": "function_call", "id": f"fc_prefill_{turn:06d}",
                          "call_id": call_id, "name": tool_name(step.agent), "arguments": "{}",
                          "status": "completed"})
            items.append({"type": "function_call_output", "call_id": call_id,
                          "output": json.dumps({"assistant": step.agent})})
            current = step.agent
        items.append({"type": "message", "id": f"msg_prefill_{turn:06d}", "role": "assistant",
                      "status": "completed",
                      "content": [{"type": "output_text", "text": reply_text(step.agent),
                                   "annotations": [], "logprobs": []}]})
        turn += 1
    return items[len(items) - count:], current
