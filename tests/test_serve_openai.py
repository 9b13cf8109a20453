"""`routing-runner serve` through the real `openai` client: a real server process on
127.0.0.1 with the offline model, chat completions and responses, streamed and not."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest

from .conftest import REPO
from .serve_process import ServeProcess

pytestmark = pytest.mark.slow  # a server process per module

HOLA = "Hola, ¿cómo estás?"
FRENCH = "Je veux apprendre le français."
MODEL = "multilingual-support"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """The languages config served on its own SQLite file."""
    folder = tmp_path_factory.mktemp("serve")
    config = folder / "languages.yaml"
    config.write_text((REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
                      .replace("  backend: sqlite ", f"  path: {folder / 'sessions.db'}\n"
                               "  backend: sqlite "), encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ROUTING_RUNNER_PROVIDER")}
    env |= {"OPENAI_AGENTS_DISABLE_TRACING": "1", "XDG_DATA_HOME": str(folder / "data")}
    with ServeProcess(config, env=env) as process:
        yield process


@pytest.fixture
def client(server: ServeProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as client:
        yield client


def _chat(client: openai.OpenAI, message: str, session_id: str | None = None,
          model: str = MODEL) -> tuple[str, Any]:
    headers = {"X-Session-Id": session_id} if session_id else {}
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": message}], extra_headers=headers)
    return raw.headers["x-session-id"], raw.parse()


def _stream(client: openai.OpenAI, message: str,
            session_id: str | None = None) -> tuple[str, list[Any]]:
    headers = {"X-Session-Id": session_id} if session_id else {}
    with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": message}], stream=True,
            extra_headers=headers) as response:
        return response.headers["x-session-id"], list(response.parse())


def test_models_are_the_config_and_each_agent(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == [MODEL, "triage", "french", "spanish", "english"]


def test_a_conversation_by_session_id_routes_spanish_then_french_with_its_history(
        client: openai.OpenAI) -> None:
    session_id, first = _chat(client, HOLA)
    assert first.routing == {"agent": "spanish", "route": ["triage", "spanish"],
                             "session_id": session_id}
    assert "Soy spanish" in first.choices[0].message.content

    same, second = _chat(client, FRENCH, session_id)
    assert same == session_id
    assert second.routing["route"] == ["spanish", "french"]
    # The model saw the history: the second message, the first one quoted.
    assert "C'est le message n° 2 de notre conversation ; le premier était : « Hola, ¿cómo " \
           "estás? »." in second.choices[0].message.content


def test_streamed_completions_stream_the_reply_and_end_with_the_routing(
        client: openai.OpenAI) -> None:
    session_id, chunks = _stream(client, HOLA)
    assert chunks[0].agent == "spanish" or chunks[0].model_extra.get("agent") == "triage"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[offline model] Soy spanish")
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 5
    assert [c.model_extra["handoff"] for c in chunks if "handoff" in c.model_extra] == \
        [{"from": "triage", "to": "spanish"}]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].routing == {"agent": "spanish", "route": ["triage", "spanish"],
                                  "session_id": session_id}

    _same, french = _stream(client, FRENCH, session_id)
    assert french[-1].routing["route"] == ["spanish", "french"]
    text = "".join(c.choices[0].delta.content or "" for c in french if c.choices)
    assert "message n° 2" in text


def test_a_stock_client_without_a_session_id_is_answered_with_the_history_it_sent(
        client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[
        {"role": "system", "content": "ignored: the agents have their own instructions"},
        {"role": "user", "content": HOLA},
        {"role": "assistant", "content": "¡Hola! Bien, gracias."},
        {"role": "user", "content": "Quiero aprender a cocinar paella."},
        {"role": "assistant", "content": "¡Claro que sí!"},
        {"role": "user", "content": FRENCH},
    ])
    completion = raw.parse()
    assert completion.routing["agent"] == "french"
    assert "C'est le message n° 3 de notre conversation ; le premier était : « Hola" \
        in completion.choices[0].message.content
    # The history was stored with the new conversation.
    stored = httpx.get(f"{client.base_url}sessions/{raw.headers['x-session-id']}").json()
    assert [turn["user"] for turn in stored["turns"]] == [
        HOLA, "Quiero aprender a cocinar paella.", FRENCH]


def test_responses_continue_a_conversation_by_id_and_by_previous_response(
        client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input=HOLA)
    session_id = first.metadata["session_id"]
    assert first.metadata == {"session_id": session_id, "agent": "spanish",
                              "route": "triage>spanish"}
    assert first.output_text.startswith("[offline model] Soy spanish")

    second = client.responses.create(model=MODEL, input=FRENCH, conversation=session_id)
    assert second.metadata["route"] == "spanish>french"
    assert "message n° 2" in second.output_text

    events = list(client.responses.create(model=MODEL, input="Merci beaucoup pour votre aide.",
                                          previous_response_id=second.id, stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 5 and "message n° 3" in "".join(deltas)
    assert events[-1].type == "response.completed"
    assert events[-1].response.metadata == {"session_id": session_id, "agent": "french",
                                            "route": "french"}


def test_a_streamed_handoff_is_an_event_a_client_may_ignore(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input=HOLA, stream=True))
    handoffs = [e for e in events if e.type == "response.handoff"]
    assert [(e.source, e.target) for e in handoffs] == [("triage", "spanish")]
    assert events[-1].response.output_text.startswith("[offline model] Soy spanish")


def test_an_agent_model_starts_a_new_conversation_at_that_agent(
        client: openai.OpenAI) -> None:
    _session_id, completion = _chat(client, HOLA, model="french")
    assert completion.routing["route"] == ["french", "spanish"]


def test_errors_come_in_the_openai_shape_with_their_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="unknown model 'gpt-4o'"):
        _chat(client, HOLA, model="gpt-4o")
    with pytest.raises(openai.NotFoundError, match="no conversation 'nobody'"):
        _chat(client, HOLA, session_id="nobody")
    with pytest.raises(openai.BadRequestError, match="must end with a 'user' message"):
        client.chat.completions.create(model=MODEL, messages=[
            {"role": "assistant", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="the message is empty"):
        _chat(client, "   ")
    response = httpx.post(f"{client.base_url}chat/completions", content=b"{not json",
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("the request body is not JSON")


def test_a_stored_conversation_is_shown_and_deleted(client: openai.OpenAI) -> None:
    session_id, _ = _chat(client, HOLA)
    url = f"{client.base_url}sessions/{session_id}"
    shown = httpx.get(url).json()
    assert shown["session_id"] == session_id and shown["last_agent"] == "spanish"
    assert shown["turns"][0]["route"] == ["triage", "spanish"]
    assert shown["items"][0] == {"role": "user", "content": HOLA}
    assert httpx.delete(url).json() == {"id": session_id, "object": "session.deleted",
                                        "deleted": True}
    assert httpx.get(url).status_code == 404
    assert httpx.delete(url).status_code == 404


def test_metrics_count_turns_model_calls_and_errors(client: openai.OpenAI,
                                                    server: ServeProcess) -> None:
    _chat(client, HOLA)
    with pytest.raises(openai.NotFoundError):
        _chat(client, HOLA, model="nope")
    text = httpx.get(server.url + "/metrics").text
    assert 'routing_runner_turns_total{agent="spanish"}' in text
    assert "routing_runner_turn_seconds_bucket" in text
    assert "routing_runner_turns_in_flight 0.0" in text
    assert 'routing_runner_errors_total{kind="model_not_found"}' in text
    assert "routing_runner_model_calls_total" in text


def test_the_access_log_names_requests_never_their_text(client: openai.OpenAI,
                                                        server: ServeProcess) -> None:
    session_id, _ = _chat(client, "Hola, quiero un secreto muy privado.")
    log = server.wait_for_log(f"session {session_id}\n")
    assert "POST /v1/chat/completions 200 " in log
    assert "secreto" not in log
