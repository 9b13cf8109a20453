"""OpenTelemetry traces of turns: the Agents SDK's own spans, mapped to OTel spans that follow
the GenAI semantic conventions, sent over OTLP/HTTP.

Off unless `run.telemetry` names a set endpoint variable or OTEL_EXPORTER_OTLP_ENDPOINT is set.
Off, nothing here imports opentelemetry and the SDK's tracing stays disabled (`runtime.graph`),
so a turn costs what it did. On, the SDK traces each turn (one SDK trace per `Runner` run) and
`_Bridge` turns its spans into OTel spans; the SDK's exporter to OpenAI is dropped from its
processors unless `run.tracing` asks for it. Message text goes into spans only with
`capture_content: true`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents.tracing import (
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    GuardrailSpanData,
    HandoffSpanData,
    ResponseSpanData,
    Span,
    TaskSpanData,
    Trace,
    TracingProcessor,
    TurnSpanData,
    set_trace_processors,
    set_tracing_disabled,
)

from routing_runner.config.extras import OTEL_EXTRA
from routing_runner.config.model import Config
from routing_runner.errors import UserInputError

if TYPE_CHECKING:  # only imported when telemetry is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import Tracer

STANDARD_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
DEFAULT_SERVICE_NAME = "routing-runner"


@dataclass(frozen=True)
class TelemetrySettings:
    """Where a config's traces go, and whether they may carry message text."""

    endpoint: str
    service_name: str
    capture_content: bool


def telemetry_settings(config: Config,
                       environ: Mapping[str, str] = os.environ) -> TelemetrySettings | None:
    """The config's telemetry, or None when it is off (no endpoint is set)."""
    telemetry = config.telemetry
    names = [telemetry.otlp_endpoint_env] if telemetry and telemetry.otlp_endpoint_env else []
    endpoint = next((environ[n] for n in [*names, STANDARD_ENDPOINT_ENV] if environ.get(n)), None)
    if endpoint is None:
        return None
    return TelemetrySettings(
        endpoint=endpoint,
        service_name=(telemetry.service_name if telemetry else None) or DEFAULT_SERVICE_NAME,
        capture_content=bool(telemetry and telemetry.capture_content))


# One exporting bridge per settings in a process: a batch builds a graph per conversation.
_bridges: dict[TelemetrySettings, _Bridge] = {}


def install_telemetry(config: Config, exporter: SpanExporter | None = None) -> bool:
    """Start sending `config`'s turns to its OTLP endpoint; whether telemetry is on.

    `exporter` replaces the OTLP exporter for these settings, each span sent as it ends (a
    test's in-memory exporter). A missing `otel` extra is a UserInputError (exit 2) saying
    what to install.
    """
    settings = telemetry_settings(config)
    if settings is None:
        return False
    bridge = _bridges.get(settings)
    if bridge is None or exporter is not None:
        bridge = _bridges[settings] = _Bridge(_tracer_provider(settings, exporter), settings)
    from agents.tracing.processors import default_processor

    # Replacing the SDK's processors drops its exporter to OpenAI, which stays off unless
    # `run.tracing` turns it on. Configured telemetry outranks OPENAI_AGENTS_DISABLE_TRACING.
    set_trace_processors([bridge, *([default_processor()] if config.tracing else [])])
    set_tracing_disabled(False)
    return True


def flush_telemetry() -> None:
    """Send what is buffered (a forked replay worker ends without running atexit hooks)."""
    for bridge in _bridges.values():
        bridge.provider.force_flush()


@contextmanager
def transcript_span(config: Config, name: str, session_id: str) -> Iterator[None]:
    """A span around one replayed transcript, parent of its turns' spans (nothing when off)."""
    settings = telemetry_settings(config)
    if settings is None:
        yield
        return
    install_telemetry(config)
    tracer = _bridges[settings].tracer
    with tracer.start_as_current_span(f"replay {name}", attributes={
            "routing_runner.transcript": name, "gen_ai.conversation.id": session_id}):
        yield


def _tracer_provider(settings: TelemetrySettings,
                     exporter: SpanExporter | None) -> TracerProvider:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        raise UserInputError("telemetry is configured but the OpenTelemetry extra is not "
                             f"installed: {OTEL_EXTRA}") from None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider
    endpoint = settings.endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):  # the standard variable names the base URL
        endpoint += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


@dataclass
class _TurnState:
    span: OtelSpan
    route: list[str]


class _Bridge(TracingProcessor):
    """SDK traces and spans → OTel spans: a trace is a turn, its spans are its children."""

    def __init__(self, provider: TracerProvider, settings: TelemetrySettings) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("routing_runner")
        self.capture = settings.capture_content
        self.turns: dict[str, _TurnState] = {}
        self.spans: dict[str, OtelSpan] = {}
        self.passed_through: dict[str, OtelSpan] = {}

    def on_trace_start(self, trace: Trace) -> None:
        exported = trace.export() or {}
        attributes = {"gen_ai.operation.name": "invoke_workflow",
                      "routing_runner.workflow": str(exported.get("workflow_name") or "")}
        if exported.get("group_id"):
            attributes["gen_ai.conversation.id"] = str(exported["group_id"])
        # The current OTel context: a replayed transcript's span, when there is one.
        span = self.tracer.start_span("turn", attributes=attributes)
        self.turns[trace.trace_id] = _TurnState(span, [])

    def on_trace_end(self, trace: Trace) -> None:
        state = self.turns.pop(trace.trace_id, None)
        if state is None:
            return
        state.span.set_attribute("routing_runner.route", state.route)
        if state.route:
            state.span.set_attribute("gen_ai.agent.name", state.route[-1])
        state.span.end()

    def on_span_start(self, span: Span[Any]) -> None:
        from opentelemetry.trace import set_span_in_context

        state = self.turns.get(span.trace_id)
        parent = self.spans.get(span.parent_id or "") or \
            self.passed_through.get(span.parent_id or "") or (state.span if state else None)
        data = span.span_data
        if isinstance(data, AgentSpanData) and state is not None and \
                (not state.route or state.route[-1] != data.name):
            state.route.append(data.name)
        if isinstance(data, (TaskSpanData, TurnSpanData)):
            # The SDK's run and loop-iteration spans: their children hang from their parent.
            if parent is not None:
                self.passed_through[span.span_id] = parent
            return
        context = set_span_in_context(parent) if parent is not None else None
        self.spans[span.span_id] = self.tracer.start_span(
            _span_name(data), context=context, attributes=_start_attributes(data))

    def on_span_end(self, span: Span[Any]) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.passed_through.pop(span.span_id, None)
        otel_span = self.spans.pop(span.span_id, None)
        if otel_span is None:
            return
        data = span.span_data
        if isinstance(data, HandoffSpanData):
            otel_span.update_name(f"handoff {data.from_agent} -> {data.to_agent}")
        for key, value in _end_attributes(data, self.capture).items():
            if value is not None:
                otel_span.set_attribute(key, value)
        if span.error:
            otel_span.set_status(Status(StatusCode.ERROR, str(span.error.get("message", ""))))
        otel_span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()

    def force_flush(self) -> None:
        self.provider.force_flush()


def _span_name(data: Any) -> str:
    if isinstance(data, AgentSpanData):
        return f"invoke_agent {data.name}"
    if isinstance(data, GenerationSpanData):
        return f"chat {data.model}"
    if isinstance(data, ResponseSpanData):
        return "chat"  # the model is known once the response is
    if isinstance(data, FunctionSpanData):
        return f"execute_tool {data.name}"
    if isinstance(data, GuardrailSpanData):
        return f"guardrail {data.name}"
    return str(data.type)


def _start_attributes(data: Any) -> dict[str, Any]:
    if isinstance(data, AgentSpanData):
        return {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": data.name}
    if isinstance(data, (GenerationSpanData, ResponseSpanData)):
        return {"gen_ai.operation.name": "chat"}
    if isinstance(data, FunctionSpanData):
        return {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": data.name}
    return {}


def _end_attributes(data: Any, capture: bool) -> dict[str, Any]:
    """A finished SDK span's attributes; message text only when `capture`."""
    if isinstance(data, ResponseSpanData):
        return _response_attributes(data, capture)
    if isinstance(data, GenerationSpanData):
        return _generation_attributes(data, capture)
    if isinstance(data, FunctionSpanData):
        return {"gen_ai.tool.call.arguments": data.input if capture else None,
                "gen_ai.tool.call.result": _text(data.output) if capture else None}
    if isinstance(data, HandoffSpanData):
        return {"routing_runner.handoff.from": data.from_agent,
                "routing_runner.handoff.to": data.to_agent}
    if isinstance(data, GuardrailSpanData):
        return {"routing_runner.guardrail.name": data.name,
                "routing_runner.guardrail.triggered": data.triggered}
    return {}


def _response_attributes(data: ResponseSpanData, capture: bool) -> dict[str, Any]:
    response = data.response
    if response is None:
        return {}
    incomplete = response.incomplete_details
    reason = incomplete.reason if incomplete and incomplete.reason else response.status
    usage = response.usage
    return {
        "gen_ai.request.model": response.model,
        "gen_ai.response.model": response.model,
        "gen_ai.response.id": response.id,
        "gen_ai.response.finish_reasons": [str(reason)] if reason else None,
        "gen_ai.usage.input_tokens": usage.input_tokens if usage else None,
        "gen_ai.usage.output_tokens": usage.output_tokens if usage else None,
        "gen_ai.input.messages": _text(data.input) if capture else None,
        "gen_ai.output.messages": _text([item.model_dump() for item in response.output])
        if capture else None,
    }


def _generation_attributes(data: GenerationSpanData, capture: bool) -> dict[str, Any]:
    usage = data.usage or {}
    outputs = list(data.output or [])
    # Chat Completions' span keeps the messages, not the finish reason: a message with tool
    # calls ended for them, any other reply stopped.
    reasons = ["tool_calls" if o.get("tool_calls") else "stop" for o in outputs]
    return {
        "gen_ai.request.model": data.model,
        "gen_ai.usage.input_tokens": usage.get("input_tokens"),
        "gen_ai.usage.output_tokens": usage.get("output_tokens"),
        "gen_ai.response.finish_reasons": reasons or None,
        "gen_ai.input.messages": _text(data.input) if capture else None,
        "gen_ai.output.messages": _text(outputs) if capture else None,
    }


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
