"""`serve`'s production manners against a real server process and a slow loopback model:
the bearer token, 413, 409, 503, 502, and SIGTERM (finish within the grace, else roll back)."""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.config import load_config
from routing_runner.stores import open_store
from routing_runner_testing.wire_server import Fault, Text, WireServer

from .conftest import write_config
from .serve_process import ServeProcess

pytestmark = pytest.mark.slow  # server processes

SLOW = " ".join(f"word{i}" for i in range(80))


def _reply(body: Mapping[str, Any]) -> Text:
    """Slow (a word every 50 ms) when the user's latest message says so, else at once."""
    said = [item for item in body.get("input") or body.get("messages") or []
            if isinstance(item, dict) and item.get("role") == "user"]
    slow = bool(said) and "slow" in str(said[-1].get("content"))
    return Text(SLOW, token_delay=0.05) if slow else Text("Quick answer.")


@pytest.fixture
def model() -> Iterator[WireServer]:
    with WireServer(responder=_reply, strict=False) as server:
        yield server


def _config(folder: Path, model: WireServer, serve: str) -> Path:
    return write_config(folder, (
        f"name: bot\nentry: bot\nmodel: {{provider: openai, base_url: '{model.base_url}', "
        "retry: {max_retries: 0}}\n"
        f"session: {{path: {folder / 'sessions.db'}}}\n"
        f"serve: {serve}\n"
        "agents: {bot: {instructions: Answer.}}\n"))


def _environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": "sk-test", "OPENAI_AGENTS_DISABLE_TRACING": "1",
            **extra}


_clients: list[openai.OpenAI] = []


def _client(server: ServeProcess, key: str = "unused") -> openai.OpenAI:
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Every openai client a test made is closed (its sockets) when the test ends."""
    yield
    while _clients:
        _clients.pop().close()


class Streaming:
    """A streamed chat completion read on a thread: started once its first chunk arrived."""

    def __init__(self, client: openai.OpenAI, message: str,
                 session_id: str | None = None) -> None:
        self.client = client
        self.chunks: list[Any] = []
        self.error: BaseException | None = None
        self.session_id: str | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(message, session_id),
                                       daemon=True)
        self.thread.start()
        assert self.started.wait(60), self.error

    def _run(self, message: str, session_id: str | None) -> None:
        headers = {"X-Session-Id": session_id} if session_id else {}
        try:
            with self.client.chat.completions.with_streaming_response.create(
                    model="bot", messages=[{"role": "user", "content": message}],
                    stream=True, extra_headers=headers) as response:
                self.session_id = response.headers["x-session-id"]
                for chunk in response.parse():
                    self.chunks.append(chunk)
                    self.started.set()
        except BaseException as exc:
            self.error = exc
        finally:
            self.started.set()

    def finish(self) -> list[Any]:
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self.chunks


def _stored(config: Path, session_id: str) -> list[Any]:
    async def read() -> list[Any]:
        store = open_store(load_config(config).config.session)
        try:
            return await store.read_items(session_id)
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_bearer_token_is_required_when_configured(tmp_path: Path,
                                                    model: WireServer) -> None:
    config = _config(tmp_path, model, "{auth_token_env: BOT_TOKEN}")
    with ServeProcess(config, env=_environment(BOT_TOKEN="s3cret-token")) as server:
        with pytest.raises(openai.AuthenticationError, match="missing or wrong bearer token"):
            _client(server, "wrong").models.list()
        with pytest.raises(openai.AuthenticationError):
            _client(server, "s3cret-token-and-more").models.list()
        assert [m.id for m in _client(server, "s3cret-token").models.list()] == ["bot"]
        assert httpx.get(server.url + "/metrics").status_code == 401
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/").status_code == 200  # the page asks for the token


def test_a_configured_token_variable_that_is_not_set_is_one_line(
        tmp_path: Path, model: WireServer, cli: CliRunner,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = _config(tmp_path, model, "{auth_token_env: BOT_TOKEN}")
    result = cli.invoke(app, ["serve", str(config)])
    assert result.exit_code == 2
    assert result.stderr == ("error: serve.auth_token_env names BOT_TOKEN, which is not set; "
                             "export BOT_TOKEN=<a long random token>\n")


def test_a_message_or_body_over_the_limit_is_413_and_cors_allows_its_origin(
        tmp_path: Path, model: WireServer) -> None:
    config = _config(tmp_path, model, "{max_message_chars: 100, max_body_bytes: 2048, "
                                      "cors_origins: ['https://chat.example.com']}")
    with ServeProcess(config, env=_environment()) as server:
        client = _client(server)
        with pytest.raises(openai.APIStatusError, match="at most 100") as refused:
            client.chat.completions.create(model="bot", messages=[
                {"role": "user", "content": "x" * 101}])
        assert refused.value.status_code == 413
        with pytest.raises(openai.APIStatusError, match="over 2,048 bytes") as refused:
            client.chat.completions.create(model="bot", messages=[
                {"role": "assistant", "content": "y" * 3000},
                {"role": "user", "content": "short"}])
        assert refused.value.status_code == 413
        chunked = httpx.post(server.base_url + "/chat/completions",
                             content=iter([b"{" + b" " * 3000 + b"}"]))
        assert chunked.status_code == 413
        preflight = httpx.options(server.base_url + "/chat/completions", headers={
            "Origin": "https://chat.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, x-session-id"})
        assert preflight.headers["access-control-allow-origin"] == "https://chat.example.com"
        elsewhere = httpx.get(server.base_url + "/models",
                              headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in elsewhere.headers


def test_a_busy_conversation_is_409_after_the_wait_and_free_again_after(
        tmp_path: Path, model: WireServer) -> None:
    config = _config(tmp_path, model, "{lock_wait: 0.2}")
    with ServeProcess(config, env=_environment()) as server:
        client = _client(server)
        first = Streaming(client, "a slow one please")
        assert first.session_id is not None
        with pytest.raises(openai.ConflictError, match="is busy with another request") as busy:
            client.chat.completions.create(model="bot", extra_headers={
                "X-Session-Id": first.session_id}, messages=[{"role": "user", "content": "hi"}])
        assert busy.value.response.headers["x-should-retry"] == "false"
        assert first.finish()[-1].routing["agent"] == "bot"
        again = client.chat.completions.create(model="bot", extra_headers={
            "X-Session-Id": first.session_id}, messages=[{"role": "user", "content": "hi"}])
        assert again.choices[0].message.content == "Quick answer."


def test_more_turns_than_allowed_at_once_are_503_with_retry_after(
        tmp_path: Path, model: WireServer) -> None:
    config = _config(tmp_path, model, "{max_concurrent_turns: 1}")
    with ServeProcess(config, env=_environment()) as server:
        client = _client(server)
        first = Streaming(client, "a slow one please")
        with pytest.raises(openai.InternalServerError, match="runs 1 turns at once") as busy:
            client.chat.completions.create(model="bot", messages=[
                {"role": "user", "content": "hi"}])
        assert busy.value.status_code == 503
        assert busy.value.response.headers["retry-after"] == "1"
        first.finish()
        assert client.chat.completions.create(model="bot", messages=[
            {"role": "user", "content": "hi"}]).choices[0].message.content == "Quick answer."


def test_a_model_provider_failure_is_502_with_the_line_chat_prints(
        tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    with WireServer(responder=lambda _body: Fault.unauthorized(), strict=False) as failing:
        config = _config(tmp_path, failing, "{}")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        chat = cli.invoke(app, ["chat", str(config), "-m", "hello"])
        printed = re.search(r"\[error\] (.*)", chat.stdout)
        assert printed, chat.output
        with ServeProcess(config, env=_environment()) as server:
            with pytest.raises(openai.APIStatusError) as failed:
                _client(server).chat.completions.create(model="bot", messages=[
                    {"role": "user", "content": "hello"}])
    assert failed.value.status_code == 502
    # The same line, but for the request id the loopback server counts up.
    assert failed.value.body == {"message": printed.group(1).replace("req_1", "req_2"),
                                 "type": "server_error", "param": None,
                                 "code": "model_failure"}


def test_sigterm_lets_a_running_turn_finish_and_stops(tmp_path: Path,
                                                      model: WireServer) -> None:
    config = _config(tmp_path, model, "{shutdown_grace: 30}")
    with ServeProcess(config, env=_environment()) as server:
        stream = Streaming(_client(server), "a slow one please")
        server.process.terminate()  # SIGTERM
        chunks = stream.finish()
        assert server.terminate() == 0
    assert stream.error is None
    assert chunks[-1].routing["agent"] == "bot"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == SLOW
    assert stream.session_id is not None
    items = _stored(config, stream.session_id)
    assert [item.get("role") for item in items] == ["user", "assistant"]


def test_a_turn_over_the_timeout_is_504_and_sigterm_rolls_back_one_past_the_grace(
        tmp_path: Path, model: WireServer) -> None:
    config = _config(tmp_path, model, "{shutdown_grace: 0, turn_timeout: 1}")
    with ServeProcess(config, env=_environment()) as server:
        raw = _client(server).chat.completions.with_raw_response
        with pytest.raises(openai.APIStatusError, match="took longer than 1 s") as late:
            raw.create(model="bot", messages=[{"role": "user", "content": "slow, in time?"}])
        assert late.value.status_code == 504
        timed_out = late.value.response.headers["x-session-id"]
        assert _stored(config, timed_out) == [{"role": "user", "content": "slow, in time?"}]
        stream = Streaming(_client(server), "a slow one please")
        server.process.terminate()
        stream.finish()
        assert server.terminate() == 0
    assert stream.session_id is not None
    # The user's message is kept, the half reply is not.
    assert _stored(config, stream.session_id) == [
        {"role": "user", "content": "a slow one please"}]


def test_two_workers_answer_and_log_one_json_line_per_request(tmp_path: Path,
                                                              model: WireServer) -> None:
    import json

    config = _config(tmp_path, model, "{}")
    with ServeProcess(config, "--workers", "2", "--log-format", "json",
                      env=_environment()) as server:
        client = _client(server)
        answered = [client.chat.completions.create(model="bot", messages=[
            {"role": "user", "content": f"private question {n}"}]) for n in range(4)]
        assert [a.choices[0].message.content for a in answered] == ["Quick answer."] * 4
        assert server.terminate() == 0
    assert "listening on http://127.0.0.1:" in server.log and "(2 workers, no auth)" in server.log
    records = [json.loads(line) for line in server.log.splitlines() if line.startswith("{")]
    turns = [r for r in records if r["path"] == "/v1/chat/completions"]
    assert len(turns) == 4
    assert {r["session_id"] for r in turns} == {a.routing["session_id"] for a in answered}
    assert set(turns[0]) == {"time", "method", "path", "status", "ms", "session_id"}
    assert "private question" not in server.log


def test_a_client_that_leaves_mid_stream_interrupts_its_turn(tmp_path: Path,
                                                             model: WireServer) -> None:
    config = _config(tmp_path, model, "{}")
    with ServeProcess(config, env=_environment()) as server:
        with httpx.stream("POST", server.base_url + "/chat/completions", json={
                "model": "bot", "stream": True,
                "messages": [{"role": "user", "content": "a slow one please"}]}) as response:
            session_id = response.headers["x-session-id"]
            lines = response.iter_lines()
            while "word1" not in next(lines):
                pass
        # The next turn waits for the conversation: had the left turn gone on, its reply
        # would be stored before this one.
        _client(server).chat.completions.create(model="bot", extra_headers={
            "X-Session-Id": session_id}, messages=[{"role": "user", "content": "hi"}])
    # The left turn was rolled back to the user's message, as Ctrl-C does in a chat.
    stored = _stored(config, session_id)
    assert [item.get("role") for item in stored] == ["user", "user", "assistant"]
    assert stored[:2] == [{"role": "user", "content": "a slow one please"},
                          {"role": "user", "content": "hi"}]
    assert "Quick answer." in str(stored[2]["content"])
