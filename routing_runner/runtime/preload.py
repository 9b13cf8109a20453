"""The Agents SDK imported ahead of need: `chat` starts it first thing, so the CLI's own work
(the config, the store, the prompt) runs while it loads, and the first reply comes sooner.

Only `agents` itself is imported here, not one of our modules that use it: a thread inside the
import of one of ours holds that module's import lock, and the main thread importing the same
module (the prompt path imports some of `runtime`) would wait for the whole SDK, so the prompt
would no longer come before it.
"""

from __future__ import annotations

import contextlib
import threading


def start_sdk_import() -> None:
    """Import the Agents SDK on a daemon thread; returns at once."""
    threading.Thread(target=_import_sdk, name="import-sdk", daemon=True).start()


def _import_sdk() -> None:
    # A failure is reported by the import that needs the SDK, on the main path, as usual.
    with contextlib.suppress(BaseException):
        import agents  # noqa: F401
