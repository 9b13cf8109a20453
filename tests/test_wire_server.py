"""Proves routing_runner_testing/wire_server.py against the real ``openai`` client and Agents SDK.

Every exchange goes over real HTTP to 127.0.0.1; nothing here may reach the network.
The happy paths also validate each payload against the openai pydantic models, because the
client itself only *constructs* models (no validation) and would hide schema mistakes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from agents import (
    Agent,
    ModelBehaviorError,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    set_tracing_disabled,
)
from agents.models.interface import Model
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import (
    Response,
    ResponseErrorEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)
from pydantic import TypeAdapter

from routing_runner_testing.wire_server import Fault, Text, ToolCall, Turn, WireServer

USER_MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
STREAM_EVENT = TypeAdapter(ResponseStreamEvent)
ENDPOINTS = ["responses", "chat"]

# A test that hangs is worse than one that fails: every client gets a short timeout.
CLIENT_TIMEOUT = 5.0


@pytest.fixture(autouse=True)
def _no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the Agents SDK from exporting traces (it would call api.openai.com)."""
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    set_tracing_disabled(True)


@pytest.fixture
def server() -> Iterator[WireServer]:
    """A running server; strict, so leftover script errors fail the test at teardown."""
    with WireServer() as wire:
        yield wire


def _async_client(server: WireServer, timeout: float = CLIENT_TIMEOUT) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=timeout)


def _sync_client(server: WireServer) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=CLIENT_TIMEOUT)


async def _create(client: AsyncOpenAI, endpoint: str, *, stream: bool, **extra: Any) -> Any:
    """One request to either endpoint, with the minimal valid body."""
    if endpoint == "responses":
        return await client.responses.create(model="gpt-test", input="hi", stream=stream, **extra)
    return await client.chat.completions.create(
        model="gpt-test", messages=USER_MESSAGES, stream=stream, **extra
    )


async def _drain(stream: Any, sink: list[Any]) -> None:
    """Consume a stream into ``sink`` (kept by the caller if iteration raises), then close it."""
    async with stream:
        async for item in stream:
            sink.append(item)


def _collect(server: WireServer, endpoint: str, sink: list[Any], **extra: Any) -> None:
    """Stream one request into ``sink``, on a fresh event loop and client."""

    async def scenario() -> None:
        async with _async_client(server, timeout=extra.pop("timeout", CLIENT_TIMEOUT)) as client:
            await _drain(await _create(client, endpoint, stream=True, **extra), sink)

    asyncio.run(scenario())


# ----------------------------------------------------------------------------------------
# Responses API
# ----------------------------------------------------------------------------------------


def test_responses_stream_text_events_in_order_and_schema_valid(server: WireServer) -> None:
    server.script(Text("Hello wire world", chunk_size=5))
    events: list[Any] = []
    _collect(server, "responses", events)

    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    for event in events:
        STREAM_EVENT.validate_python(event.to_dict())
    deltas = [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert deltas == ["Hello", " wire", " worl", "d"]
    completed = events[-1].response
    assert completed.status == "completed"
    assert completed.output_text == "Hello wire world"
    assert completed.usage.output_tokens == 4
    assert completed.usage.input_tokens_details.cache_write_tokens == 0

    (request,) = server.requests
    assert (request.method, request.path, request.stream) == ("POST", "/v1/responses", True)
    assert request.headers["authorization"] == "Bearer test"
    assert request.body["model"] == "gpt-test"
    assert request.request_id == "req_1"


def test_responses_stream_function_calls_in_one_turn(server: WireServer) -> None:
    server.script(
        Turn(
            Text("Checking."),
            ToolCall("get_weather", {"city": "Paris"}, call_id="call_a", chunk_size=6),
            ToolCall("get_time"),
        )
    )
    events: list[Any] = []
    _collect(server, "responses", events)

    for event in events:
        STREAM_EVENT.validate_python(event.to_dict())
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert [item.type for item in added] == ["message", "function_call", "function_call"]
    assert added[1].name == "get_weather"
    assert added[1].call_id == "call_a"
    assert added[2].call_id.startswith("call_")
    argument_deltas = [
        e.delta
        for e in events
        if e.type == "response.function_call_arguments.delta" and e.output_index == 1
    ]
    assert argument_deltas == ['{"city', '":"Par', 'is"}']
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [e.arguments for e in done] == ['{"city":"Paris"}', "{}"]
    output = events[-1].response.output
    assert [item.type for item in output] == ["message", "function_call", "function_call"]
    assert output[1].arguments == '{"city":"Paris"}'
    assert output[1].status == "completed"


def test_responses_plain_json_when_not_streamed(server: WireServer) -> None:
    server.script(Text("Plain answer."), ToolCall("lookup", '{"q":"x"}'))

    async def scenario() -> tuple[Any, Any]:
        async with _async_client(server) as client:
            first = await client.responses.create(model="gpt-test", input="hi")
            second = await client.responses.create(model="gpt-test", input="again")
            return first, second

    first, second = asyncio.run(scenario())
    Response.model_validate(first.to_dict())
    assert first.output_text == "Plain answer."
    assert first._request_id == "req_1"
    assert second.output[0].type == "function_call"
    assert second.output[0].arguments == '{"q":"x"}'
    assert [r.stream for r in server.requests] == [False, False]


def test_sync_client_is_served_too(server: WireServer) -> None:
    server.script(Text("From a thread-free client."))
    with _sync_client(server) as client:
        response = client.responses.create(model="gpt-test", input="hi")
    assert response.output_text == "From a thread-free client."


# ----------------------------------------------------------------------------------------
# Chat Completions
# ----------------------------------------------------------------------------------------


def test_chat_stream_text_with_usage_chunk_and_done(server: WireServer) -> None:
    server.script(Text("Hi there, friend"))
    chunks: list[Any] = []
    _collect(server, "chat", chunks, stream_options={"include_usage": True})

    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.to_dict())
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices]
    assert content == ["", "Hi", " there,", " friend", None]
    assert chunks[-2].choices[0].finish_reason == "stop"
    # The usage chunk comes last, with no choices; [DONE] ends iteration without a chunk.
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3
    assert server.requests[0].path == "/v1/chat/completions"


def test_chat_stream_tool_calls(server: WireServer) -> None:
    server.script(Turn(ToolCall("a", {"x": 1}, chunk_size=3), ToolCall("b", call_id="call_b")))
    chunks: list[Any] = []
    _collect(server, "chat", chunks)

    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.to_dict())
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    assert calls[0]["name"] == "a"
    assert calls[0]["arguments"] == '{"x":1}'
    assert calls[1] == {"id": "call_b", "name": "b", "arguments": "{}"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(c.usage is None for c in chunks)  # no include_usage, no usage chunk


def test_chat_plain_json_when_not_streamed(server: WireServer) -> None:
    server.script(Text("Plain chat."), ToolCall("lookup", call_id="call_1"))

    async def scenario() -> tuple[Any, Any]:
        async with _async_client(server) as client:
            return (
                await _create(client, "chat", stream=False),
                await _create(client, "chat", stream=False),
            )

    text, tool = asyncio.run(scenario())
    ChatCompletion.model_validate(text.to_dict())
    ChatCompletion.model_validate(tool.to_dict())
    assert text.choices[0].message.content == "Plain chat."
    assert text.choices[0].finish_reason == "stop"
    assert text.usage.total_tokens > 0
    assert tool.choices[0].finish_reason == "tool_calls"
    assert tool.choices[0].message.content is None
    assert tool.choices[0].message.tool_calls[0].id == "call_1"


# ----------------------------------------------------------------------------------------
# Agents SDK
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ENDPOINTS)
def test_agents_sdk_streams_text_and_hands_off(server: WireServer, api: str) -> None:
    server.script(ToolCall("transfer_to_spanish"), Text("¡Hola, amigo! ¿Qué tal?"))

    async def scenario() -> tuple[Any, list[str]]:
        async with _async_client(server) as client:
            model: Model
            if api == "responses":
                model = OpenAIResponsesModel(model="gpt-test", openai_client=client)
            else:
                model = OpenAIChatCompletionsModel(model="gpt-test", openai_client=client)
            settings = ModelSettings(include_usage=True)
            spanish = Agent(
                name="spanish",
                instructions="Reply in Spanish.",
                model=model,
                model_settings=settings,
            )
            triage = Agent(
                name="triage",
                instructions="Route the user.",
                handoffs=[spanish],
                model=model,
                model_settings=settings,
            )
            result = Runner.run_streamed(
                triage, "hola", run_config=RunConfig(tracing_disabled=True)
            )
            deltas = [
                event.data.delta
                async for event in result.stream_events()
                if event.type == "raw_response_event"
                and isinstance(event.data, ResponseTextDeltaEvent)
            ]
            return result, deltas

    result, deltas = asyncio.run(scenario())

    assert deltas == ["¡Hola,", " amigo!", " ¿Qué", " tal?"]
    assert result.final_output == "¡Hola, amigo! ¿Qué tal?"
    assert result.last_agent.name == "spanish"
    usage = result.context_wrapper.usage
    assert usage.requests == 2
    assert usage.output_tokens == 1 + 4  # "{}" in one delta, then four words

    first, second = server.requests
    assert first.stream and second.stream
    if api == "responses":
        assert first.path == second.path == "/v1/responses"
        assert [tool["name"] for tool in first.body["tools"]] == ["transfer_to_spanish"]
        assert second.body["instructions"] == "Reply in Spanish."
        assert any(item.get("type") == "function_call_output" for item in second.body["input"])
    else:
        assert first.path == second.path == "/v1/chat/completions"
        assert [t["function"]["name"] for t in first.body["tools"]] == ["transfer_to_spanish"]
        assert second.body["messages"][0] == {"role": "system", "content": "Reply in Spanish."}
        assert any(message["role"] == "tool" for message in second.body["messages"])


async def _stream_one_responses_turn(server: WireServer) -> None:
    """One streamed SDK turn of a single agent on the Responses API, events drained."""
    async with _async_client(server) as client:
        model = OpenAIResponsesModel(model="gpt-test", openai_client=client)
        agent = Agent(name="solo", instructions="Answer.", model=model)
        result = Runner.run_streamed(agent, "hi", run_config=RunConfig(tracing_disabled=True))
        async for _ in result.stream_events():
            pass


def test_agents_sdk_raises_on_sse_error_event(server: WireServer) -> None:
    server.script(Fault.sse_error(code="server_error", message="boom", after_events=4))

    with pytest.raises(ModelBehaviorError, match="code=server_error; message=boom"):
        asyncio.run(_stream_one_responses_turn(server))
    assert len(server.requests) == 1


def test_agents_sdk_rejects_responses_stream_without_completed(server: WireServer) -> None:
    server.script(Fault.eof_without_completed())

    with pytest.raises(ModelBehaviorError, match="did not produce a final response"):
        asyncio.run(_stream_one_responses_turn(server))


# ----------------------------------------------------------------------------------------
# Scripting
# ----------------------------------------------------------------------------------------


def test_script_runs_before_responder_then_responder_answers(server: WireServer) -> None:
    def echo(body: Any) -> Text:
        return Text(f"echo: {body['input']}")

    server.responder = echo
    server.script(Text("scripted"))

    async def scenario() -> list[str]:
        async with _async_client(server) as client:
            return [
                (await client.responses.create(model="gpt-test", input=text)).output_text
                for text in ("one", "two", "three")
            ]

    assert asyncio.run(scenario()) == ["scripted", "echo: two", "echo: three"]
    assert server.pending == 0


def test_no_scripted_reply_left_is_loud() -> None:
    with pytest.raises(AssertionError, match="no scripted reply left"):
        with WireServer() as server, _sync_client(server) as client:
            with pytest.raises(openai.InternalServerError, match="no scripted reply left") as info:
                client.responses.create(model="gpt-test", input="hi")
            assert info.value.code == "no_scripted_reply"
            assert len(server.requests) == 1
            assert server.errors == [
                "wire_server: no scripted reply left for POST /v1/responses (req_1)"
            ]


def test_unknown_route_is_recorded_as_error() -> None:
    with WireServer(strict=False) as server, _sync_client(server) as client:
        with pytest.raises(openai.NotFoundError):
            client.models.list()
    assert server.requests[0].method == "GET"
    assert server.requests[0].path == "/v1/models"
    assert "no route for GET /v1/models" in server.errors[0]


def test_script_rejects_non_replies() -> None:
    with pytest.raises(TypeError):
        WireServer("not a reply")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size"):
        Text("x", chunk_size=0)


def test_concurrent_streams_are_recorded_safely(server: WireServer) -> None:
    server.responder = lambda body: Text(f"answer {body['input']}", token_delay=0.01)

    async def scenario() -> list[str]:
        async with _async_client(server) as client:

            async def one(n: int) -> str:
                events: list[Any] = []
                await _drain(
                    await client.responses.create(model="gpt-test", input=str(n), stream=True),
                    events,
                )
                return str(events[-1].response.output_text)

            return await asyncio.gather(*(one(n) for n in range(8)))

    assert asyncio.run(scenario()) == [f"answer {n}" for n in range(8)]
    requests = server.wait_for_requests(8, timeout=1)
    assert sorted(r.body["input"] for r in requests) == [str(n) for n in range(8)]
    assert len({r.request_id for r in requests}) == 8
    assert [r.index for r in requests] == list(range(8))


def test_latency_and_token_delay(server: WireServer) -> None:
    server.script(Text("a b c d", latency=0.15, token_delay=0.05))
    arrivals: list[float] = []

    async def scenario() -> float:
        async with _async_client(server) as client:
            started = time.monotonic()
            stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
            async with stream:
                async for event in stream:
                    if event.type == "response.output_text.delta":
                        arrivals.append(time.monotonic())
            return started

    started = asyncio.run(scenario())
    assert len(arrivals) == 4
    assert arrivals[0] - started >= 0.15
    assert arrivals[-1] - arrivals[0] >= 3 * 0.05 * 0.9  # three gaps; allow timer slack


# ----------------------------------------------------------------------------------------
# Faults
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("fault", "error_type", "code", "retry_after"),
    [
        (Fault.unauthorized(), openai.AuthenticationError, "invalid_api_key", None),
        (Fault.rate_limited(), openai.RateLimitError, "rate_limit_exceeded", None),
        (Fault.rate_limited(retry_after=2), openai.RateLimitError, "rate_limit_exceeded", "2"),
        (Fault.quota_exhausted(), openai.RateLimitError, "insufficient_quota", None),
        (Fault.server_error(), openai.InternalServerError, None, None),
    ],
    ids=["401", "429", "429-retry-after", "429-quota", "500"],
)
def test_http_faults_raise_typed_errors(
    server: WireServer,
    endpoint: str,
    fault: Fault,
    error_type: type[openai.APIStatusError],
    code: str | None,
    retry_after: str | None,
) -> None:
    server.script(fault)

    async def scenario() -> None:
        async with _async_client(server) as client:
            await _create(client, endpoint, stream=True)

    with pytest.raises(error_type) as info:
        asyncio.run(scenario())
    error = info.value
    assert error.status_code == fault.status
    assert error.code == code
    assert error.request_id == "req_1"
    assert error.response.headers.get("retry-after") == retry_after
    assert isinstance(error.body, dict)
    assert error.body["message"] == fault.error["message"]  # type: ignore[index]
    assert len(server.requests) == 1
    assert server.requests[0].stream


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_reset_before_headers_is_a_connection_error(server: WireServer, endpoint: str) -> None:
    server.script(Fault.reset_before_headers())
    sink: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as info:
        _collect(server, endpoint, sink)
    assert not isinstance(info.value, openai.APITimeoutError)
    assert sink == []
    assert len(server.requests) == 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_reset_mid_stream_after_some_events(server: WireServer, endpoint: str) -> None:
    server.script(Fault.reset_mid_stream(after_events=5))
    sink: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as info:
        _collect(server, endpoint, sink)
    assert not isinstance(info.value, openai.APITimeoutError)
    assert len(sink) == 5  # every event sent before the reset is delivered
    assert len(server.requests) == 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_stalled_stream_times_out(server: WireServer, endpoint: str) -> None:
    server.script(Fault.stall(after_events=3))  # silent until the server stops
    sink: list[Any] = []
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        _collect(server, endpoint, sink, timeout=0.3)
    assert time.monotonic() - started < 3
    assert len(sink) == 3
    assert len(server.requests) == 1


def test_finite_stall_resumes_and_completes(server: WireServer) -> None:
    server.script(Fault.stall(after_events=4, seconds=0.2, text="slow but complete"))
    sink: list[Any] = []
    started = time.monotonic()
    _collect(server, "responses", sink)
    assert time.monotonic() - started >= 0.2
    assert sink[-1].type == "response.completed"
    assert sink[-1].response.output_text == "slow but complete"


def test_close_does_not_hang_on_stalled_stream() -> None:
    server = WireServer(Fault.stall(after_events=3)).start()

    async def scenario() -> tuple[float, list[Any]]:
        async with _async_client(server, timeout=30) as client:
            events: list[Any] = []
            stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
            async with stream:
                async for event in stream:
                    events.append(event)
                    if len(events) == 3:
                        started = time.monotonic()
                        await asyncio.to_thread(server.close)
                        elapsed = time.monotonic() - started
                        # The stalled connection was aborted; the client sees it at once.
                        with pytest.raises(openai.APIConnectionError):
                            await stream.__anext__()
                        return elapsed, events
        raise AssertionError("stream ended before the stall")

    try:
        elapsed, events = asyncio.run(scenario())
    finally:
        server.close()
    assert elapsed < 2
    assert len(events) == 3
    assert server.errors == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_malformed_sse_json_raises_decode_error(server: WireServer, endpoint: str) -> None:
    server.script(Fault.malformed_sse(after_events=2))
    sink: list[Any] = []
    with pytest.raises(json.JSONDecodeError):
        _collect(server, endpoint, sink)
    assert len(sink) == 2
    assert len(server.requests) == 1


def test_responses_sse_error_event(server: WireServer) -> None:
    server.script(
        Fault.sse_error(code="server_error", message="The model crashed.", after_events=5)
    )
    events: list[Any] = []
    _collect(server, "responses", events)
    # The Responses API reports in-stream errors as a typed event, not an exception.
    error = events[-1]
    assert isinstance(error, ResponseErrorEvent)
    assert (error.code, error.message, error.sequence_number) == (
        "server_error",
        "The model crashed.",
        5,
    )
    STREAM_EVENT.validate_python(error.to_dict())
    assert len(events) == 6
    assert len(server.requests) == 1


def test_chat_sse_error_chunk_raises_api_error(server: WireServer) -> None:
    server.script(Fault.sse_error(code="server_error", message="The model crashed."))
    sink: list[Any] = []
    with pytest.raises(openai.APIError, match=r"The model crashed\.") as info:
        _collect(server, "chat", sink)
    assert not isinstance(info.value, openai.APIStatusError)
    assert info.value.code == "server_error"
    assert len(sink) == 5


def test_responses_eof_without_completed(server: WireServer) -> None:
    server.script(Fault.eof_without_completed(text="cut short"))
    events: list[Any] = []
    _collect(server, "responses", events)
    types = [e.type for e in events]
    assert "response.output_item.done" in types
    assert "response.completed" not in types
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        "cut short"
    )


def test_chat_eof_without_done(server: WireServer) -> None:
    server.script(Fault.eof_without_completed(text="cut short"))
    chunks: list[Any] = []
    _collect(server, "chat", chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "cut short"
    assert all(c.choices[0].finish_reason is None for c in chunks)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (Fault.reset_mid_stream(), openai.APIConnectionError),
        (Fault.stall(), openai.APITimeoutError),
        (Fault.eof_without_completed(), openai.APIConnectionError),
        (Fault.malformed_sse(), json.JSONDecodeError),
        (Fault.sse_error(), openai.InternalServerError),
    ],
    ids=["reset", "stall", "eof", "malformed", "error"],
)
def test_stream_faults_on_plain_json_requests(
    server: WireServer, endpoint: str, fault: Fault, error_type: type[Exception]
) -> None:
    server.script(fault)

    async def scenario() -> None:
        async with _async_client(server, timeout=0.3) as client:
            await _create(client, endpoint, stream=False)

    with pytest.raises(error_type):
        asyncio.run(scenario())
    assert len(server.requests) == 1
    assert not server.requests[0].stream


@pytest.mark.parametrize("stream", [True, False])
def test_html_page_answers_200_text_html_on_either_route(server: WireServer,
                                                         stream: bool) -> None:
    server.script(Fault.html_page(), Fault.html_page(status=404))
    for path, status in (("/chat/completions", 200), ("/responses", 404)):
        answer = httpx2.post(server.base_url + path, json={"model": "m", "stream": stream})
        assert answer.status_code == status
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.text.startswith("<!DOCTYPE html>")


def test_json_for_stream_answers_plain_json_to_a_streamed_request(server: WireServer) -> None:
    server.script(Fault.json_for_stream(text="Not streamed."))
    answer = httpx2.post(server.base_url + "/chat/completions",
                        json={"model": "m", "stream": True, "messages": USER_MESSAGES})
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["choices"][0]["message"]["content"] == "Not streamed."
