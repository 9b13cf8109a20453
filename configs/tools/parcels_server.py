"""A small MCP server for the support example (configs/support.yaml): parcel tracking.

routing-runner starts it over stdio (`tools.parcels.mcp.command`), once per run, shared by the
agents that list it, and stops it on exit. Run it alone with `python parcels_server.py`.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("parcels")

_EVENTS = {
    "A1": ["2026-12-01 collected", "2026-12-02 at the regional depot"],
}


@server.tool()
def track_parcel(order_id: str) -> str:
    """Where the parcel of an order (such as A1) is: its tracking events, latest last."""
    events = _EVENTS.get(order_id.strip().upper())
    if events is None:
        return f"no parcel has left for order {order_id} yet"
    return "; ".join(events)


if __name__ == "__main__":
    server.run("stdio")
