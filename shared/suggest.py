""""Did you mean" hints: the closest known names to a misspelled one (difflib, case-insensitive)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.75


def closest(word: str, candidates: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The candidate closest to *word* (a different letter case counts as closest), or None."""
    by_fold: dict[str, str] = {}
    for candidate in candidates:
        by_fold.setdefault(candidate.casefold(), candidate)
    folded = word.casefold()
    if folded in by_fold and by_fold[folded] != word:
        return by_fold[folded]
    found = difflib.get_close_matches(folded, [k for k in by_fold if k != folded], n=1,
                                      cutoff=cutoff)
    return by_fold[found[0]] if found else None


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = CUTOFF) -> str:
    """`` (did you mean 'X'?)`` or an empty string."""
    found = closest(word, candidates, cutoff)
    return f" (did you mean '{found}'?)" if found else ""
