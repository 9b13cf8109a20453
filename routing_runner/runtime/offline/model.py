"""The embedded offline model: a real Agents SDK `Model` that routes by language, no network.

It exists so that `chat` and `replay` work out of the box and so tests can run the whole SDK
path. It is not a language model: it decides, deterministically, between two moves.

- Route: an agent with handoffs detects the language of the latest user message and calls the
  handoff tool of the target that speaks it (a real function call the SDK executes).
- Use a tool: an agent with tools calls one the latest message names (`offline.tool_use`
  has the rule, with how arguments are found).
- Answer: otherwise it answers in its own language, quoting the latest message and the first
  one and counting the user's messages, which shows the history reached the model, and
  quoting what its tools returned this turn.
- Answer with JSON: an agent with an output schema answers a JSON object that fits it
  (`offline.answers`: the schema's own values first, the latest message for free text). A
  guardrail's classifier trips when the text holds a word its instructions quote.

Given the same conversation it always produces the same output, streamed in small deltas.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass

from agents import Handoff, Model, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.items import TResponseInputItem, TResponseStreamEvent
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from routing_runner.config.model import Config
from routing_runner.runtime.providers import ResolvedProvider
from routing_runner.runtime.structured import VerdictOutput
from routing_runner.stores.items import is_user_message, message_text

from .answers import example, verdict
from .language_id import detect, prepare, primary_subtag
from .nested import nested_user_messages
from .phrases import PHRASES, language_name, phrases_for
from .tool_use import this_turn, tool_call, tool_results

OFFLINE_MODEL_NAME = "offline"
QUOTE_LIMIT = 80


@dataclass(frozen=True)
class AgentProfile:
    """What the offline model knows of an agent: its name and language."""

    name: str
    language: str | None


def preload(config: Config, providers: Iterable[ResolvedProvider]) -> None:
    """Build the language detectors now, when an agent runs offline (before forking workers)."""
    if any(m.provider == "offline" for p in providers for m in p.models.values()):
        prepare([a.language for a in config.agents.values() if a.language], wait=True)


def _items(input: str | list[TResponseInputItem]) -> list[TResponseInputItem]:
    return [{"role": "user", "content": input}] if isinstance(input, str) else list(input)


def _message(items: list[TResponseInputItem], text: str) -> ResponseOutputMessage:
    msg_id = "msg_offline_" + hashlib.sha256(f"{len(items)}:{text}".encode()).hexdigest()[:16]
    return ResponseOutputMessage(
        type="message", id=msg_id, role="assistant", status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def _user_messages(items: Sequence[TResponseInputItem]) -> list[str]:
    messages: list[str] = []
    for item in items:
        nested = nested_user_messages(item)
        if nested is not None:
            messages += nested
        elif is_user_message(item):
            messages.append(message_text(item))
    return messages


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= QUOTE_LIMIT else flat[: QUOTE_LIMIT - 1] + "…"


class OfflineModel(Model):
    """The offline model of one agent, knowing every agent's language."""

    def __init__(self, agent: AgentProfile, profiles: Mapping[str, AgentProfile]) -> None:
        self.agent = agent
        self.profiles = dict(profiles)

    @property
    def languages(self) -> list[str]:
        """The configured languages it routes between."""
        return [p.language for p in self.profiles.values() if p.language]

    def warm_up(self, *, wait: bool = False) -> None:
        """Start loading the language models it needs (on a thread unless `wait`).

        The first message waits only if it needs them: the lexicon answers "hola" at once.
        """
        prepare(self.languages, wait=wait)

    def decide(self, input: str | list[TResponseInputItem], handoffs: Sequence[Handoff],
               settings: ModelSettings) -> ResponseFunctionToolCall | ResponseOutputMessage:
        """The single output item this model produces for the conversation so far."""
        items = _items(input)
        user_messages = _user_messages(items) or [""]
        latest = user_messages[-1]
        configured = self.languages
        own = primary_subtag(self.agent.language) if self.agent.language else None
        detected = detect(latest, configured, own).language if latest.strip() else None

        target = self._route(detected, own, handoffs)
        if target is not None:
            return self._call(items, target.tool_name, "{}")
        return _message(items, self._answer(user_messages, detected, own, configured, settings))

    def respond(self, input: str | list[TResponseInputItem], handoffs: Sequence[Handoff],
                settings: ModelSettings, tools: Sequence[Tool]
                ) -> ResponseFunctionToolCall | ResponseOutputMessage:
        """`decide`'s output, unless the agent's tools change it: a call of a tool the latest
        message names instead of an answer, or an answer that quotes this turn's outputs."""
        item = self.decide(input, handoffs, settings)
        if isinstance(item, ResponseFunctionToolCall) or not tools:
            return item
        items = _items(input)
        turn = this_turn(items)
        call = tool_call((_user_messages(items) or [""])[-1], turn, tools)
        if call is not None:
            return self._call(items, *call)
        results = [f"[{name}] {_quote(output)}" for name, output in tool_results(turn, tools)]
        return _message(items, " ".join([_text(item), *results])) if results else item

    def _call(self, items: list[TResponseInputItem], name: str,
              arguments: str) -> ResponseFunctionToolCall:
        seed = f"{len(items)}:{self.agent.name}:{name}"
        call_id = "call_offline_" + hashlib.sha256(seed.encode()).hexdigest()[:16]
        return ResponseFunctionToolCall(
            type="function_call", id=f"fc_{call_id[13:]}", call_id=call_id,
            name=name, arguments=arguments, status="completed",
        )

    def _decision(self, input: str | list[TResponseInputItem], handoffs: Sequence[Handoff],
                  settings: ModelSettings, output_schema: AgentOutputSchemaBase | None,
                  instructions: str | None, tools: Sequence[Tool],
                  ) -> ResponseFunctionToolCall | ResponseOutputMessage:
        """`respond`, its answer made JSON for an agent with an output schema."""
        item = self.respond(input, handoffs, settings, tools)
        if not isinstance(item, ResponseOutputMessage) or output_schema is None \
                or output_schema.is_plain_text():
            return item
        items = _items(input)
        latest = (_user_messages(items) or [""])[-1]
        value = verdict(instructions or "", latest) if isinstance(output_schema, VerdictOutput) \
            else example(output_schema.json_schema(), latest)
        text = ResponseOutputText(type="output_text", annotations=[],
                                  text=json.dumps(value, ensure_ascii=False))
        return item.model_copy(update={"content": [text]})

    def _route(self, detected: str | None, own: str | None,
               handoffs: Sequence[Handoff]) -> Handoff | None:
        if detected is None or detected == own:
            return None
        for handoff in handoffs:
            profile = self.profiles.get(handoff.agent_name)
            if profile and profile.language and primary_subtag(profile.language) == detected:
                return handoff
        if own is not None:
            # Nobody speaks it: a language agent hands back to a general (language-less) agent.
            for handoff in handoffs:
                profile = self.profiles.get(handoff.agent_name)
                if profile and profile.language is None:
                    return handoff
        return None

    def _answer(self, user_messages: list[str], detected: str | None, own: str | None,
                configured: list[str], settings: ModelSettings) -> str:
        # Triage answers in the language it recognised, so the user can read which it speaks.
        phrases = phrases_for(own if own is not None else detected)
        label = "[offline model]" if own is None or own in PHRASES else f"[offline model, {own}]"
        parts = [label, phrases.greeting.format(agent=self.agent.name,
                                                latest=_quote(user_messages[-1]))]
        turn = len(user_messages)
        parts.append(phrases.first_turn if turn == 1 else
                     phrases.later_turn.format(turn=turn, first=_quote(user_messages[0])))
        if own is None or (detected is not None and detected != own):
            languages = ", ".join(language_name(tag) for tag in sorted(set(configured)))
            parts.append(phrases.unknown.format(languages=languages or "-") if detected is None
                         else phrases.unrouted.format(language=language_name(detected),
                                                      languages=languages or "-"))
        words = " ".join(parts).split(" ")
        if settings.max_tokens is not None:
            words = words[: settings.max_tokens]
        return " ".join(words)

    @staticmethod
    def _usage(input: str | list[TResponseInputItem], output_words: int) -> ResponseUsage:
        input_words = len(str(input).split())
        return ResponseUsage(
            input_tokens=input_words, output_tokens=output_words,
            total_tokens=input_words + output_words,
            input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        )

    def _response(self, item: ResponseFunctionToolCall | ResponseOutputMessage,
                  input: str | list[TResponseInputItem]) -> Response:
        words = len(_text(item).split()) if isinstance(item, ResponseOutputMessage) else 1
        return Response(
            id="resp_offline_" + (item.id or "")[-16:], created_at=0, model=OFFLINE_MODEL_NAME,
            object="response", output=[item], tool_choice="auto", tools=[], top_p=None,
            parallel_tool_calls=False, status="completed", usage=self._usage(input, words),
        )

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        """Answer or route in one response."""
        item = self._decision(input, handoffs, model_settings, output_schema,
                              system_instructions, tools)
        response = self._response(item, input)
        usage = response.usage
        assert usage is not None  # _response always sets it
        return ModelResponse(
            output=[item],
            usage=Usage(requests=1, input_tokens=usage.input_tokens,
                        output_tokens=usage.output_tokens, total_tokens=usage.total_tokens),
            response_id=response.id,
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Stream the same decision as Responses API events, text in word-sized deltas."""
        item = self._decision(input, handoffs, model_settings, output_schema,
                              system_instructions, tools)
        response = self._response(item, input)
        pending = response.model_copy(update={"output": [], "status": "in_progress",
                                              "usage": None})
        number = itertools.count().__next__  # the events' sequence numbers, from 0

        yield ResponseCreatedEvent(type="response.created", response=pending,
                                   sequence_number=number())
        if isinstance(item, ResponseFunctionToolCall):
            yield ResponseOutputItemAddedEvent(
                type="response.output_item.added", output_index=0, sequence_number=number(),
                item=item.model_copy(update={"arguments": "", "status": "in_progress"}))
            yield ResponseFunctionCallArgumentsDeltaEvent(
                type="response.function_call_arguments.delta", item_id=item.id or "",
                output_index=0, delta=item.arguments, sequence_number=number())
            yield ResponseFunctionCallArgumentsDoneEvent.model_validate({
                "type": "response.function_call_arguments.done", "item_id": item.id,
                "output_index": 0, "arguments": item.arguments, "name": item.name,
                "sequence_number": number()})
        else:
            text = _text(item)
            yield ResponseOutputItemAddedEvent(
                type="response.output_item.added", output_index=0, sequence_number=number(),
                item=item.model_copy(update={"content": [], "status": "in_progress"}))
            yield ResponseContentPartAddedEvent(
                type="response.content_part.added", item_id=item.id, output_index=0,
                content_index=0, sequence_number=number(),
                part=ResponseOutputText(type="output_text", text="", annotations=[]))
            for delta in _deltas(text):
                # Yield to the event loop between deltas so an interrupt lands mid-reply.
                await asyncio.sleep(0)
                yield ResponseTextDeltaEvent(
                    type="response.output_text.delta", item_id=item.id, output_index=0,
                    content_index=0, delta=delta, logprobs=[], sequence_number=number())
            yield ResponseTextDoneEvent(
                type="response.output_text.done", item_id=item.id, output_index=0,
                content_index=0, text=text, logprobs=[], sequence_number=number())
            yield ResponseContentPartDoneEvent(
                type="response.content_part.done", item_id=item.id, output_index=0,
                content_index=0, part=item.content[0], sequence_number=number())
        yield ResponseOutputItemDoneEvent(type="response.output_item.done", output_index=0,
                                          item=item, sequence_number=number())
        yield ResponseCompletedEvent(type="response.completed", response=response,
                                     sequence_number=number())


def _text(message: ResponseOutputMessage) -> str:
    return "".join(part.text for part in message.content if isinstance(part, ResponseOutputText))


def _deltas(text: str) -> list[str]:
    """Word-sized pieces of `text` that concatenate back to it."""
    pieces: list[str] = []
    for word in text.split(" "):
        pieces.append(word if not pieces else " " + word)
    return pieces
