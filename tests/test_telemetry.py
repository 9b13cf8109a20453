"""OpenTelemetry (`run.telemetry`): the span tree of a two-handoff turn over the wire, message
text only with capture_content, OTLP/HTTP to a loopback collector through `replay`, nothing
sent and nothing of the OTel SDK imported when it is off, a missing extra said in one line."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from agents.tracing import set_trace_processors, set_tracing_disabled
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.config import load_config
from routing_runner.runtime.telemetry import install_telemetry
from routing_runner_testing.wire_server import Text, ToolCall, WireServer

from .conftest import REPO, write_config
from .serve_process import ServeProcess

AGENTS = """\
agents:
  triage:
    instructions: Route by language.
    handoff_description: Routes by language.
    handoffs: [spanish, french]
  spanish:
    language: es
    instructions: Responde en español.
    handoff_description: Speaks Spanish.
    handoffs: [french]
  french:
    language: fr
    instructions: Réponds en français.
    handoff_description: Speaks French.
"""


@pytest.fixture(autouse=True)
def sdk_tracing_reset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Telemetry changes the SDK's process-wide processors: none are left to later tests."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    yield
    set_trace_processors([])
    set_tracing_disabled(True)


def _wire_config(folder: Path, server: WireServer, telemetry: str) -> Path:
    return write_config(folder, (
        f"version: 1\nentry: triage\nmodel:\n  provider: openai\n  name: gpt-test\n"
        f"  base_url: {server.base_url}\nsession:\n  path: {folder / 'sessions.db'}\n"
        f"run:\n  telemetry: {telemetry}\n{AGENTS}"))


def _two_handoff_turn(cli: CliRunner, tmp_path: Path, server: WireServer,
                      monkeypatch: pytest.MonkeyPatch, telemetry: str) -> list[ReadableSpan]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MY_COLLECTOR", "http://127.0.0.1:9/unused")
    config = _wire_config(tmp_path, server, telemetry)
    memory = InMemorySpanExporter()
    assert install_telemetry(load_config(config).config, memory)
    server.script(ToolCall("transfer_to_spanish"), ToolCall("transfer_to_french"),
                  Text("Bonjour, je parle français !"))
    result = cli.invoke(app, ["chat", str(config), "--session-id", "s-otel",
                              "-m", "Hola, quiero hablar francés"])
    assert result.exit_code == 0, result.output
    return list(memory.get_finished_spans())


def _tree(spans: list[ReadableSpan]) -> list[tuple[int, str]]:
    """(depth, name) in start order, depth-first."""
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)

    def walk(parent: int | None, depth: int) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        for span in children.get(parent, []):
            assert span.context is not None
            out += [(depth, span.name), *walk(span.context.span_id, depth + 1)]
        return out

    return walk(None, 0)


def _attributes(spans: list[ReadableSpan], name: str) -> list[dict[str, Any]]:
    return [dict(s.attributes or {}) for s in spans if s.name == name]


def test_a_two_handoff_turn_is_one_span_tree_with_genai_attributes(
        cli: CliRunner, tmp_path: Path, server: WireServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spans = _two_handoff_turn(cli, tmp_path, server, monkeypatch,
                              "{otlp_endpoint_env: MY_COLLECTOR, service_name: bots}")
    assert _tree(spans) == [
        (0, "turn"),
        (1, "invoke_agent triage"), (2, "chat"), (2, "handoff triage -> spanish"),
        (1, "invoke_agent spanish"), (2, "chat"), (2, "handoff spanish -> french"),
        (1, "invoke_agent french"), (2, "chat"),
    ]
    turn = _attributes(spans, "turn")[0]
    assert turn["gen_ai.conversation.id"] == "s-otel"
    assert turn["routing_runner.route"] == ("triage", "spanish", "french")
    assert turn["gen_ai.agent.name"] == "french"
    calls = _attributes(spans, "chat")
    assert [c["gen_ai.request.model"] for c in calls] == ["gpt-test"] * 3
    assert all(c["gen_ai.operation.name"] == "chat" for c in calls)
    assert all(c["gen_ai.response.finish_reasons"] == ("completed",) for c in calls)
    assert all(c["gen_ai.usage.input_tokens"] > 0 and c["gen_ai.usage.output_tokens"] > 0
               for c in calls), calls
    assert _attributes(spans, "invoke_agent spanish")[0]["gen_ai.agent.name"] == "spanish"
    assert _attributes(spans, "handoff spanish -> french")[0] == {
        "routing_runner.handoff.from": "spanish", "routing_runner.handoff.to": "french"}
    assert spans[0].resource.attributes["service.name"] == "bots"
    text = repr([dict(s.attributes or {}) for s in spans])
    assert "Hola" not in text and "Bonjour" not in text


def test_capture_content_puts_the_messages_into_the_model_calls(
        cli: CliRunner, tmp_path: Path, server: WireServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spans = _two_handoff_turn(cli, tmp_path, server, monkeypatch,
                              "{otlp_endpoint_env: MY_COLLECTOR, capture_content: true}")
    calls = _attributes(spans, "chat")
    assert "Hola, quiero hablar francés" in calls[0]["gen_ai.input.messages"]
    assert "Bonjour, je parle français !" in calls[-1]["gen_ai.output.messages"]
    assert spans[0].resource.attributes["service.name"] == "routing-runner"


# --- OTLP/HTTP to a loopback collector, through the CLI ----------------------------------------

class _Collector(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.posts: list[tuple[str, str, bytes]] = []


class _CollectorHandler(http.server.BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the posts are recorded instead."""


@pytest.fixture
def collector() -> Iterator[_Collector]:
    server = _Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


OFFLINE = f"version: 1\nentry: triage\nmodel: {{provider: offline}}\n{AGENTS}"
TRANSCRIPT = ("name: to spanish\nturns:\n  - user: Hola, ¿cómo estás?\n"
              "    expect: {route: [triage, spanish]}\n")


def _replay(tmp_path: Path, env: dict[str, str], extra: str = "", prelude: str = "",
            command: str = "replay") -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, OFFLINE + extra)
    (tmp_path / "t.yaml").write_text(TRANSCRIPT, encoding="utf-8")
    script = (prelude + "import sys\nfrom routing_runner.cli import main\n"
              "sys.argv = ['routing-runner', *sys.argv[1:]]\nmain()\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    transcripts = [str(tmp_path / "t.yaml")] if command == "replay" else []
    return subprocess.run([sys.executable, "-c", script, command, str(config), *transcripts],
                          capture_output=True, text=True, timeout=300, env={**environ, **env},
                          cwd=REPO)


def _spans(posts: list[tuple[str, str, bytes]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for _, _, body in posts:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    found[span.name] = {a.key: a.value for a in span.attributes}
    return found


def test_replay_sends_spans_over_otlp_http_to_the_collector(
        tmp_path: Path, collector: _Collector) -> None:
    result = _replay(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT":
                                f"http://127.0.0.1:{collector.server_port}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert collector.posts, "no spans were sent"
    assert {(path, kind) for path, kind, _ in collector.posts} == {
        ("/v1/traces", "application/x-protobuf")}
    spans = _spans(collector.posts)
    assert {"replay to spanish", "turn", "invoke_agent triage", "invoke_agent spanish",
            "handoff triage -> spanish"} <= set(spans)
    assert spans["replay to spanish"]["routing_runner.transcript"].string_value == "to spanish"
    route = spans["turn"]["routing_runner.route"].array_value.values
    assert [v.string_value for v in route] == ["triage", "spanish"]


def test_nothing_is_sent_or_imported_when_telemetry_is_off(
        tmp_path: Path, collector: _Collector) -> None:
    # The OTel API itself is imported by the Agents SDK's MCP support; the SDK and the
    # exporter, which cost the time, are not.
    probe = ("import atexit, sys\natexit.register(lambda: print('otel imported:', any("
             "m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter')) "
             "for m in sys.modules), file=sys.stderr))\n")
    result = _replay(tmp_path, {}, prelude=probe)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "otel imported: False" in result.stderr
    assert collector.posts == []


def test_a_missing_extra_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocked = "import sys\nsys.modules['opentelemetry.sdk'] = None\n"
    result = _replay(tmp_path, {}, "run:\n  telemetry: {service_name: bots}\n", blocked,
                     command="validate")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'bot.yaml'}:19:3: run.telemetry: telemetry needs the OpenTelemetry "
        "extra, which is not installed: pip install 'routing-runner[otel]'",
        "1 error found; nothing was run."]
    # The standard variable alone, with no `run.telemetry`: said when the turn needs it.
    result = _replay(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
                     prelude=blocked)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        "telemetry is configured but the OpenTelemetry extra is not installed: "
        "pip install 'routing-runner[otel]'"), result.stderr
    assert "Traceback" not in result.stderr


def test_a_guardrail_that_trips_is_a_span_of_the_turn(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "guards.py").write_text(
        "def no_secrets(text, context):\n    return 'password' in str(text).lower()\n",
        encoding="utf-8")
    config = write_config(tmp_path, (
        f"entry: helper\nmodel: {{provider: offline}}\nsession: {{path: {tmp_path / 's.db'}}}\n"
        "guardrails:\n  secrets: {function: 'guards:no_secrets', message: I cannot share that.}\n"
        "agents:\n  helper:\n    instructions: Help with orders.\n"
        "    output_guardrails: [secrets]\n"))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    memory = InMemorySpanExporter()
    assert install_telemetry(load_config(config).config, memory)
    result = cli.invoke(app, ["chat", str(config), "-s", "g", "-m", "My password is hunter2"])
    assert result.exit_code == 0, result.output
    spans = list(memory.get_finished_spans())
    assert ("guardrail secrets" in {s.name for s in spans}), _tree(spans)
    assert _attributes(spans, "guardrail secrets")[0]["routing_runner.guardrail.triggered"]
    assert _attributes(spans, "turn")[0]["gen_ai.conversation.id"] == "g"
    assert "hunter2" not in repr([dict(s.attributes or {}) for s in spans])


def test_serve_sends_each_turn_to_the_collector(tmp_path: Path, collector: _Collector) -> None:
    config = write_config(tmp_path, OFFLINE + f"session: {{path: {tmp_path / 's.db'}}}\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ |= {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
                "XDG_DATA_HOME": str(tmp_path / "data")}
    with ServeProcess(config, env=environ) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="bot", messages=[{"role": "user", "content": "Hola, ¿cómo estás?"}])
        assert server.terminate() == 0
    spans = _spans(collector.posts)
    assert spans["turn"]["gen_ai.conversation.id"].string_value == \
        raw.headers["x-session-id"]
    assert {"invoke_agent triage", "invoke_agent spanish", "handoff triage -> spanish"} <= \
        set(spans)
