"""Common words by language, for the offline model: which languages a message's words belong to.

Two-word messages ("education program", "casa branca") carry too few letters for the n-gram
models to tell a language from its neighbours, but whole words do: both words of "education
program" are among English's most common words and not Portuguese's. The lists are the `SIZE`
most frequent words of each language in the word-frequency dictionaries the pyspellchecker
package ships (MIT licence; built by its author from OpenSubtitles 2018 subtitles, P. Lison and
J. Tiedemann, LREC 2016; see its README). Nothing is downloaded or copied into this project:
they are read from the installed package when the detectors are built, and kept as a sorted
array of word hashes (8 bytes a word, ~240 KiB a language). Reading them takes about a second
of CPU, so `lists_for` has a child process do it (this file run as a script): the
chat's first reply does not wait on it, and what reading allocates never counts in the chat's
memory. The dictionaries are read a chunk at a time, so no process holds a whole one.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
import sys
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from importlib.util import find_spec
from pathlib import Path

# The most frequent words kept per language (tuned on the tuning split: 10,000 routes fewer
# two-word messages, 100,000 no more than this).
SIZE = 30_000
# One dictionary entry a line, `"word": count,`: the counts alone for the first pass; the second
# matches only counts of at least `{digits}` digits, so most rare words never reach Python.
_ENTRY = '^"([^"\\n]+)": (\\d{{{digits},}})'
_COUNT = re.compile(rb'": (\d+)')
_CHUNK = 1 << 18  # bytes of dictionary scanned at a time (regexes run in C, a chunk at once)
_WORD = re.compile(r"[^\W\d_]+")


@cache
def _folder() -> Path | None:
    """pyspellchecker's dictionaries, found without importing the package."""
    spec = find_spec("spellchecker")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "resources"


@cache
def available() -> frozenset[str]:
    """The languages a word list can be built for (those pyspellchecker ships)."""
    folder = _folder()
    if folder is None or not folder.is_dir():
        return frozenset()
    return frozenset(entry.name.split(".")[0] for entry in folder.iterdir()
                     if entry.name.endswith(".json.gz"))


def _chunks(language: str) -> Iterator[bytes]:
    """The decompressed dictionary in pieces that end at a line end."""
    folder = _folder()
    assert folder is not None, "only called for available() languages"
    with gzip.open(folder / f"{language}.json.gz") as data:
        rest = b""
        while piece := data.read(_CHUNK):
            whole, _, rest = (rest + piece).rpartition(b"\n")
            yield whole
        yield rest


def build(language: str) -> array[int]:
    """The hashes of `language`'s `SIZE` most frequent words, sorted (two passes: counts, words).

    Words tied at the cut-off count are taken in dictionary (alphabetical) order, so the list
    is the same on every run.
    """
    # How many words have each count (a few thousand distinct counts): small, unlike the counts.
    histogram: Counter[bytes] = Counter()
    for chunk in _chunks(language):
        histogram.update(_COUNT.findall(chunk))
    cutoff, above = 0, 0
    for count, words_with_it in sorted(((int(c), n) for c, n in histogram.items()), reverse=True):
        if above + words_with_it >= SIZE:
            cutoff = count
            break
        above += words_with_it
    room = SIZE - above
    hashes = array("q")
    entry = re.compile(_ENTRY.format(digits=len(str(cutoff))).encode(), re.MULTILINE)
    for chunk in _chunks(language):
        for word, count in entry.findall(chunk):
            number = int(count)
            if number > cutoff or (number == cutoff and room > 0):
                room -= number == cutoff
                hashes.append(_hash(word))
    return array("q", sorted(hashes))


def _hash(word: bytes) -> int:
    # A hash every process computes alike (the built-in one differs between processes).
    return int.from_bytes(hashlib.blake2b(word, digest_size=8).digest(), "little", signed=True)


def words(text: str) -> list[str]:
    """The words of `text` as the lists hold them (letters only, case-folded)."""
    return _WORD.findall(text.casefold())


def coverage(text: str, lists: dict[str, array[int]]) -> dict[str, float]:
    """The share of `text`'s words each language's list holds ({} for a text without words)."""
    found = words(text)
    if not found:
        return {}
    keys = [_hash(word.encode("utf-8")) for word in found]
    # Spanish is also looked up by the singulars of its plurals (see `_spanish_singulars`).
    singulars = [[_hash(form.encode("utf-8")) for form in _spanish_singulars(word)]
                 for word in found] if "es" in lists else []
    shares: dict[str, float] = {}
    for language, hashes in lists.items():
        held = [_holds(hashes, key) for key in keys]
        if language == "es":
            held = [itself or any(_holds(hashes, key) for key in forms)
                    for itself, forms in zip(held, singulars, strict=True)]
        shares[language] = sum(held) / len(found)
    return shares


# Stressed endings whose plural drops the accent: "emoción" → "emociones", "inglés" → "ingleses".
_ACCENTED = {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú"}


def _spanish_singulars(word: str) -> list[str]:
    """The singulars a Spanish plural may have ("centros" → "centro", "veces" → "vez").

    pyspellchecker's Spanish dictionary lists no plural at all (no "centros", "casas",
    "años"), so its list is looked up with the regular singulars of a word in -s too.
    """
    if len(word) < 4 or not word.endswith("s"):
        return []
    forms = [word[:-1]]
    if word.endswith("es"):
        stem = word[:-2]
        forms.append(stem)
        if word.endswith("ces"):
            forms.append(word[:-3] + "z")
        if stem[-1] in "ns" and len(stem) > 2 and stem[-2] in _ACCENTED:
            forms.append(stem[:-2] + _ACCENTED[stem[-2]] + stem[-1])
    return forms


def _holds(hashes: array[int], key: int) -> bool:
    at = bisect_left(hashes, key)
    return at < len(hashes) and hashes[at] == key


def lists_for(languages: Iterable[str]) -> dict[str, array[int]]:
    """Word lists for those of `languages` a list can be built for."""
    return lists_later(languages)()


def lists_later(languages: Iterable[str]) -> Callable[[], dict[str, array[int]]]:
    """Start reading the word lists of `languages` in a child process; call the result for them.

    Where no child process can be started or it fails, this process reads them itself.
    """
    wanted = sorted(set(languages) & available())
    child: subprocess.Popen[bytes] | None = None
    if wanted:
        try:
            # This file as a script: the child needs nothing of the package beyond it.
            child = subprocess.Popen([sys.executable, __file__, *wanted],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        except OSError:
            child = None

    def collect() -> dict[str, array[int]]:
        if child is not None:
            output, _ = child.communicate()
            if child.returncode == 0:
                try:
                    return _unpack(output, wanted)
                except ValueError:
                    pass
        return {language: build(language) for language in wanted}

    return collect


def _unpack(data: bytes, wanted: list[str]) -> dict[str, array[int]]:
    """The lists `main` wrote: per language, its length (8 bytes) and its hashes."""
    lists: dict[str, array[int]] = {}
    at = 0
    for language in wanted:
        size = int.from_bytes(data[at:at + 8], "little")
        hashes = array("q")
        hashes.frombytes(data[at + 8:at + 8 + 8 * size])
        if len(hashes) != size:
            raise ValueError(f"word list for {language} cut short")
        lists[language] = hashes
        at += 8 + 8 * size
    return lists


def main(languages: list[str]) -> None:
    """Write the lists of `languages`, in order, for `lists_for` (run as the child process)."""
    for language in languages:
        hashes = build(language)
        sys.stdout.buffer.write(len(hashes).to_bytes(8, "little") + hashes.tobytes())


if __name__ == "__main__":
    main(sys.argv[1:])
