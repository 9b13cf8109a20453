"""The session store backends behind `routing_runner.stores.base.open_store`, one per module.

Each module imports its driver (and the Agents SDK) only when its store is used, so a missing
optional package is reported by name only for the backend that needs it.
"""
