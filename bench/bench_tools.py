"""The function tool both sides of the tool-turn benchmark call (bench/tool_turn.py).

routing-runner finds it through the config's `python_path` (`bench_tools:lookup_order`); the
hand-written SDK loop imports it. Standard library only.
"""

from __future__ import annotations

import json


def lookup_order(order_id: str) -> str:
    """Look up an order by its id: its status and delivery date."""
    return json.dumps({"order_id": order_id, "status": "shipped", "delivery": "2026-12-03"})
