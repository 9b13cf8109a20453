"""A judge model: does a reply meet a rubric? A structured verdict and its reason.

The judge is one more SDK agent, asked once per judged turn with the user's message, the reply
and the rubric; its answer is held to a JSON schema (`JudgeVerdict`), so a judge that answers
in prose fails the check with the SDK's one line instead of passing by accident. Its model is
built like an agent's (`graph.standalone_model`) and can sit behind the conversation's cassette,
so judge calls are recorded and replayed like any other model call.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents import Agent, Model, RunConfig, Runner
from pydantic import BaseModel, Field

from routing_runner.config.model import Config

from .graph import ModelHook, standalone_model
from .providers import ResolvedModel

JUDGE_NAME = "judge"
INSTRUCTIONS = (
    "You grade one reply of a customer-facing assistant against a rubric. Read the user's "
    "message, the reply and the rubric. Give a score from 0 (does not meet the rubric at all) "
    "to 1 (fully meets it) and one sentence saying why. Judge only what the rubric asks.")


class JudgeVerdict(BaseModel):
    """The judge's structured answer."""

    score: float = Field(ge=0, le=1, description="0: misses the rubric; 1: fully meets it.")
    reason: str = Field(description="One sentence: why this score.")


@dataclass(frozen=True)
class Verdict:
    """A judged reply: the score, whether it reaches the threshold, and the judge's reason."""

    score: float
    threshold: float
    reason: str

    @property
    def passed(self) -> bool:
        """Whether the score reaches the threshold."""
        return self.score >= self.threshold


async def ask_judge(model: Model, rubric: str, threshold: float, user: str,
                    reply: str) -> Verdict:
    """The judge's verdict on `reply` to `user` against `rubric` (tracing off)."""
    judge = Agent(name=JUDGE_NAME, instructions=INSTRUCTIONS, model=model,
                  output_type=JudgeVerdict)
    question = (f"Rubric: {rubric}\n\nThe user wrote:\n{user}\n\n"
                f"The assistant replied:\n{reply}")
    result = await Runner.run(judge, question, max_turns=1,
                              run_config=RunConfig(tracing_disabled=True))
    verdict = result.final_output_as(JudgeVerdict, raise_if_incorrect_type=True)
    return Verdict(verdict.score, threshold, " ".join(verdict.reason.split()))


class Judge:
    """The judge model of one conversation, behind `wrap` (its cassette) when given."""

    def __init__(self, config: Config, resolved: ResolvedModel,
                 wrap: ModelHook | None = None) -> None:
        model, self.clients = standalone_model(config, resolved)
        self.model = model if wrap is None else wrap(JUDGE_NAME, model)

    async def verdict(self, rubric: str, threshold: float, user: str, reply: str) -> Verdict:
        """The judge's verdict on one reply."""
        return await ask_judge(self.model, rubric, threshold, user, reply)

    async def aclose(self) -> None:
        """Close the judge's API clients."""
        for client in self.clients:
            await client.close()
