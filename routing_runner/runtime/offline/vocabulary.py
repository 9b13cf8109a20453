"""Common words by language, for the offline model: which languages a message's words belong to.

Two-word messages ("education program", "casa branca") carry too few letters for the n-gram
models to tell a language from its neighbours, but whole words do: both words of "education
program" are common English words and rare Portuguese ones. The lists are the `SIZE` most
frequent words of each language in the "small" word-frequency lists the wordfreq package ships
(Robyn Speer; code Apache-2.0, data CC BY-SA 4.0 built from Wikipedia, subtitles, news,
books, web text and other sources; see its README). Nothing is downloaded or copied into this
project: they are read from the installed package when the detectors are built, and kept as a
sorted array of word hashes, each with the word's frequency bucket in its low bits (8 bytes a
word, ~240 KiB a language). A child process reads them (this file run as a script, see
`lists_later`): the chat's first reply does not wait on it, and what reading allocates never
counts in the chat's memory.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from functools import cache
from importlib.util import find_spec
from itertools import islice
from pathlib import Path

# The most frequent words kept per language (wordfreq's small lists hold 28,000-39,000 of them
# for the European languages; on the tuning split 15,000 and 20,000 route fewer two-word
# messages right).
SIZE = 30_000
_WORD = re.compile(r"[^\W\d_]+")
# A list entry: a word's hash in the high bits, its frequency bucket (0-600) in the low ones.
_BITS = 10
_LOW = (1 << _BITS) - 1
_HIGH = ~_LOW
# The Zipf value (log10 of occurrences per billion words) given a word a list does not hold:
# that of the rarest words wordfreq lists at all (tuned on the tuning split; 0 and 2 do worse).
_UNLISTED_ZIPF = 1.0


@cache
def _folder() -> Path | None:
    """wordfreq's data folder, found without importing the package (its import is slow)."""
    spec = find_spec("wordfreq")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@cache
def available() -> frozenset[str]:
    """The languages a word list can be built for (those wordfreq has a small list for)."""
    folder = _folder()
    if folder is None or not folder.is_dir():
        return frozenset()
    return frozenset(entry.name[len("small_"):-len(".msgpack.gz")]
                     for entry in folder.iterdir()
                     if entry.name.startswith("small_") and entry.name.endswith(".msgpack.gz"))


def build(language: str) -> array[int]:
    """`language`'s `SIZE` most frequent words: each word's hash with its bucket, sorted.

    wordfreq gives the words by falling frequency, in buckets a centibel apart (bucket n:
    frequency 10^(-n/100)); the bucket takes the hash's low `_BITS` bits. Words tied at the
    cut-off are taken in the order the list gives them, so the list is the same on every run.
    Entries that are not one word as `words` finds them ("don't",
    "2019") could never match and are skipped.
    """
    # Imported here: only the child process needs it (its import is slow).
    from wordfreq import get_frequency_list

    buckets = get_frequency_list(language, wordlist="small")
    found = ((number, word) for number, bucket in enumerate(buckets) for word in bucket
             if _WORD.fullmatch(word))
    return array("q", sorted((_hash(word.encode("utf-8")) & _HIGH) | min(number, _LOW)
                             for number, word in islice(found, SIZE)))


def _hash(word: bytes) -> int:
    # A hash every process computes alike (the built-in one differs between processes).
    return int.from_bytes(hashlib.blake2b(word, digest_size=8).digest(), "little", signed=True)


def words(text: str) -> list[str]:
    """The words of `text` as the lists hold them (letters only, case-folded)."""
    return _WORD.findall(text.casefold())


def coverage(text: str, lists: dict[str, array[int]]) -> dict[str, tuple[float, float]]:
    """Per language: the share of `text`'s words its list holds, and their mean Zipf value.

    The Zipf value of a word is log10 of its occurrences per billion words (7: "the", 3: a word
    met once in ten thousand pages); a word the list does not hold counts as `_UNLISTED_ZIPF`.
    {} for a text without words.
    """
    found = words(text)
    if not found:
        return {}
    keys = [_hash(word.encode("utf-8")) & _HIGH for word in found]
    shares: dict[str, tuple[float, float]] = {}
    for language, entries in lists.items():
        buckets = [_bucket(entries, key) for key in keys]
        held = [bucket for bucket in buckets if bucket is not None]
        zipf = sum(9 - bucket / 100 for bucket in held) + _UNLISTED_ZIPF * (len(keys) - len(held))
        shares[language] = (len(held) / len(keys), zipf / len(keys))
    return shares


def _bucket(entries: array[int], key: int) -> int | None:
    """The frequency bucket of the word hashed to `key` (low bits clear), None if not listed."""
    at = bisect_left(entries, key)
    if at < len(entries) and entries[at] & _HIGH == key:
        return entries[at] & _LOW
    return None


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
