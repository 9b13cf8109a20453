"""The one reader of the SDK: its stream events into our events, its exceptions into one line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import openai
from agents.exceptions import AgentsException, MaxTurnsExceeded, ModelBehaviorError

from routing_runner.errors import RoutingRunnerError
from routing_runner.stores.items import output_text
from routing_runner.wording import count, redact_url, redact_urls

from .events import AgentChanged, Event, TextDelta, ToolCalled, TurnEnded
from .offline.model import OFFLINE_MODEL_NAME
from .providers import endpoint_hint
from .retries import error_chain, error_code, provider_error, quota_exhausted
from .structured import JsonSchemaOutput
from .usage import Tokens, response_tokens


@dataclass
class StreamTranslator:
    """Turns SDK stream events into ours, tracking the speaking agent and the turn's totals."""

    agent: str
    text_parts: list[str] = field(default_factory=list)
    handoffs: list[AgentChanged] = field(default_factory=list)
    model_calls: int = 0
    tool_calls: int = 0
    pending_handoff_tool: str = ""
    response_open: bool = False
    stream_error: str | None = None
    # The speaking agent answers JSON (an output schema): shown whole at the end, not streamed.
    json_answer: bool = False
    # The speaking agent's answer is checked by output guardrails: shown once they passed.
    hold_text: bool = False
    usage: dict[str, Tokens] = field(default_factory=dict)
    tools: list[ToolCalled] = field(default_factory=list)
    pending_tools: dict[str, ToolCalled] = field(default_factory=dict)

    def translate(self, event: Any) -> list[Event]:
        """Our events for one SDK `StreamEvent` (often none)."""
        kind = getattr(event, "type", None)
        if kind == "raw_response_event":
            data_type = getattr(event.data, "type", None)
            if data_type == "response.output_text.delta":
                self.text_parts.append(event.data.delta)
                held = self.json_answer or self.hold_text
                return [] if held else [TextDelta(self.agent, event.data.delta)]
            if data_type == "response.created":
                self.model_calls += 1
                self.response_open = True
                # Only the last model call's text is the reply; earlier text preceded a handoff.
                self.text_parts.clear()
            elif data_type in ("response.completed", "response.incomplete", "response.failed"):
                self.response_open = False
                self._count_usage(event.data.response)
            elif data_type == "error":
                self.stream_error = f"{event.data.code}: {event.data.message}"
            return []
        if kind == "agent_updated_stream_event":
            self.agent = event.new_agent.name
            self.json_answer = isinstance(event.new_agent.output_type, JsonSchemaOutput)
            self.hold_text = bool(event.new_agent.output_guardrails)
            return []
        if kind == "run_item_stream_event":
            if event.name == "handoff_requested":
                self.pending_handoff_tool = _tool_name(event.item.raw_item)
                return []
            if event.name == "handoff_occured":
                changed = AgentChanged(event.item.source_agent.name, event.item.target_agent.name,
                                       self.pending_handoff_tool)
                self.handoffs.append(changed)
                self.agent = changed.target
                return [changed]
            if event.name == "tool_called":
                self.tool_calls += 1
                return self._tool_called(event.item.raw_item)
            if event.name == "tool_output":
                return self._tool_output(event.item.raw_item)
        return []

    def held(self) -> list[Event]:
        """The text answer held back for output guardrails, now that they passed."""
        text = "".join(self.text_parts)
        return [TextDelta(self.agent, text)] if self.hold_text and not self.json_answer \
            and text else []

    def _count_usage(self, response: Any) -> None:
        words = getattr(response, "model", None) == OFFLINE_MODEL_NAME
        tokens = response_tokens(getattr(response, "usage", None), words=words)
        self.usage[self.agent] = self.usage.get(self.agent, Tokens()) + tokens

    def _tool_called(self, raw_item: Any) -> list[Event]:
        called = ToolCalled(self.agent, _tool_name(raw_item), str(_field(raw_item, "arguments")))
        call_id = _field(raw_item, "call_id")
        if _field(raw_item, "type") == "function_call" and call_id:
            self.pending_tools[str(call_id)] = called  # shown with its output
            return []
        self.tools.append(called)
        return [called]

    def _tool_output(self, raw_item: Any) -> list[Event]:
        called = self.pending_tools.pop(str(_field(raw_item, "call_id")), None)
        if called is None:
            return []
        # What the model is sent back (the SDK's error output, for a failed call).
        done = replace(called, output=output_text(_field(raw_item, "output")))
        self.tools.append(done)
        return [done]

    def ended(self) -> TurnEnded:
        """The TurnEnded event for what was seen."""
        text = "".join(self.text_parts)
        return TurnEnded(self.agent, text, tuple(self.handoffs), self.model_calls,
                         self.tool_calls, json.loads(text) if self.json_answer else None,
                         usage=dict(self.usage), tools=tuple(self.tools))


def _field(raw_item: Any, name: str) -> Any:
    value = raw_item.get(name) if isinstance(raw_item, dict) else getattr(raw_item, name, None)
    return "" if value is None else value


def _tool_name(raw_item: Any) -> str:
    return str(_field(raw_item, "name") or _field(raw_item, "type"))


def describe_failure(exc: BaseException, max_turns: int, retries: int = 0,
                     seen: StreamTranslator | None = None) -> str:
    """One line saying what failed, the request id where there is one, and what to do.

    `seen` is what the turn's stream showed before the failure: an `error` event the
    provider sent, or a response that never completed, explain the SDK's generic errors.
    """
    text = _describe(exc, max_turns)
    if isinstance(exc, ModelBehaviorError) and seen is not None:
        if seen.stream_error:
            text = f"the provider reported an error in its stream: {seen.stream_error}; /retry"
        elif seen.response_open:
            text = "the provider's stream ended before the response was complete; /retry"
    if retries:
        text += f" (after {count(retries, 'retry', 'retries')})"
    return redact_urls(" ".join(text.split()))


def _describe(exc: BaseException, max_turns: int) -> str:
    import openai

    if isinstance(exc, RoutingRunnerError):
        return str(exc)  # already written for the user (a store failure, say)
    refused = provider_error(exc)
    if refused is not None:
        return str(refused)  # raised by our HTTP client's check, wrapped by the openai client
    unreachable = next((e for e in error_chain(exc) if isinstance(e, openai.APIConnectionError)),
                       None)
    if unreachable is not None:
        # LiteLLM wraps a refused connection in an HTTP 500 error; it is still no answer.
        exc = unreachable
    if isinstance(exc, MaxTurnsExceeded):
        return (f"no agent answered within run.max_turns={max_turns} model calls "
                "(a handoff loop?); raise run.max_turns or check the handoffs")
    if isinstance(exc, openai.APIStatusError):
        request = f", request id {exc.request_id}" if exc.request_id else ""
        what = f"HTTP {exc.status_code}{request}"
        if exc.status_code == 401:
            return f"the provider rejected the API key ({what}); check the key variable"
        if quota_exhausted(exc):
            return f"the provider's quota is exhausted ({what}); check the plan and billing"
        if exc.status_code == 429:
            return f"the provider is rate limiting ({what}); wait, then /retry"
        if exc.status_code == 404:
            return _not_found(exc, what)
        if exc.status_code >= 500:
            return f"the provider failed ({what}): {exc.message}; /retry later"
        return f"the provider refused the request ({what}): {exc.message}"
    if isinstance(exc, openai.APITimeoutError):
        return "the model did not answer in time (model.timeout); /retry, or raise model.timeout"
    if isinstance(exc, openai.APIConnectionError):
        # The innermost cause says what happened ("[Errno 111] Connection refused").
        *_, cause = error_chain(exc)
        detail = f": {cause}" if cause is not exc else ""
        return f"cannot reach the model provider{detail}; is it running? then /retry"
    if isinstance(exc, openai.APIError):
        return f"the provider's stream failed: {exc.message}; /retry"
    if isinstance(exc, json.JSONDecodeError):
        return f"the provider sent a malformed stream (not JSON): {exc}; /retry"
    if isinstance(exc, ModelBehaviorError):
        return f"the model answered something the runner cannot use: {exc}"
    if isinstance(exc, AgentsException):
        return f"the run failed: {exc}"
    return f"the run failed: {type(exc).__name__}: {exc}"


def _not_found(exc: Any, what: str) -> str:
    """A 404: an unknown model, or - far more often - a base_url that is not the API's."""
    if error_code(exc) == "model_not_found":
        return f"the provider does not know the model ({what}): {exc.message}; check model.name"
    url = str(exc.response.request.url)
    return f"nothing answers at {redact_url(url)} ({what}); {endpoint_hint(url)}"


def retry_after(error: openai.APIStatusError) -> float | None:
    """The delay a rate-limit response asks for (retry-after-ms or retry-after seconds)."""
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except ValueError:
            continue
    return None
