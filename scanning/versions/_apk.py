"""Alpine apk-tools version ordering (src/version.c, "Gentoo-style" versions).

Grammar: ``digit{.digit}...[letter]{_suffix[number]}...[~hash][-r#]`` where pre-release
suffixes (``alpha beta pre rc``) sort before the plain version and post-release suffixes
(``cvs svn git hg p``) after it. apk compares token by token; a token carries a type (what
kind of component comes next) and a value. The first differing value decides; if all values
agree, the version that continues is newer, unless what follows is a pre-release suffix; a
component further down the grammar (e.g. a revision) is older than one further up (a further
dot component). Leading zeros of a dotted component are significant (``1.01 < 1.1``): apk
gives the run of zeros a negative value. A string that is not valid apk syntax is compared up
to the first invalid token, which is what ``apk version -t`` does.

Each version is tokenised once (cached) into ``((type, value), ...)`` ending with the END or
INVALID type; comparing two token tuples then follows apk's loop.
"""

from __future__ import annotations

import re
from functools import lru_cache

from scanning.versions._base import PARSE_CACHE_SIZE, VersionError

INVALID = -1
DIGIT_OR_ZERO = 0
DIGIT = 1
LETTER = 2
SUFFIX = 3
SUFFIX_NO = 4
COMMIT_HASH = 5
REVISION_NO = 6
END = 7

_PRE_SUFFIXES = ("alpha", "beta", "pre", "rc")
_POST_SUFFIXES = ("cvs", "svn", "git", "hg", "p")
_HEX = frozenset("0123456789abcdef")

Token = tuple[int | str, int]


def _next_type(current: int, text: str, pos: int) -> tuple[int, int]:
    """Type of the token starting at ``pos`` and the position after its separator."""
    if pos >= len(text):
        return END, pos
    char = text[pos]
    if current in (DIGIT, DIGIT_OR_ZERO) and "a" <= char <= "z":
        new = LETTER
    elif current == LETTER and char.isascii() and char.isdigit():
        new = DIGIT
    elif current == SUFFIX and char.isascii() and char.isdigit():
        new = SUFFIX_NO
    else:
        new = INVALID
        if char == ".":
            new = DIGIT_OR_ZERO
        elif char == "_":
            new = SUFFIX
        elif char == "~":
            new = COMMIT_HASH
        elif char == "-" and text.startswith("r", pos + 1):
            new = REVISION_NO
            pos += 1
        pos += 1
    if new < current and not (
        (new == DIGIT_OR_ZERO and current == DIGIT)
        or (new == SUFFIX and current == SUFFIX_NO)
        or (new == DIGIT and current == LETTER)
    ):
        new = INVALID
    return new, pos


def _digits_end(text: str, pos: int) -> int:
    while pos < len(text) and "0" <= text[pos] <= "9":
        pos += 1
    return pos


def _get_token(kind: int, text: str, pos: int) -> tuple[int, int, int]:
    """One apk ``get_token`` step: (value, type of the next token, new position)."""
    if pos >= len(text):
        return 0, END, pos
    value = 0
    end = pos
    next_kind = INVALID
    if kind == DIGIT_OR_ZERO:
        # a dotted component keeps its digit string: see _compare_values
        end = _digits_end(text, pos)
        return_value: int | str = text[pos:end]
        if end >= len(text):
            return return_value, END, end  # type: ignore[return-value]
        next_kind, end = _next_type(DIGIT, text, end)
        return return_value, next_kind, end  # type: ignore[return-value]
    elif kind in (DIGIT, SUFFIX_NO, REVISION_NO):
        end = _digits_end(text, pos)
        value = int(text[pos:end]) if end > pos else 0
    elif kind == LETTER:
        value = ord(text[pos])
        end = pos + 1
    elif kind == SUFFIX:
        for index, suffix in enumerate(_PRE_SUFFIXES):
            if text.startswith(suffix, pos):
                value = index - len(_PRE_SUFFIXES)
                end = pos + len(suffix)
                break
        else:
            for index, suffix in enumerate(_POST_SUFFIXES):
                if text.startswith(suffix, pos):
                    value = index
                    end = pos + len(suffix)
                    break
            else:
                return -1, INVALID, pos
    elif kind == COMMIT_HASH:
        while end < len(text) and text[end] in _HEX:
            end += 1
        if end == pos:
            return -1, INVALID, pos
        value = int(text[pos:end], 16)
    else:
        return -1, INVALID, pos
    if end >= len(text):
        return value, END, end
    if next_kind != INVALID:
        return value, next_kind, end
    next_kind, end = _next_type(kind, text, end)
    return value, next_kind, end


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def apk_tokens(version: str) -> tuple[Token, ...]:
    """Successive apk ``get_token`` results ``(value, next type)``; the last type is END or
    INVALID."""
    tokens: list[Token] = []
    kind = DIGIT
    pos = 0
    while kind not in (END, INVALID):
        value, kind, pos = _get_token(kind, version, pos)
        tokens.append((value, kind))
    return tuple(tokens)


# apk-tools 3 validity grammar (test/unit/version.data): a letter only right after the
# numbers, known suffix names, one optional commit hash, the revision last.
_VALID = re.compile(
    r"^[0-9]+(?:\.[0-9]+)*[a-z]?(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*"
    r"(?:~[0-9a-f]+)?(?:-r[0-9]+)?$"
)


def apk_is_valid(version: str) -> bool:
    """True when apk-tools accepts the whole string as a version."""
    return _VALID.match(version) is not None


def _compare_values(a: int | str, b: int | str) -> int:
    """Compare two token values taken from tokens of the same type.

    Dotted components (strings) follow the Gentoo rule apk uses: if either starts with "0"
    they compare as strings without trailing zeros (so ``1.01 < 1.1`` and
    ``8.2.0015 < 8.2.002``), otherwise as numbers.
    """
    if isinstance(a, str) and isinstance(b, str):
        if a.startswith("0") or b.startswith("0"):
            a_text, b_text = a.rstrip("0"), b.rstrip("0")
            return (a_text > b_text) - (a_text < b_text)
        a_number, b_number = int(a or 0), int(b or 0)
        return (a_number > b_number) - (a_number < b_number)
    return -1 if a < b else 1  # type: ignore[operator]


def _is_pre_suffix(value: int | str) -> bool:
    return isinstance(value, int) and value < 0


def apk_compare_tokens(a: tuple[Token, ...], b: tuple[Token, ...]) -> int:
    """apk_version_compare on two token tuples: -1, 0 or 1."""
    a_kind = b_kind = DIGIT
    diff = 0
    index = 0
    while a_kind == b_kind and a_kind not in (END, INVALID) and diff == 0:
        a_value, a_kind = a[index]
        b_value, b_kind = b[index]
        index += 1
        if a_value != b_value:
            diff = _compare_values(a_value, b_value)
    if diff:
        return diff
    if a_kind == b_kind:
        return 0
    # the longer version is newer unless it continues with a pre-release suffix
    if a_kind == SUFFIX and _is_pre_suffix(a[index][0]):
        return -1
    if b_kind == SUFFIX and _is_pre_suffix(b[index][0]):
        return 1
    return -1 if a_kind > b_kind else 1


def apk_key(version: str) -> tuple[Token, ...]:
    """Tokens of a version that must be valid apk syntax (raises VersionError otherwise)."""
    if not version or not version[0].isdigit():
        raise VersionError(f"not an apk version: {version!r}")
    return apk_tokens(version)
