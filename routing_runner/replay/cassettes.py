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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from routing_runner.config.model import Config
from routing_runner.errors import RoutingRunnerError, UserInputError
from routing_runner.runtime.cassettes import Tape, TapeMode
from routing_runner.runtime.providers import NO_KEY, ResolvedProvider, key_variable

from .plan import Job, name_slug
from .results import CassetteCounts, ConversationResult, Mismatch
from .script import Transcript

RecordMode = Literal["once", "new_episodes", "none", "all"]
RECORD_MODES: tuple[RecordMode, ...] = ("once", "new_episodes", "none", "all")
# The key a provider is given when only cassettes answer: it is never sent anywhere.
REPLAY_ONLY_KEY = "cassette-replay-only"
_TAPE_MODES: Mapping[RecordMode, TapeMode] = {"new_episodes": "fill", "none": "replay",
                                              "all": "record"}


def cassette_path(folder: Path, name: str) -> Path:
    """Where the cassette of the transcript called `name` is kept."""
    return folder / f"{name_slug(name)}.yaml"


def new_tape(path: Path, mode: TapeMode, config: Config, provider: ResolvedProvider,
             sample: int = 1, samples: int = 1) -> Tape:
    """A tape for a conversation on `config`; the provider's keys are kept out of its file."""
    models = {name: config.model_for(name).name for name in config.agents}
    secrets = [m.api_key for m in provider.models.values()
               if m.api_key and m.api_key not in (NO_KEY, REPLAY_ONLY_KEY)]
    return Tape(path, mode, models, sample=sample, samples=samples, secrets=secrets)


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
        return new_tape(cassette_path(self.folder, transcript.name),
                        self.modes[transcript.name], transcript.config, job.provider,
                        job.repeat, job.repeats)

    def rerecording(self, names: Iterable[str]) -> Cassettes:
        """These cassettes with the transcripts called `names` recorded again from scratch
        (their old cassettes replaced) and every other transcript replayed only."""
        again = set(names)
        return replace(self, modes={name: "record" if name in again else "replay"
                                    for name in self.modes})

    def describe(self) -> str:
        """The banner line: where the cassettes are and what this run does with them."""
        recording = sum(mode != "replay" for mode in self.modes.values())
        what = "replayed only, no model is called" if not recording else \
            f"{recording} of {len(self.modes)} transcripts may call the model and record"
        return f"cassettes: {self.folder} (--record-mode {self.record_mode}): {what}"


def check_folder(folder: Path, record_mode: RecordMode) -> None:
    """UserInputError when `folder` cannot hold cassettes for `record_mode`."""
    if folder.exists() and not folder.is_dir():
        raise UserInputError(f"--cassettes {folder}: not a folder")
    if record_mode == "none" and not folder.is_dir():
        raise UserInputError(f"--cassettes {folder}: the folder does not exist, and "
                             "--record-mode none only replays; record first "
                             "(--record-mode once)")


def plan_cassettes(folder: Path, record_mode: RecordMode,
                   transcripts: Iterable[Transcript]) -> Cassettes:
    """Each transcript's mode; UserInputError when the folder cannot hold cassettes."""
    check_folder(folder, record_mode)
    return Cassettes(folder, record_mode, {
        t.name: tape_mode(record_mode, cassette_path(folder, t.name)) for t in transcripts})


def tape_mode(record_mode: RecordMode, path: Path) -> TapeMode:
    """What a conversation does with the cassette at `path` under `record_mode`."""
    if record_mode == "once":
        return "replay" if path.is_file() else "record"
    return _TAPE_MODES[record_mode]


def replay_environment(env: Mapping[str, str], replay_only: bool,
                       configs: Iterable[Config]) -> dict[str, str]:
    """`env` with a placeholder for each unset key variable when only cassettes answer: the
    providers resolve as when recording (a CI job has no key), and no request is ever sent."""
    environment = dict(env)
    if not replay_only:
        return environment
    for config in configs:
        specs = [config.model_for(name) for name in config.agents]
        for spec in specs + ([config.judge] if config.judge is not None else []):
            variable = key_variable(spec)
            if variable and not environment.get(variable):
                environment[variable] = REPLAY_ONLY_KEY
    return environment


def save_tape(tape: Tape | None) -> str | None:
    """Write what a conversation recorded into its cassette; what failed, if it did."""
    if tape is None:
        return None
    try:
        tape.save()
    except (RoutingRunnerError, OSError) as exc:
        return f"saving the cassette: {exc}"
    return None


def tape_counts(tape: Tape | None) -> CassetteCounts | None:
    """A conversation's model calls recorded, replayed and missed."""
    return None if tape is None else CassetteCounts(tape.recorded, tape.replayed, tape.missed)


def cassette_miss(tape: Tape | None) -> Mismatch | None:
    """The failed expectation of a turn that asked something not recorded (not a run
    failure: the conversation went where the cassette has not been)."""
    missed = tape.take_miss() if tape is not None else None
    return None if missed is None else Mismatch("cassette", "a recorded model call", missed)


def cassette_lines(results: Sequence[ConversationResult]) -> list[str]:
    """Per transcript: model calls recorded, replayed and missed (all runs of it together)."""
    totals: dict[str, CassetteCounts] = {}
    for result in results:
        if result.cassette is not None:
            name = result.transcript.name
            totals[name] = totals.get(name, CassetteCounts()) + result.cassette
    return [f"  {name}: {counts}" for name, counts in totals.items()]


def failing_transcripts(results: Sequence[ConversationResult]) -> list[str]:
    """The names of the transcripts with a run that failed or errored, in run order."""
    return list(dict.fromkeys(r.transcript.name for r in results
                              if r.status in ("failed", "error")))
