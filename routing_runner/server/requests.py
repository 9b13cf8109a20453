"""What the OpenAI-compatible endpoints share: model ids, message text, the history rule.

A request names its conversation (`X-Session-Id`, `conversation`, `previous_response_id`):
then only its last user message is new. Without one, a stock client has resent the whole
conversation: the earlier messages become the new conversation's history. Every refusal is
one line saying what is wrong (400), or that a message is over the limit (413).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routing_runner.config.model import Config
from routing_runner.runtime.events import TurnEnded
from routing_runner.user_text import encodable, message_problem
from routing_runner.wording import did_you_mean

from .problems import HttpProblem, bad_request, not_found, too_large

SESSION_HEADER = "X-Session-Id"
# Roles a history may hold; system and developer messages are skipped (the agents have their
# own instructions), tool messages have no place in a routed conversation.
_SPOKEN = {"user", "assistant"}
_SKIPPED = {"system", "developer"}
_TEXT_PARTS = {"text", "input_text", "output_text"}


def slug(name: str) -> str:
    """A config's name as a model id: lower case, runs of other characters made '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "bot"


@dataclass(frozen=True)
class Models:
    """The model ids a server answers to: the config's (routing as configured) and one per
    agent (a new conversation starts at that agent)."""

    config: Config

    @property
    def routed(self) -> str:
        """The id of normal routing."""
        return slug(self.config.title)

    def ids(self) -> list[str]:
        """Every id, the routed one first."""
        return [self.routed, *(a for a in self.config.agents if a != self.routed)]

    def first_agent(self, model: Any) -> str | None:
        """The agent `model` starts a new conversation at (None: the entry agent); 404 when
        the id is unknown."""
        if not isinstance(model, str) or not model:
            raise bad_request("'model' must be a string: one of GET /v1/models", "model")
        if model == self.routed:
            return None
        if model in self.config.agents:
            return model
        raise not_found(f"unknown model {model!r}{did_you_mean(model, self.ids())}; "
                        f"this server answers to {', '.join(self.ids())}", "model_not_found")


def body_object(body: Any) -> Mapping[str, Any]:
    """The request's JSON object, or 400."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def flag(body: Mapping[str, Any], key: str) -> bool:
    """A boolean field (False when absent), or 400."""
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise bad_request(f"'{key}' must be true or false", key)
    return value


def message_text(content: Any, where: str) -> str:
    """The text of a message's `content`: a string or a list of text parts; 400 otherwise."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS or \
                    not isinstance(part.get("text"), str):
                raise bad_request(f"{where}: only text parts are supported "
                                  f"(type 'text' or 'input_text' with a 'text' string)", where)
            texts.append(part["text"])
        return "".join(texts)
    raise bad_request(f"{where}: 'content' must be a string or a list of text parts", where)


def split_messages(messages: Sequence[Any], where: str, continuing: bool,
                   max_chars: int) -> tuple[str, list[tuple[str, str]]]:
    """The new user message and (for a new conversation) the history before it."""
    spoken: list[tuple[str, str]] = []
    for number, item in enumerate(messages):
        place = f"{where}[{number}]"
        if not isinstance(item, dict):
            raise bad_request(f"{place} must be an object with 'role' and 'content'", place)
        role = item.get("role")
        if role in _SKIPPED:
            continue
        if role not in _SPOKEN:
            raise bad_request(f"{place}: role {role!r} is not supported; send 'user' and "
                              "'assistant' messages", place)
        spoken.append((str(role), message_text(item.get("content"), place)))
    if not spoken or spoken[-1][0] != "user":
        raise bad_request(f"{where} must end with a 'user' message: the one to answer", where)
    if continuing:
        spoken = spoken[-1:]  # the conversation is stored: only the last message is new
    for _role, text in spoken:
        check_text(text, max_chars)
    message = spoken.pop()[1]
    return encodable(message), [(role, encodable(text)) for role, text in spoken]


def check_text(text: str, max_chars: int) -> None:
    """413 above the configured length, 400 for a message that cannot be sent."""
    if len(text) > max_chars:
        raise too_large(f"a message is {len(text):,} characters long; this server takes at "
                        f"most {max_chars:,} (serve.max_message_chars)")
    problem = message_problem(encodable(text))
    if problem is not None:
        raise bad_request(problem, "messages")


def route(ended: TurnEnded) -> list[str]:
    """The agents a turn went through, the one that answered last."""
    if not ended.handoffs:
        return [ended.agent]
    return [ended.handoffs[0].source, *(h.target for h in ended.handoffs)]


def routing(session_id: str, ended: TurnEnded) -> dict[str, Any]:
    """The `routing` object of a chat completion."""
    return {"agent": ended.agent, "route": route(ended), "session_id": session_id}


def failure(message: str, interrupted: bool) -> HttpProblem:
    """A turn that failed: the model provider (502) or the turn timeout (504)."""
    if interrupted:
        return HttpProblem(504, message, kind="server_error", code="turn_timeout")
    return HttpProblem(502, message, kind="server_error", code="model_failure")
