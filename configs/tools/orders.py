"""Order lookups for the support example (configs/support.yaml): a plain Python function tool.

The Agents SDK makes the tool from the function itself: its name, its docstring as the
description, and a JSON schema of its parameters from the signature.
"""

from __future__ import annotations

import json

_ORDERS = {
    "A1": {"status": "shipped", "carrier": "parcel post", "delivery": "2026-12-03"},
    "B2": {"status": "preparing", "carrier": None, "delivery": "2026-12-08"},
}


def lookup_order(order_id: str) -> str:
    """Look up an order by its id (such as A1): its status, carrier and delivery date."""
    order = _ORDERS.get(order_id.strip().upper())
    if order is None:
        # The model is told the call failed (the SDK's error output) and can ask again.
        raise LookupError(f"no order {order_id!r}")
    return json.dumps({"order_id": order_id.strip().upper(), **order})
