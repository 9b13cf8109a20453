"""The batch's rate-limit gate: when the provider rate-limits one conversation, all wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
from agents import Model, ModelResponse
from agents.items import TResponseStreamEvent

from .retries import quota_exhausted
from .translate import retry_after
from .wrapped import WrappedModel

# Longest Retry-After the gate honours; the SDK's retry policy gives up beyond it anyway.
MAX_GATE_DELAY = 60.0


class RateLimitGate:
    """One backoff shared by every conversation of a batch.

    When a model call is rate-limited the gate closes for the provider's Retry-After, or an
    exponential backoff when it gives none; every model call waits while it is closed.
    """

    def __init__(self, initial_delay: float = 0.5, max_delay: float = 8.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.clock = clock
        self.trips = 0
        self._opens_at = 0.0
        self._streak = 0

    @property
    def closed_for(self) -> float:
        """Seconds until the gate opens (0 when open)."""
        return max(0.0, self._opens_at - self.clock())

    async def wait(self) -> None:
        """Return once the gate is open."""
        # Not an Event: another rate limit may push the opening later while we sleep.
        delay = self.closed_for
        while delay > 0:
            await asyncio.sleep(delay)
            delay = self.closed_for

    def trip(self, retry_after: float | None = None) -> float:
        """Close the gate after a rate limit; return the delay chosen."""
        self.trips += 1
        self._streak += 1
        if retry_after is not None:
            delay = min(max(retry_after, 0.0), MAX_GATE_DELAY)
        else:
            delay = min(self.initial_delay * 2 ** (self._streak - 1), self.max_delay)
        self._opens_at = max(self._opens_at, self.clock() + delay)
        return delay

    def wrap(self, agent: str, model: Model) -> Model:
        """`model` waiting at this gate (a `build_graph` model hook; `agent` is unused)."""
        return model if isinstance(model, GatedModel) else GatedModel(model, self)

    def passed(self) -> None:
        """A call went through: the next rate limit starts the backoff over."""
        self._streak = 0


def _closes_gate(error: BaseException) -> bool:
    """A rate limit the batch should wait out (an exhausted quota will not come back)."""
    return isinstance(error, openai.RateLimitError) and not quota_exhausted(error)


class GatedModel(WrappedModel):
    """A model whose calls wait at a shared gate, and close it when rate-limited."""

    def __init__(self, inner: Model, gate: RateLimitGate) -> None:
        super().__init__(inner)
        self.gate = gate

    def _rate_limited(self, error: BaseException) -> None:
        if _closes_gate(error):
            assert isinstance(error, openai.RateLimitError)
            self.gate.trip(retry_after(error))

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """The inner model's response, once the gate is open."""
        await self.gate.wait()
        try:
            response = await self.inner.get_response(*args, **kwargs)
        except Exception as error:
            self._rate_limited(error)
            raise
        self.gate.passed()
        return response

    async def stream_response(self, *args: Any,
                              **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        """The inner model's stream, once the gate is open."""
        await self.gate.wait()
        try:
            async for event in self.inner.stream_response(*args, **kwargs):
                yield event
        except Exception as error:
            self._rate_limited(error)
            raise
        self.gate.passed()
