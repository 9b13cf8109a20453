"""The base of our model wrappers (the batch's gate, cassettes): what they forward unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents import Model


class WrappedModel(Model):
    """A model around `inner`, forwarding what a wrapper does not change."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner

    def get_retry_advice(self, request: Any) -> Any:
        """The inner model's advice: the SDK's retry loop decides, not this wrapper."""
        return self.inner.get_retry_advice(request)

    async def close(self) -> None:
        """Close the inner model."""
        await self.inner.close()

    # The SDK's run loop calls this private hook of `Model` after each run (the hosted models
    # release per-run state in it); a wrapper must forward it, and there is no public name.
    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.inner._cleanup_on_run_end(owner)


def chain(*hooks: Callable[[str, Model], Model] | None) -> Callable[[str, Model], Model]:
    """`build_graph` model hooks applied in order (None skipped): the first wraps the model,
    the next wraps that, so the last is outermost."""
    present = [hook for hook in hooks if hook is not None]

    def wrap(agent: str, model: Model) -> Model:
        for hook in present:
            model = hook(agent, model)
        return model

    return wrap
