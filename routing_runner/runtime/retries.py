"""The one retry loop for model requests, and how a turn hears about its retries.

The openai clients are built with `max_retries=0`, so the Agents SDK's runner-managed retry is
the only loop (two loops would multiply: 3 client tries times 3 runner tries is 9 requests). The
policy retries what can succeed later - connection errors, timeouts, 408, 409, 429 and 5xx -
and never what cannot: 400, 401, 403, 404, 422, an exhausted quota, or an answer that is not the
API's (a web page at a mistyped base_url). It honours Retry-After.
The SDK itself refuses to retry once streamed text has reached the user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from agents.retry import ModelRetrySettings, RetryDecision, RetryPolicyContext

from routing_runner.config.model import RetryConfig
from routing_runner.errors import ProviderError

# Longest Retry-After worth waiting for inside a turn; beyond it the turn fails and says so.
MAX_RETRY_AFTER = 60.0
NEVER_RETRY_CODES = frozenset(
    {"insufficient_quota", "invalid_api_key", "billing_hard_limit_reached"})


def error_code(error: BaseException) -> str | None:
    """The provider's error code (`insufficient_quota`, ...) from an openai error's body."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        nested = body.get("error", body)
        code = nested.get("code") if isinstance(nested, dict) else None
    else:
        code = getattr(error, "code", None)
    return code if isinstance(code, str) else None


def error_type(error: BaseException) -> str | None:
    """The provider's error type (`insufficient_quota`, `invalid_request_error`, ...)."""
    kind = getattr(error, "type", None)
    return kind if isinstance(kind, str) else None


def quota_exhausted(error: BaseException) -> bool:
    """A 429 that waiting will not cure: the account is out of quota.

    OpenAI says so in the code, or only in the type (with `code: null`).
    """
    return "insufficient_quota" in (error_code(error), error_type(error))


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what caused it, and so on (each link once)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def provider_error(error: BaseException) -> ProviderError | None:
    """Our own ProviderError behind `error`: the openai client wraps what its hooks raise."""
    return next((e for e in error_chain(error) if isinstance(e, ProviderError)), None)


@dataclass(frozen=True)
class RetryNotice:
    """A transient fault that will be retried after `delay` seconds."""

    attempt: int
    max_retries: int
    delay: float
    reason: str


# The turn runner sets this around a run; the policy runs inside the SDK's run task, which
# inherits the context, so each turn hears only about its own retries.
retry_listener: ContextVar[Callable[[RetryNotice], None] | None] = ContextVar(
    "retry_listener", default=None)


def _reason(context: RetryPolicyContext) -> str:
    error = context.normalized
    if error.is_timeout:
        return "the request timed out"
    if error.is_network_error:
        return "the connection failed"
    if error.status_code == 429:
        return "rate limited (HTTP 429)"
    return f"HTTP {error.status_code}"


def _is_transient(context: RetryPolicyContext) -> bool:
    error = context.normalized
    if error.error_code in NEVER_RETRY_CODES or quota_exhausted(context.error):
        return False
    if provider_error(context.error) is not None:
        return False
    if error.is_network_error or error.is_timeout:
        return True
    status = error.status_code
    return status is not None and (status in (408, 409, 429) or status >= 500)


def retry_settings(config: RetryConfig) -> ModelRetrySettings:
    """SDK retry settings implementing the configured budget and policy."""

    def policy(context: RetryPolicyContext) -> RetryDecision:
        if not _is_transient(context):
            return RetryDecision(retry=False, reason="not retryable")
        backoff = min(config.initial_delay * 2 ** (context.attempt - 1), config.max_delay)
        retry_after = context.normalized.retry_after
        if retry_after is not None and retry_after > MAX_RETRY_AFTER:
            return RetryDecision(retry=False, reason=f"Retry-After {retry_after:.0f}s is too long")
        delay = retry_after if retry_after is not None else backoff
        listener = retry_listener.get()
        if listener is not None:
            listener(RetryNotice(context.attempt, context.max_retries, delay, _reason(context)))
        return RetryDecision(retry=True, delay=delay)

    return ModelRetrySettings(max_retries=config.max_retries, policy=policy)
