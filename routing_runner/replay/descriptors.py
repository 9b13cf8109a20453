"""The process's open-file limit: how many descriptors are in use, and raising the soft limit.

A batch that runs more conversations at once than the limit allows fails some of them with
"Too many open files", so `replay` sizes its concurrency with these (see
`replay.plan.fit_concurrency`).
"""

from __future__ import annotations

import os

try:
    import resource
except ImportError:  # pragma: no cover - Windows has no RLIMIT_NOFILE
    resource = None  # type: ignore[assignment]

# Where a process can list its own descriptors (Linux, then macOS and the BSDs).
_FD_FOLDERS = ("/proc/self/fd", "/dev/fd")
# Assumed in use when the descriptors cannot be listed: a started Python has about ten.
_UNKNOWN_IN_USE = 64


def open_descriptors() -> int:
    """How many descriptors this process holds now (an estimate where they cannot be listed)."""
    for folder in _FD_FOLDERS:
        try:
            # listdir's own descriptor is counted too: a margin of one, never a shortfall.
            return len(os.listdir(folder))
        except OSError:
            continue
    return _UNKNOWN_IN_USE


def open_file_limit(wanted: int) -> int | None:
    """The soft open-file limit, first raised towards `wanted` as far as the hard limit allows.

    None when the platform has no such limit. The soft limit is raised only as far as needed:
    a process that holds few files keeps the limit it was given.
    """
    if resource is None:  # pragma: no cover
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    if wanted > soft:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            # macOS refuses more than OPEN_MAX even under an unlimited hard limit.
            return int(soft)
        return int(target)
    return int(soft)
