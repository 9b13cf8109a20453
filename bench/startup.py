"""3. Start-up: whole processes, as a user starts them.

- `routing-runner --help` and `routing-runner validate configs/languages.yaml`: wall time to
  exit, and whether the Agents SDK was imported at all (`python -X importtime`).
- `routing-runner chat` under a pseudo-terminal, as a person would run it: the time until the
  prompt `you> ` appears, and until the first reply's text appears when the message is typed
  the moment the prompt shows (the worst case for loading the SDK in the background). The
  hand-written SDK loop, which imports the SDK before its prompt, is the baseline.

"Not delayed" for the first reply means: no later than the baseline's first reply plus the
CLI's own start-up work (what `validate` costs beyond a bare interpreter), which any CLI that
reads a config pays before it can answer.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.common import (
    PYTHON,
    ROOT,
    ROUTING_RUNNER,
    BenchError,
    Loopback,
    Section,
    at_most,
    bench_env,
    median,
    ratio,
    scratch,
)
from bench.scenario import CONVERSATION, config_yaml

HELP_TARGET = 0.3
VALIDATE_TARGET = 0.3
PROMPT_TARGET = 0.5
PROMPT = "you> "
# Any module of the SDK: `import time: self | cumulative | agents` or `|   agents.run`.
SDK_IMPORT = re.compile(r"\|\s+agents(\.|$)", re.MULTILINE)
LANGUAGES_CONFIG = ROOT / "configs" / "languages.yaml"


@dataclass(frozen=True)
class StartupSettings:
    """Repetitions and the simulated model's timing for the chat's first reply."""

    repetitions: int = 5
    latency: float = 0.05
    token_delay: float = 0.002
    quick: bool = False


def wall(args: Sequence[str], env: Mapping[str, str], repetitions: int) -> float:
    """Median wall time of running `args` to its end."""
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        done = subprocess.run(args, cwd=ROOT, env=dict(env), capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(args)} exited {done.returncode}: "
                             f"{done.stderr.decode()[-500:]}")
    result = median(times)
    assert result is not None
    return result


def imports_sdk(args: Sequence[str], env: Mapping[str, str]) -> bool:
    """Whether running `routing-runner ARGS` imports any module of the Agents SDK."""
    done = subprocess.run([PYTHON, "-X", "importtime", "-m", "routing_runner", *args],
                          cwd=ROOT, env=dict(env), capture_output=True, text=True, check=False)
    return SDK_IMPORT.search(done.stderr) is not None


@dataclass(frozen=True)
class ChatTimes:
    """Seconds from the process start until the prompt, and until the first reply's text."""

    prompt: float
    reply: float


def chat_times(args: Sequence[str], env: Mapping[str, str], message: str, reply_marker: str,
               timeout: float = 60.0) -> ChatTimes:
    """Run a chat under a pty; type `message` at the first prompt; time the reply."""
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the chat
        try:
            os.chdir(ROOT)
            os.execve(args[0], list(args), dict(env))
        finally:
            os._exit(127)
    output = b""
    prompt_at: float | None = None
    reply_at: float | None = None
    deadline = started + timeout
    try:
        while reply_at is None and time.perf_counter() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal (exited)
                break
            if not chunk:
                break
            output += chunk
            now = time.perf_counter()
            if prompt_at is None and PROMPT.encode() in output:
                prompt_at = now
                # What is printed after this point can only be the reply (and its echo).
                output = b""
                os.write(fd, message.encode() + b"\n")
            elif prompt_at is not None and reply_marker.encode() in output:
                reply_at = now
        if reply_at is not None:
            os.write(fd, b"\x04")  # end of input (Ctrl-D) ends both chats
    finally:
        _reap(pid, fd)
    if prompt_at is None or reply_at is None:
        text = output.decode(errors="replace")[-800:]
        raise BenchError(f"{' '.join(args[:3])}: no {'prompt' if prompt_at is None else 'reply'}"
                         f" within {timeout:g} s; output: {text}")
    return ChatTimes(prompt_at - started, reply_at - started)


def _reap(pid: int, fd: int) -> None:
    """Wait for the chat to exit after end of input; kill it if it does not."""
    for _ in range(100):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        try:  # keep draining, or a chat printing its goodbye could block on a full pty
            if select.select([fd], [], [], 0.05)[0]:
                os.read(fd, 65536)
        except OSError:
            pass
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)


def _chats(args: Sequence[str], env: Mapping[str, str], marker: str,
           repetitions: int) -> tuple[float, float]:
    runs = [chat_times(args, env, CONVERSATION[0].message, marker) for _ in range(repetitions)]
    prompt = median(r.prompt for r in runs)
    reply = median(r.reply for r in runs)
    assert prompt is not None and reply is not None
    return prompt, reply


def run(settings: StartupSettings) -> Section:
    """Time --help, validate and the chat's prompt and first reply."""
    section = Section("3 start-up")
    started = time.perf_counter()
    reps = settings.repetitions
    with scratch("startup") as folder, Loopback(settings.latency, settings.token_delay) as server:
        env = bench_env(folder)
        python = wall([PYTHON, "-c", "pass"], env, reps)
        # The SDK's own import time is context, not a target: quick runs skip it.
        sdk = None if settings.quick else wall([PYTHON, "-c", "import agents"], env, reps)
        help_time = wall([ROUTING_RUNNER, "--help"], env, reps)
        validate = wall([ROUTING_RUNNER, "validate", str(LANGUAGES_CONFIG)], env, reps)
        help_sdk = imports_sdk(["--help"], env)
        validate_sdk = imports_sdk(["validate", str(LANGUAGES_CONFIG)], env)
        config = folder / "bench.yaml"
        config.write_text(config_yaml(server.base_url, folder / "chat.db"), encoding="utf-8")
        marker = f"[{CONVERSATION[0].agent}]"  # the scripted reply starts with it
        rr_prompt, rr_reply = _chats([ROUTING_RUNNER, "chat", str(config)], env, marker, reps)
        baseline: tuple[float, float] | None = None
        if not settings.quick:  # quick runs check routing-runner's side only
            baseline = _chats(
                [PYTHON, "-m", "bench.baseline_sdk_loop", "--base-url", server.base_url,
                 "--chat", "--database", str(folder / "baseline.db")], env, marker, reps)
        offline: tuple[float, float] | None = None
        if not settings.quick:
            offline = _chats([ROUTING_RUNNER, "chat", str(LANGUAGES_CONFIG)],
                             bench_env(folder, ROUTING_RUNNER_PROVIDER="offline"),
                             "[offline model]", max(1, reps // 2))
    section.add("python -c pass", python * 1000, "ms", note="the interpreter alone")
    if sdk is not None:
        section.add("python -c 'import agents'", sdk * 1000, "ms", note="the SDK alone")
    section.add("routing-runner --help", help_time * 1000, "ms", baseline=HELP_TARGET * 1000,
                ratio=help_time / HELP_TARGET, target=f"< {HELP_TARGET * 1000:g} ms",
                verdict=at_most(help_time, HELP_TARGET) if not help_sdk else "MISS",
                note="imports the SDK!" if help_sdk else "SDK not imported")
    section.add("routing-runner validate", validate * 1000, "ms",
                baseline=VALIDATE_TARGET * 1000, ratio=validate / VALIDATE_TARGET,
                target=f"< {VALIDATE_TARGET * 1000:g} ms",
                verdict=at_most(validate, VALIDATE_TARGET) if not validate_sdk else "MISS",
                note="imports the SDK!" if validate_sdk else "SDK not imported; "
                                                             "configs/languages.yaml")
    base_prompt, base_reply = baseline if baseline is not None else (None, None)
    section.add("chat: prompt shown", rr_prompt * 1000, "ms", baseline=_ms(base_prompt),
                ratio=ratio(rr_prompt, base_prompt), target=f"< {PROMPT_TARGET * 1000:g} ms",
                verdict=at_most(rr_prompt, PROMPT_TARGET),
                note="baseline: the hand-written loop (imports the SDK first)")
    allowance = max(0.0, validate - python)
    section.add("chat: first reply", rr_reply * 1000, "ms", baseline=_ms(base_reply),
                ratio=ratio(rr_reply, base_reply),
                target=f"<= base+{allowance * 1000:.0f} ms",
                verdict="info" if base_reply is None else at_most(rr_reply,
                                                                   base_reply + allowance),
                note=f"typed at the prompt; L={settings.latency * 1000:g} ms, 1 handoff")
    if offline is not None:
        section.add("chat (offline model): prompt", offline[0] * 1000, "ms",
                    note="configs/languages.yaml, provider offline")
        section.add("chat (offline model): first reply", offline[1] * 1000, "ms",
                    note="includes loading lingua")
    section.raw = {"python": python, "import_agents": sdk, "help": help_time,
                   "validate": validate, "help_imports_sdk": help_sdk,
                   "validate_imports_sdk": validate_sdk,
                   "chat": {"prompt": rr_prompt, "reply": rr_reply},
                   "baseline_chat": baseline,
                   "offline_chat": offline}
    section.seconds = time.perf_counter() - started
    return section


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
