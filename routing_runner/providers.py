"""Which model provider a config runs on, decided before the SDK is imported.

`auto` picks OpenAI when OPENAI_API_KEY is set and the embedded offline model otherwise; the
choice and its reason are shown at start-up. A provider that cannot work (no key) is reported
here, before the first prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .config import Config
from .errors import ProviderError

OPENAI_KEY_VARIABLE = "OPENAI_API_KEY"


@dataclass(frozen=True)
class ResolvedProvider:
    """The provider a run uses and why."""

    kind: Literal["openai", "offline"]
    reason: str

    @property
    def label(self) -> str:
        """One line for the chat banner."""
        if self.kind == "offline":
            return ("OFFLINE model (embedded, routes by language; not a real LLM) - "
                    + self.reason)
        return f"OpenAI - {self.reason}"


def resolve_provider(config: Config, env: Mapping[str, str]) -> ResolvedProvider:
    """The provider `config` selects in environment `env`; ProviderError when it cannot work."""
    has_key = bool(env.get(OPENAI_KEY_VARIABLE))
    provider = config.model.provider
    if provider == "offline":
        return ResolvedProvider("offline", "selected by the config")
    if provider == "openai":
        if not has_key:
            raise ProviderError(
                f"{config.source}: model.provider is 'openai' but {OPENAI_KEY_VARIABLE} is not "
                "set; export it, or use provider: offline to try the config without a model")
        return ResolvedProvider("openai", f"model {config.model.name}, key from "
                                          f"{OPENAI_KEY_VARIABLE}")
    if has_key:
        return ResolvedProvider("openai", f"auto: {OPENAI_KEY_VARIABLE} is set; model "
                                          f"{config.model.name}")
    return ResolvedProvider("offline", f"auto: {OPENAI_KEY_VARIABLE} is not set")
