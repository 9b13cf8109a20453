"""Real providers over HTTP: `routing-runner chat` against the loopback OpenAI-format server.

These drive the CLI entry point, the real Agents SDK and the real `openai` client; only the
server is ours. Every fault test checks the message shown, the exit code of a one-shot run,
how many requests reached the server, and what the stored conversation holds afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Fault, Text, ToolCall, WireServer

from .conftest import write_config

pytestmark = pytest.mark.usefixtures("api_key")

LANGUAGE_AGENTS = """
agents:
  triage:
    instructions: Hand off by language.
    handoffs: [spanish, french]
  spanish:
    language: es
    instructions: Responde en español.
    handoffs: [french, triage]
  french:
    language: fr
    instructions: Réponds en français.
    handoffs: [spanish, triage]
"""


def _config(folder: Path, server: WireServer, provider: str, api: str = "",
            agents: str = LANGUAGE_AGENTS, model_extra: str = "") -> Path:
    api_line = f"  api: {api}\n" if api else ""
    return write_config(folder, (
        f"entry: triage\nmodel:\n  provider: {provider}\n  name: gpt-test\n"
        f"  base_url: {server.base_url}\n{api_line}{model_extra}"
        f"session:\n  path: {folder / 'sessions.db'}\n{agents}"))


def _stored(folder: Path, session_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(folder / "sessions.db") as conn:
        return [json.loads(row[0]) for row in conn.execute(
            "SELECT message_data FROM agent_messages WHERE session_id = ? ORDER BY id",
            (session_id,))]


def _chat(cli: CliRunner, config: Path, *messages: str, session: str = "wire") -> Any:
    args = ["chat", str(config), "--session-id", session]
    for message in messages:
        args += ["-m", message]
    return cli.invoke(app, args)


@pytest.mark.parametrize(("provider", "api"), [("openai", ""),
                                               ("openai-compatible", "chat_completions")])
def test_spanish_is_routed_by_the_servers_handoff_and_history_goes_back(
        cli: CliRunner, tmp_path: Path, server: WireServer, provider: str, api: str) -> None:
    server.script(ToolCall("transfer_to_spanish"), Text("¡Hola! ¿En qué puedo ayudarte hoy?"),
                  Text("Claro, con mucho gusto."))
    config = _config(tmp_path, server, provider, api)

    result = _chat(cli, config, "Hola, ¿cómo estás?", "¿Me ayudas con mi pedido?")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "  [handoff] triage -> spanish",
        "spanish: ¡Hola! ¿En qué puedo ayudarte hoy?",
        "you: ¿Me ayudas con mi pedido?",
        "spanish: Claro, con mucho gusto.",
    ]
    first, second, third = server.requests
    path = "/v1/responses" if provider == "openai" else "/v1/chat/completions"
    assert {r.path for r in server.requests} == {path}
    assert all(r.stream for r in server.requests)
    if provider == "openai":
        assert first.body["instructions"].startswith("Hand off by language.")
        assert second.body["instructions"].startswith("Responde en español.")
        history = third.body["input"]
        assert [i.get("type", "message") for i in history] == [
            "message", "function_call", "function_call_output", "message", "message"]
        assert history[0]["content"] == "Hola, ¿cómo estás?"
        assert history[-1]["content"] == "¿Me ayudas con mi pedido?"
    else:
        assert second.body["messages"][0] == {"role": "system",
                                              "content": "Responde en español."}
        roles = [m["role"] for m in third.body["messages"]]
        assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
        assert third.body["messages"][1]["content"] == "Hola, ¿cómo estás?"
        assert third.body["messages"][2]["tool_calls"][0]["function"]["name"] == \
            "transfer_to_spanish"


def test_streamed_deltas_are_printed_in_order_as_they_arrive(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    words = [f"palabra{i}" for i in range(40)]
    server.script(Text(" ".join(words), chunk_size=3))
    agents = "agents:\n  triage:\n    instructions: Responde.\n"
    result = _chat(cli, _config(tmp_path, server, "openai", agents=agents), "Hola")
    assert result.stdout.splitlines()[1] == "triage: " + " ".join(words)


# --- faults -------------------------------------------------------------------------------

FAST_RETRIES = "  timeout: 2\n  retry: {max_retries: 2, initial_delay: 0.01, max_delay: 0.05}\n"
ONE_AGENT = "agents:\n  triage:\n    instructions: Answer.\n"


def _fault_run(cli: CliRunner, tmp_path: Path, server: WireServer, *replies: Any,
               timeout: str = "2") -> Any:
    server.script(*replies)
    extra = FAST_RETRIES.replace("timeout: 2", f"timeout: {timeout}")
    config = _config(tmp_path, server, "openai", agents=ONE_AGENT, model_extra=extra)
    return _chat(cli, config, "Hello there")


def _error_line(stdout: str) -> str:
    errors = [line for line in stdout.splitlines() if line.startswith("  [error] ")]
    assert len(errors) == 1, stdout
    return errors[0]


def _assert_only_the_user_message_is_stored(tmp_path: Path) -> None:
    assert _stored(tmp_path, "wire") == [{"role": "user", "content": "Hello there"}]


def test_401_is_not_retried_and_names_the_key(cli: CliRunner, tmp_path: Path,
                                              server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, Fault.unauthorized())
    assert result.exit_code == 3
    assert _error_line(result.stdout) == (
        "  [error] the provider rejected the API key (HTTP 401, request id req_1); "
        "check the key variable")
    assert len(server.requests) == 1
    _assert_only_the_user_message_is_stored(tmp_path)


def test_429_with_retry_after_waits_as_told_then_succeeds(cli: CliRunner, tmp_path: Path,
                                                          server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, Fault.rate_limited(retry_after=0.2),
                        Text("Hello!"))
    assert result.exit_code == 0, result.output
    assert "  [retry] rate limited (HTTP 429); retrying in 0.2s (1/2)\n" in result.stdout
    assert "triage: Hello!" in result.stdout
    assert len(server.requests) == 2
    assert [i.get("role") for i in _stored(tmp_path, "wire")] == ["user", "assistant"]


def test_429_without_retry_after_exhausts_the_budget_once(cli: CliRunner, tmp_path: Path,
                                                          server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, *[Fault.rate_limited()] * 3)
    assert result.exit_code == 3
    assert result.stdout.count("[retry] rate limited (HTTP 429)") == 2
    assert _error_line(result.stdout) == (
        "  [error] the provider is rate limiting (HTTP 429, request id req_3); wait, then "
        "/retry (after 2 retries)")
    assert len(server.requests) == 3  # one loop: 1 + max_retries, not multiplied
    _assert_only_the_user_message_is_stored(tmp_path)


def test_exhausted_quota_is_not_retried(cli: CliRunner, tmp_path: Path,
                                        server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, Fault.quota_exhausted())
    assert result.exit_code == 3
    assert "[retry]" not in result.stdout
    assert _error_line(result.stdout).startswith(
        "  [error] the provider's quota is exhausted (HTTP 429, request id req_1)")
    assert len(server.requests) == 1
    _assert_only_the_user_message_is_stored(tmp_path)


def test_500_is_retried_and_the_turn_succeeds(cli: CliRunner, tmp_path: Path,
                                              server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, Fault.server_error(), Text("Recovered."))
    assert result.exit_code == 0, result.output
    assert "  [retry] HTTP 500; retrying in" in result.stdout
    assert "triage: Recovered." in result.stdout
    assert len(server.requests) == 2


def test_persistent_500_fails_with_the_request_id(cli: CliRunner, tmp_path: Path,
                                                  server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, *[Fault.server_error()] * 3)
    assert result.exit_code == 3
    assert _error_line(result.stdout).startswith(
        "  [error] the provider failed (HTTP 500, request id req_3)")
    assert len(server.requests) == 3
    _assert_only_the_user_message_is_stored(tmp_path)


def test_connection_reset_before_headers_is_retried(cli: CliRunner, tmp_path: Path,
                                                    server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, Fault.reset_before_headers(), Text("Back."))
    assert result.exit_code == 0, result.output
    assert "  [retry] the connection failed; retrying in" in result.stdout
    assert len(server.requests) == 2


def test_reset_mid_stream_is_not_replayed_and_keeps_no_half_reply(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, Fault.reset_mid_stream(after_events=8))
    assert result.exit_code == 3
    assert "[retry]" not in result.stdout  # text already reached the user
    assert _error_line(result.stdout).startswith("  [error] cannot reach the model provider")
    assert len(server.requests) == 1
    _assert_only_the_user_message_is_stored(tmp_path)


def test_a_stalled_stream_times_out(cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, Fault.stall(after_events=8), timeout="0.3")
    assert result.exit_code == 3
    assert _error_line(result.stdout) == (
        "  [error] the model did not answer in time (model.timeout); /retry, or raise "
        "model.timeout")
    assert len(server.requests) == 1
    _assert_only_the_user_message_is_stored(tmp_path)


def test_malformed_sse_json_is_one_clear_line(cli: CliRunner, tmp_path: Path,
                                              server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, Fault.malformed_sse(after_events=8))
    assert result.exit_code == 3
    assert _error_line(result.stdout).startswith(
        "  [error] the provider sent a malformed stream (not JSON)")
    assert "Traceback" not in result.output
    assert "Error streaming" not in result.stderr  # the SDK's own log stays quiet
    assert len(server.requests) == 1
    _assert_only_the_user_message_is_stored(tmp_path)


def test_an_sse_error_event_is_reported_with_its_code(cli: CliRunner, tmp_path: Path,
                                                      server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server,
                        Fault.sse_error(code="server_error", message="The model crashed.",
                                        after_events=2))
    assert result.exit_code == 3
    assert _error_line(result.stdout) == (
        "  [error] the provider reported an error in its stream: server_error: "
        "The model crashed.; /retry")
    assert len(server.requests) == 1
    _assert_only_the_user_message_is_stored(tmp_path)


def test_end_of_stream_without_completion_is_reported(cli: CliRunner, tmp_path: Path,
                                                      server: WireServer) -> None:
    result = _fault_run(cli, tmp_path, server, Fault.eof_without_completed(after_events=6))
    assert result.exit_code == 3
    assert _error_line(result.stdout) == (
        "  [error] the provider's stream ended before the response was complete; /retry")
    assert len(server.requests) == 1
    _assert_only_the_user_message_is_stored(tmp_path)


def test_retry_resends_the_kept_message_without_duplicating_it(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    server.script(Fault.unauthorized(), Text("Now it works."))
    config = _config(tmp_path, server, "openai", agents=ONE_AGENT, model_extra=FAST_RETRIES)
    result = cli.invoke(app, ["chat", str(config), "--session-id", "wire"],
                        input="Hello there\n/retry\n")
    assert "triage: Now it works." in result.stdout
    assert server.requests[1].body["input"] == [{"role": "user", "content": "Hello there"}]
    assert [i["role"] for i in _stored(tmp_path, "wire")] == ["user", "assistant"]


# --- start-up -------------------------------------------------------------------------------


LITELLM_CONFIG = ("entry: a\nmodel:\n  provider: litellm\n  name: ollama/llama3\n"
                  "agents:\n  a: {instructions: hi, handoffs: [b]}\n"
                  "  b:\n    instructions: hi\n    model:\n      provider: litellm\n"
                  "      name: openai/gpt-test\n")
MISSING_EXTRA = ("provider 'litellm' needs the LiteLLM extra, which is not installed: "
                 "pip install 'routing-runner[litellm]'")


@pytest.fixture
def without_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM as good as uninstalled: a None entry makes find_spec and import fail."""
    monkeypatch.setitem(sys.modules, "litellm", None)


@pytest.mark.usefixtures("without_litellm")
def test_validate_reports_a_missing_litellm_extra_at_each_provider_key(
        cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, LITELLM_CONFIG)
    result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{config}:3:3: model.provider: {MISSING_EXTRA}",
        f"{config}:10:7: agents.b.model.provider: {MISSING_EXTRA}",
        "2 errors found; nothing was run.",
    ]


@pytest.mark.usefixtures("without_litellm")
def test_a_missing_litellm_extra_stops_chat_and_replay_before_the_first_prompt(
        cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, LITELLM_CONFIG)
    expected = (f"error: {config}: agent 'a' uses provider 'litellm', which needs the LiteLLM "
                "extra, not installed: pip install 'routing-runner[litellm]'")
    chat = cli.invoke(app, ["chat", str(config)], input="Hello\n")
    assert chat.exit_code == 3
    assert chat.stderr.splitlines() == [expected]  # no banner, no prompt: nothing began
    assert chat.stdout == ""
    transcript = tmp_path / "t.yaml"
    transcript.write_text("name: t\nturns:\n  - user: Hello\n    expect: {agent: a}\n",
                          encoding="utf-8")
    replay = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert replay.exit_code == 3
    assert replay.stderr.splitlines() == [expected]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(importlib.util.find_spec("litellm") is None,
                    reason="needs the optional LiteLLM extra (pip install "
                           "'routing-runner[litellm]')")
def test_litellm_failures_are_one_line_without_its_banner_or_a_cost_map_fetch(
        tmp_path: Path) -> None:
    # Nothing listens on this port: the connection is refused on every attempt.
    port = _free_port()
    config = write_config(tmp_path, (
        "entry: a\nmodel:\n  provider: litellm\n  name: openai/gpt-test\n"
        f"  base_url: http://127.0.0.1:{port}/v1\n{FAST_RETRIES}"
        f"session: {{path: {tmp_path / 'sessions.db'}}}\nagents: {{a: {{instructions: hi}}}}\n"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM")}
    # A subprocess: LiteLLM fetches its cost map when first imported, once per process.
    done = subprocess.run([sys.executable, "-m", "routing_runner", "chat", str(config),
                           "--session-id", "wire", "-m", "Hello there"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "  [retry] the connection failed; retrying in 0.0s (1/2)",
        "  [retry] the connection failed; retrying in 0.0s (2/2)",
        f"  [error] cannot reach the model provider: [Errno 111] Connect call failed "
        f"('127.0.0.1', {port}); is it running? then /retry (after 2 retries)",
    ]
    assert "LiteLLM" not in done.stderr.replace("model: LiteLLM openai/gpt-test", "")
    _assert_only_the_user_message_is_stored(tmp_path)


def test_a_connection_error_wrapped_in_an_http_500_is_described_as_unreachable() -> None:
    # LiteLLM's shape, built from the openai types it subclasses: a refused connection
    # surfaces as an InternalServerError (status 500) caused by an APIConnectionError.
    import httpx2
    import openai

    from routing_runner.runtime.translate import describe_failure

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    connection = openai.APIConnectionError(request=request)
    connection.__cause__ = refused
    wrapped = openai.InternalServerError(
        "litellm.InternalServerError: OpenAIException - Connection error.",
        response=httpx2.Response(500, request=request), body=None)
    wrapped.__cause__ = connection
    assert describe_failure(wrapped, max_turns=6) == (
        "cannot reach the model provider: [Errno 111] Connect call failed ('127.0.0.1', 9); "
        "is it running? then /retry")


def test_a_key_named_by_api_key_env_is_required_and_used(
        cli: CliRunner, tmp_path: Path, server: WireServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, server, "openai", agents=ONE_AGENT,
                     model_extra="  api_key_env: TEAM_KEY\n")
    missing = cli.invoke(app, ["chat", str(config), "-m", "Hello"])
    assert missing.exit_code == 3
    assert "needs the API key in TEAM_KEY, but it is not set" in missing.stderr
    assert server.requests == []

    monkeypatch.setenv("TEAM_KEY", "sk-team")
    server.script(Text("Hi."))
    assert cli.invoke(app, ["chat", str(config), "-m", "Hello"]).exit_code == 0
    assert server.requests[0].headers["authorization"] == "Bearer sk-team"


def test_tracing_is_off_unless_the_config_turns_it_on(tmp_path: Path) -> None:
    from routing_runner.config import load_config
    from routing_runner.runtime.graph import build_graph
    from routing_runner.runtime.providers import resolve_provider

    def tracing_disabled(run_block: str) -> bool:
        path = write_config(tmp_path, f"entry: a\n{run_block}agents: {{a: {{instructions: hi}}}}\n")
        config = load_config(path, env={}).config
        return build_graph(config, resolve_provider(config, {})).run_config().tracing_disabled

    assert tracing_disabled("") is True
    assert tracing_disabled("run: {tracing: true}\n") is False


def test_auto_uses_openai_when_the_key_is_set_and_says_so(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    server.script(Text("Hi from the wire."))
    config = _config(tmp_path, server, "auto", agents=ONE_AGENT)
    result = _chat(cli, config, "Hello")
    assert f"model: OpenAI Responses API, gpt-test at {server.base_url} - auto: " \
           "OPENAI_API_KEY is set" in result.stderr
    assert "triage: Hi from the wire." in result.stdout


def test_agents_can_run_on_different_providers(cli: CliRunner, tmp_path: Path,
                                                server: WireServer) -> None:
    # Triage routes offline; the Spanish agent answers from the server, with its own settings.
    server.script(Text("Respuesta del servidor."))
    config = write_config(tmp_path, (
        "entry: triage\nmodel: {provider: offline}\n"
        f"session: {{path: {tmp_path / 'sessions.db'}}}\n"
        "agents:\n"
        "  triage: {instructions: Route., handoffs: [spanish, french]}\n"
        "  french: {language: fr, instructions: Français.}\n"
        "  spanish:\n    language: es\n    instructions: Español.\n"
        f"    model: {{provider: openai-compatible, base_url: '{server.base_url}', name: local}}\n"
        "    model_settings: {temperature: 0.7, max_tokens: 50}\n"))
    result = _chat(cli, config, "Hola, ¿me ayudas con mi pedido, por favor?")
    assert result.exit_code == 0, result.output
    assert "  [handoff] triage -> spanish\nspanish: Respuesta del servidor.\n" in result.stdout
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert (request.body["model"], request.body["temperature"]) == ("local", 0.7)
    assert request.body["max_tokens"] == 50
    assert "OFFLINE model" in result.stderr
    assert "OpenAI-compatible Chat Completions" in result.stderr


def test_the_history_limit_bounds_what_is_sent_and_keeps_turns_whole(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    server.responder = lambda body: Text("Vale.")
    server.script(ToolCall("transfer_to_spanish"))
    config = _config(tmp_path, server, "openai").read_text(encoding="utf-8").replace(
        "session:\n", "session:\n  history_limit: 5\n")
    path = write_config(tmp_path, config)
    result = _chat(cli, path, *[f"Mensaje número {n}, en español." for n in range(1, 6)])
    assert result.exit_code == 0, result.output
    last = server.requests[-1].body["input"]
    assert len(last) <= 5 + 1  # the stored history, then the new message
    assert last[0] == {"role": "user", "content": "Mensaje número 3, en español."}
    assert last[-1] == {"role": "user", "content": "Mensaje número 5, en español."}
    # The store keeps everything: 5 user messages, 5 replies, the handoff's call and output.
    assert len(_stored(tmp_path, "wire")) == 12


# --- endpoints that are not the API ---------------------------------------------------------

API_PATHS = {"openai": "/v1/responses", "openai-compatible": "/v1/chat/completions"}


def _endpoint_run(cli: CliRunner, tmp_path: Path, server: WireServer, provider: str,
                  base_url: str) -> Any:
    config = _config(tmp_path, server, provider, agents=ONE_AGENT, model_extra=FAST_RETRIES)
    config.write_text(config.read_text(encoding="utf-8").replace(server.base_url, base_url),
                      encoding="utf-8")
    return _chat(cli, config, "Hello there")


@pytest.mark.parametrize("provider", ["openai", "openai-compatible"])
def test_an_html_page_at_base_url_fails_the_turn_naming_the_url(
        cli: CliRunner, tmp_path: Path, server: WireServer, provider: str) -> None:
    server.script(Fault.html_page())
    result = _endpoint_run(cli, tmp_path, server, provider, server.base_url)
    assert result.exit_code == 3
    assert _error_line(result.stdout) == (
        f"  [error] {server.base_url[:-3]}{API_PATHS[provider]} answered with an HTML page, "
        f"not the OpenAI API; check model.base_url ({server.base_url})"
        + ("; a server without the Responses API needs model.api: chat_completions"
           if provider == "openai" else ": it should be the address of the API"))
    assert len(server.requests) == 1  # a web page does not turn into the API by retrying
    _assert_only_the_user_message_is_stored(tmp_path)


@pytest.mark.parametrize("provider", ["openai", "openai-compatible"])
def test_plain_json_for_a_streamed_request_fails_the_turn_instead_of_an_empty_reply(
        cli: CliRunner, tmp_path: Path, server: WireServer, provider: str) -> None:
    server.script(Fault.json_for_stream())
    result = _endpoint_run(cli, tmp_path, server, provider, server.base_url)
    assert result.exit_code == 3
    assert _error_line(result.stdout) == (
        f"  [error] {server.base_url[:-3]}{API_PATHS[provider]} answered a streamed request "
        "with plain JSON: the server does not stream as the OpenAI API does, and chat and "
        "replay stream every reply; use a server (or a version) that supports \"stream\": true")
    assert len(server.requests) == 1
    _assert_only_the_user_message_is_stored(tmp_path)


@pytest.mark.parametrize("provider", ["openai", "openai-compatible"])
def test_a_404_at_a_base_url_without_v1_suggests_adding_it(
        cli: CliRunner, tmp_path: Path, provider: str) -> None:
    with WireServer(strict=False) as server:  # the unknown route is the point here
        base = server.base_url.removesuffix("/v1")
        result = _endpoint_run(cli, tmp_path, server, provider, base)
        requests = server.requests
    assert result.exit_code == 3
    route = API_PATHS[provider].removeprefix("/v1")
    assert _error_line(result.stdout) == (
        f"  [error] nothing answers at {base}{route} (HTTP 404, request id req_1); check "
        f"model.base_url ({base}): OpenAI and most compatible servers serve the API under "
        f"/v1, so try {base}/v1")
    assert [r.path for r in requests] == [route]
    _assert_only_the_user_message_is_stored(tmp_path)


def test_a_quota_429_with_only_the_type_set_is_not_retried(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    # What OpenAI sends today: the reason in "type", and "code": null.
    quota = Fault.http_error(429, "You exceeded your current quota, please check your plan "
                             "and billing details.", type="insufficient_quota", code=None)
    result = _fault_run(cli, tmp_path, server, quota)
    assert result.exit_code == 3
    assert "[retry]" not in result.stdout
    assert _error_line(result.stdout) == (
        "  [error] the provider's quota is exhausted (HTTP 429, request id req_1); check the "
        "plan and billing")
    assert len(server.requests) == 1
    _assert_only_the_user_message_is_stored(tmp_path)


def test_the_banner_shows_an_endpoint_from_openai_base_url_without_credentials(
        cli: CliRunner, tmp_path: Path, server: WireServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server.script(Text("Hi."))
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url.replace("//", "//proxy:hunter2@"))
    config = write_config(tmp_path, "entry: a\nmodel: {provider: openai, name: gpt-test}\n"
                                    "agents: {a: {instructions: hi}}\n")
    result = cli.invoke(app, ["chat", str(config), "-m", "Hello"])
    assert result.exit_code == 0, result.output
    shown = server.base_url.replace("//", "//proxy:***@")
    assert f"model: OpenAI Responses API, gpt-test at {shown} (from " \
           "OPENAI_BASE_URL) - key from OPENAI_API_KEY\n" in result.stderr
    assert "hunter2" not in result.output
    assert len(server.requests) == 1  # and the endpoint shown is the one used


def test_the_banner_hides_secret_query_parameters_of_a_base_url(cli: CliRunner,
                                                                tmp_path: Path) -> None:
    config = write_config(tmp_path, (
        "entry: a\nmodel: {provider: offline}\nagents:\n  a: {instructions: hi, handoffs: [b]}\n"
        "  b:\n    instructions: hi\n    model: {provider: openai-compatible, name: m, "
        "base_url: 'https://me:pw@llm.example.com/v1?api-key=hunter3&deployment=eu'}\n"))
    result = cli.invoke(app, ["chat", str(config)], input="")
    assert result.exit_code == 0, result.output
    assert "OpenAI-compatible Chat Completions, m at " \
           "https://me:***@llm.example.com/v1?api-key=***&deployment=eu for b" in result.stderr
    assert "hunter3" not in result.output and "me:pw" not in result.output


@pytest.mark.skipif(importlib.util.find_spec("litellm") is None,
                    reason="needs the optional LiteLLM extra (pip install "
                           "'routing-runner[litellm]')")
def test_litellm_requests_are_retried_by_the_one_retry_loop_only(
        tmp_path: Path, server: WireServer) -> None:
    server.script(*[Fault.server_error()] * 3)
    config = write_config(tmp_path, (
        "entry: a\nmodel:\n  provider: litellm\n  name: openai/gpt-test\n"
        f"  base_url: {server.base_url}\n{FAST_RETRIES}"
        f"session: {{path: {tmp_path / 'sessions.db'}}}\nagents: {{a: {{instructions: hi}}}}\n"))
    done = subprocess.run([sys.executable, "-m", "routing_runner", "chat", str(config),
                           "--session-id", "wire", "-m", "Hello there"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OPENAI_API_KEY": "sk-test"})
    assert done.returncode == 3, done.stderr
    assert done.stdout.count("[retry] HTTP 500") == 2
    assert len(server.requests) == 3  # 1 + max_retries: LiteLLM adds no loop of its own
