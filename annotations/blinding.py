"""What a rater sees of an output: the display normalisation, applied identically to both sides.

Real fine-tunes leave surface tells that say which side is which without reading a word: every
tuned output starting with a space (a chat-template artefact), a fixed opener ("Sure!"), Windows
line endings, a trailing newline. Whitespace is preserved on the rating page and in the rater
API, so such a tell unblinds every pair. The rater's view is therefore normalised:

* always: Unicode NFC, line endings to ``\\n``, leading and trailing whitespace stripped;
* when the study lists them (``Study.display_strip_prefixes``): fixed prefixes stripped from
  the start of either side, the same list for both sides.

Raw outputs stay untouched in the database: metrics, scoring and exports read them as written.
Pure Python, no Django: the rater payload (``selectors.blind_pair_from_lease``) and the
blinding audit (``annotations.blinding_audit``) call the same function, so the audit measures
exactly what raters see.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence

MAX_STRIP_PREFIXES = 20
MAX_STRIP_PREFIX_LENGTH = 200


def normalise_whitespace(text: str) -> str:
    """NFC, ``\\r\\n`` and ``\\r`` to ``\\n``, outer whitespace stripped."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def display_text(text: str, *, strip_prefixes: Sequence[str] = ()) -> str:
    """The text a rater is shown for one output.

    Each prefix in `strip_prefixes` (compared after the same normalisation, case-sensitive) is
    removed once, in the order given, when the text starts with it; the whitespace it leaves is
    stripped too. A prefix is not removed when it is the whole text: showing an empty response
    would misstate the output more than the prefix does.
    """
    shown = normalise_whitespace(text)
    for prefix in strip_prefixes:
        wanted = normalise_whitespace(prefix)
        if wanted and shown.startswith(wanted):
            rest = shown[len(wanted) :].strip()
            if rest:
                shown = rest
    return shown


def strip_prefixes_from(value: object) -> tuple[str, ...]:
    """The study's prefix list as stored (a JSON list, or its text from a raw SQL read)."""
    if isinstance(value, str):
        value = json.loads(value) if value else []
    if not value:
        return ()
    return tuple(str(prefix) for prefix in value)  # type: ignore[union-attr]


def strip_prefixes_problem(value: object) -> str | None:
    """Why `value` is not a valid prefix list (a list of up to 20 non-blank strings of at most
    200 characters each), or None."""
    if not isinstance(value, list | tuple):
        return "must be a list of strings"
    if len(value) > MAX_STRIP_PREFIXES:
        return f"at most {MAX_STRIP_PREFIXES} prefixes"
    for position, prefix in enumerate(value):
        if not isinstance(prefix, str):
            return f"item {position} must be a string, got {type(prefix).__name__}"
        if not prefix.strip():
            return f"item {position} is blank"
        if len(prefix) > MAX_STRIP_PREFIX_LENGTH:
            return f"item {position} is longer than {MAX_STRIP_PREFIX_LENGTH} characters"
        if "\x00" in prefix:
            return f"item {position} contains a NUL character"
    return None


def display_pairs(
    pairs: Iterable[tuple[str, str]], *, strip_prefixes: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """`display_text` applied to both sides of each (base, tuned) pair."""
    return [
        (
            display_text(base, strip_prefixes=strip_prefixes),
            display_text(tuned, strip_prefixes=strip_prefixes),
        )
        for base, tuned in pairs
    ]
