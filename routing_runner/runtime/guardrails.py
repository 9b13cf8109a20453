"""A config's guardrails as the SDK's input and output guardrails.

A guardrail is decided by a Python function or by a classifier agent:

- function: called as `function(text, context)` - the text checked (the user's latest message,
  or the final answer: its text, or the parsed JSON of an agent with an output schema) and the
  conversation's context values; sync or async. It returns `True` (tripped) / `False`, a pair
  `(tripped, reason)`, or a mapping `{"tripped": ..., "reason": ...}`.
- agent: a small agent with the configured instructions answers a verdict `{tripped, reason}`
  (`structured.VerdictOutput`) about the text, on the model of the agent it guards (or the
  configured model name on that provider).

Input guardrails run before the agent starts (not in parallel: a reply must not stream and
then be taken back); the SDK runs them only for the agent a turn starts with. A trip ends
the turn (see `TurnRunner`): `trip_of` turns the SDK's exception into a `GuardrailTrip`.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrail,
    OutputGuardrail,
    RunConfig,
    RunContextWrapper,
    Runner,
)
from agents.exceptions import InputGuardrailTripwireTriggered, OutputGuardrailTripwireTriggered
from agents.items import TResponseInputItem
from agents.models.interface import Model

from routing_runner.config.guardrails import GuardrailConfig
from routing_runner.config.imports import ImportFailed, search_path
from routing_runner.config.model import Config
from routing_runner.errors import ConfigError, RunFailure
from routing_runner.stores.items import is_user_message, message_text

from .structured import VerdictOutput

# The model a classifier runs on, given the guarded agent's name and the classifier's model name.
ClassifierModel = Callable[[str, str | None], Model]


class GuardrailFailed(RunFailure):
    """A guardrail could not decide: its function raised or answered something unusable."""


@dataclass(frozen=True)
class GuardrailTrip:
    """A guardrail tripped: its name, what the user is told, and the reason it gave."""

    guardrail: str
    message: str
    reason: str


def trip_of(exc: BaseException, config: Config) -> GuardrailTrip | None:
    """The trip an SDK exception reports, or None when it is not a guardrail's."""
    if not isinstance(exc, InputGuardrailTripwireTriggered | OutputGuardrailTripwireTriggered):
        return None
    name = exc.guardrail_result.guardrail.get_name()
    guardrail = config.guardrails.get(name)
    if guardrail is None:
        return None
    reason = exc.guardrail_result.output.output_info
    return GuardrailTrip(name, guardrail.message, str(reason or ""))


def sdk_guardrails(config: Config, agent: str, classifier_model: ClassifierModel
                   ) -> tuple[list[InputGuardrail[Any]], list[OutputGuardrail[Any]]]:
    """The SDK guardrails of `agent`; ImportFailed reaches the caller as a ConfigError."""
    spec = config.agents[agent]
    run_config = RunConfig(tracing_disabled=not config.tracing)

    def decider(name: str) -> _Decider:
        guardrail = config.guardrails[name]
        if guardrail.function is not None:
            return _FunctionDecider(guardrail, _resolved(guardrail, config))
        assert guardrail.classifier is not None  # the schema requires one of the two
        classifier = Agent(
            name=f"{name} (guardrail)", instructions=guardrail.classifier.instructions,
            model=classifier_model(agent, guardrail.classifier.model),
            output_type=VerdictOutput())
        return _ClassifierDecider(guardrail, classifier, run_config)

    inputs = [InputGuardrail(decider(n).on_input, name=n, run_in_parallel=False)
              for n in spec.input_guardrails]
    outputs = [OutputGuardrail(decider(n).on_output, name=n) for n in spec.output_guardrails]
    return inputs, outputs


def _resolved(guardrail: GuardrailConfig, config: Config) -> Callable[..., Any]:
    assert guardrail.function is not None
    try:
        function: Callable[..., Any] = guardrail.function.resolve(search_path(config))
    except ImportFailed as exc:
        raise ConfigError([guardrail.function.problem(str(exc))]) from None
    return function


def latest_message(input: str | list[TResponseInputItem]) -> str:
    """The text of the user's latest message in a run's input."""
    if isinstance(input, str):
        return input
    messages = [message_text(item) for item in input if is_user_message(item)]
    return messages[-1] if messages else ""


class _Decider(ABC):
    """Decides one guardrail for one agent; the SDK calls `on_input` or `on_output`."""

    def __init__(self, guardrail: GuardrailConfig) -> None:
        self.guardrail = guardrail

    @abstractmethod
    async def decide(self, text: Any, context: Mapping[str, str]) -> tuple[bool, str]:
        """(tripped, reason) for the text checked."""

    async def on_input(self, run: RunContextWrapper[Any], agent: Agent[Any],
                       input: str | list[TResponseInputItem]) -> GuardrailFunctionOutput:
        return await self._output(latest_message(input), run)

    async def on_output(self, run: RunContextWrapper[Any], agent: Agent[Any],
                        output: Any) -> GuardrailFunctionOutput:
        return await self._output(output, run)

    async def _output(self, text: Any, run: RunContextWrapper[Any]) -> GuardrailFunctionOutput:
        context = run.context if isinstance(run.context, Mapping) else {}
        tripped, reason = await self.decide(text, context)
        return GuardrailFunctionOutput(output_info=reason, tripwire_triggered=tripped)


class _FunctionDecider(_Decider):
    def __init__(self, guardrail: GuardrailConfig, function: Callable[..., Any]) -> None:
        super().__init__(guardrail)
        self.function = function

    async def decide(self, text: Any, context: Mapping[str, str]) -> tuple[bool, str]:
        name = self.guardrail.name
        try:
            answer = self.function(text, dict(context))
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as exc:  # the user's code: one line naming it, not a traceback
            raise GuardrailFailed(f"guardrail {name!r} failed: {type(exc).__name__}: {exc}"
                                  ) from None
        verdict = _verdict(answer)
        if verdict is None:
            shown = json.dumps(answer, default=repr)[:80]
            raise GuardrailFailed(
                f"guardrail {name!r}: its function returned {shown}; return true/false, "
                "(tripped, reason) or {'tripped': ..., 'reason': ...}")
        return verdict


def _verdict(answer: Any) -> tuple[bool, str] | None:
    if isinstance(answer, bool):
        return answer, ""
    if isinstance(answer, tuple | list) and len(answer) == 2 and isinstance(answer[0], bool):
        return answer[0], str(answer[1])
    if isinstance(answer, Mapping) and isinstance(answer.get("tripped"), bool):
        return answer["tripped"], str(answer.get("reason") or "")
    return None


class _ClassifierDecider(_Decider):
    def __init__(self, guardrail: GuardrailConfig, classifier: Agent[Any],
                 run_config: RunConfig) -> None:
        super().__init__(guardrail)
        self.classifier = classifier
        self.run_config = run_config

    async def decide(self, text: Any, context: Mapping[str, str]) -> tuple[bool, str]:
        shown = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
        result = await Runner.run(self.classifier, shown, context=context, max_turns=1,
                                  run_config=self.run_config)
        verdict = result.final_output
        return bool(verdict["tripped"]), str(verdict["reason"])
