"""The simulated model: `routing_runner_testing.wire_server.WireServer` in a process of its own.

    python -m bench.loopback --latency 0.05 --token-delay 0.002

prints one JSON line (`{"base_url": ..., "pid": ...}`) once it listens, then serves until its
standard input closes. A separate process keeps the server's CPU off the measured process: it
still shares the machine's cores, so the benchmarks read its CPU time and count it as part of
the model's cost (see `Loopback.cpu_seconds`).

Every request is answered by `bench.scenario.reply_for`, so the script never runs dry however
many conversations run at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from bench.scenario import TOOL_ARGUMENTS, reply_for
from routing_runner_testing import wire_server
from routing_runner_testing.wire_server import RecordedRequest, Reply, Text, ToolCall, WireServer

# socketserver listens with a backlog of 5: a batch that opens 128 connections at once would
# overflow it, and each dropped SYN costs the client a one-second retransmit, which would be
# measured as runner overhead. The bench server accepts like a production server does.
wire_server._HTTPServer.request_queue_size = 1024


class BenchServer(WireServer):
    """A WireServer that forgets requests once answered: a batch makes thousands."""

    served = 0

    def _record(self, method: str, path: str, headers: Mapping[str, str],
                body: Any) -> RecordedRequest:
        record = super()._record(method, path, headers, body)
        with self._lock:
            # Keeping every body (whole histories) would grow the server by gigabytes over a
            # long-conversation run and slow it down; the bench needs only the count.
            self._requests.clear()
            self.served += 1
        return record


def respond(body: Any) -> Reply:
    """The scenario's scripted model: a handoff or function tool call, or a text reply."""
    kind, value = reply_for(body if isinstance(body, dict) else {})
    if kind == "function":
        return ToolCall(value, TOOL_ARGUMENTS)
    return ToolCall(value) if kind == "tool" else Text(value)


def main(argv: list[str] | None = None) -> None:
    """Serve until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds before the first byte of every answer")
    parser.add_argument("--token-delay", type=float, default=0.0,
                        help="seconds between streamed deltas")
    args = parser.parse_args(argv)
    with BenchServer(responder=respond, latency=args.latency, token_delay=args.token_delay,
                     strict=False) as server:
        print(json.dumps({"base_url": server.base_url}), flush=True)
        # The parent closes our stdin to stop us; reading also notices the parent dying.
        sys.stdin.read()
        print(json.dumps({"served": server.served, "errors": server.errors[:3]}), flush=True)


if __name__ == "__main__":
    main()
