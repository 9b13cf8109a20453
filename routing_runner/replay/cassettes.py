"""`replay --cassettes DIR --record-mode MODE`: which transcript records and which replays.

A transcript's cassette is `DIR/<its session name>.yaml` (`runtime.cassette_file`), named like
its session so it is found again however the files are ordered. The record modes are VCR.py's:

    once          record a transcript whose cassette is missing, else replay only (default)
    new_episodes  replay what is recorded, record what is not
    none          replay only: a model call with no recording fails its turn
    all           record every model call again

The mode of each transcript is decided before anything runs, so the runs of a transcript
under --repeat (in other worker processes, perhaps) agree on it, whichever saves first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from routing_runner.errors import UserInputError
from routing_runner.runtime.cassettes import Tape, TapeMode
from routing_runner.runtime.providers import NO_KEY, key_variable

from .plan import SESSION_PREFIX, Job, session_id_for
from .results import CassetteCounts, ConversationResult
from .script import Transcript

RecordMode = Literal["once", "new_episodes", "none", "all"]
RECORD_MODES: tuple[RecordMode, ...] = ("once", "new_episodes", "none", "all")
# The key a provider is given when only cassettes answer: it is never sent anywhere.
REPLAY_ONLY_KEY = "cassette-replay-only"
_TAPE_MODES: Mapping[RecordMode, TapeMode] = {"new_episodes": "fill", "none": "replay",
                                              "all": "record"}


def cassette_path(folder: Path, transcript: Transcript) -> Path:
    """Where the cassette of `transcript` is kept."""
    return folder / f"{session_id_for(transcript).removeprefix(SESSION_PREFIX)}.yaml"


@dataclass(frozen=True)
class Cassettes:
    """The cassette folder and the mode each transcript (by name) runs in."""

    folder: Path
    record_mode: RecordMode
    modes: Mapping[str, TapeMode] = field(default_factory=dict)

    @property
    def replay_only(self) -> bool:
        """True when no transcript may reach the model."""
        return all(mode == "replay" for mode in self.modes.values())

    def tape(self, job: Job) -> Tape:
        """The tape one job's conversation records into or replays from."""
        transcript = job.transcript
        models = {name: transcript.config.model_for(name).name for name in transcript.config.agents}
        secrets = [m.api_key for m in job.provider.models.values()
                   if m.api_key not in (None, NO_KEY, REPLAY_ONLY_KEY)]
        return Tape(cassette_path(self.folder, transcript), self.modes[transcript.name], models,
                    sample=job.repeat, samples=job.repeats, secrets=[s for s in secrets if s])

    def describe(self) -> str:
        """The banner line: where the cassettes are and what this run does with them."""
        recording = sum(mode != "replay" for mode in self.modes.values())
        what = "replayed only, no model is called" if not recording else \
            f"{recording} of {len(self.modes)} transcripts may call the model and record"
        return f"cassettes: {self.folder} (--record-mode {self.record_mode}): {what}"


def plan_cassettes(folder: Path, record_mode: RecordMode,
                   transcripts: Iterable[Transcript]) -> Cassettes:
    """Each transcript's mode; UserInputError when the folder cannot hold cassettes."""
    if folder.exists() and not folder.is_dir():
        raise UserInputError(f"--cassettes {folder}: not a folder")
    if record_mode == "none" and not folder.is_dir():
        raise UserInputError(f"--cassettes {folder}: the folder does not exist, and "
                             "--record-mode none only replays; record first "
                             "(--record-mode once)")
    modes: dict[str, TapeMode] = {}
    for transcript in transcripts:
        if record_mode == "once":
            exists = cassette_path(folder, transcript).is_file()
            modes[transcript.name] = "replay" if exists else "record"
        else:
            modes[transcript.name] = _TAPE_MODES[record_mode]
    return Cassettes(folder, record_mode, modes)


def replay_environment(env: Mapping[str, str], cassettes: Cassettes,
                       transcripts: Iterable[Transcript]) -> dict[str, str]:
    """`env` with a placeholder for each unset key variable when only cassettes answer: the
    providers resolve as when recording (a CI job has no key), and no request is ever sent."""
    environment = dict(env)
    if not cassettes.replay_only:
        return environment
    for transcript in transcripts:
        for name in transcript.config.agents:
            variable = key_variable(transcript.config.model_for(name))
            if variable and not environment.get(variable):
                environment[variable] = REPLAY_ONLY_KEY
    return environment


def cassette_lines(results: Sequence[ConversationResult]) -> list[str]:
    """Per transcript: model calls recorded, replayed and missed (all runs of it together)."""
    totals: dict[str, CassetteCounts] = {}
    for result in results:
        if result.cassette is not None:
            name = result.transcript.name
            totals[name] = totals.get(name, CassetteCounts()) + result.cassette
    return [f"  {name}: {counts}" for name, counts in totals.items()]
