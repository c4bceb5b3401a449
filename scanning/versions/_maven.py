"""Maven version ordering: org.apache.maven.artifact.versioning.ComparableVersion.

We follow **Maven 3.9.x** (checked against maven-3.9.16): it is the Maven that builds and
publishes almost every artifact today and the one GHSA/OSV range authors check against.
ComparableVersion changed in 3.9 (``.X`` qualifiers treated as ``-X``, ``release`` alias) and
again on master for Maven 4 (combination items such as ``X1``, ``-1`` after a qualifier).
The rows where those releases disagree are listed in the shared
``maven_version_drift.tsv``; our answer is its ``maven-3.9.16`` column, tested row by row.

A version is parsed into nested lists (a ``-`` or a digit/letter transition after a qualifier
opens a sub-list) of integers and qualifier strings. Qualifiers are mapped to their
``comparableQualifier`` form so that plain string comparison gives Maven's order:
alpha < beta < milestone < rc < snapshot < "" (= ga, final, release) < sp < unknown
qualifiers (lexically). Comparison then follows ComparableVersion's item rules, including the
"compare with nothing" rules that make ``1.0 == 1`` and ``1-rc < 1``.
"""

from __future__ import annotations

from functools import lru_cache

from scanning.versions._base import PARSE_CACHE_SIZE

Item = int | str | tuple["Item", ...]

_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}
_RELEASE_INDEX = str(_QUALIFIERS.index(""))


def _qualifier(value: str, followed_by_digit: bool) -> str:
    if followed_by_digit and len(value) == 1:
        value = _SHORT.get(value, value)
    value = _ALIASES.get(value, value)
    if value in _QUALIFIERS:
        return str(_QUALIFIERS.index(value))
    return f"{len(_QUALIFIERS)}-{value}"


def _is_null(item: Item) -> bool:
    if isinstance(item, int):
        return item == 0
    if isinstance(item, str):
        return item == _RELEASE_INDEX
    return len(item) == 0


def _is_digit(char: str) -> bool:
    # Java's Character.isDigit on a UTF-16 char: Unicode decimal digits of the BMP only
    return char.isdecimal() and ord(char) <= 0xFFFF


def _parse_number(text: str) -> int:
    return int(text)


class _List(list["Item | _List"]):
    """Mutable list used while parsing; frozen into tuples afterwards."""


def _normalize(items: _List) -> None:
    for index in range(len(items) - 1, -1, -1):
        item = items[index]
        if isinstance(item, _List):
            if not item:
                del items[index]
            continue
        if _is_null(item):
            del items[index]
        else:
            break


def _freeze(items: _List) -> tuple[Item, ...]:
    return tuple(_freeze(i) if isinstance(i, _List) else i for i in items)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def maven_parse(version: str) -> tuple[Item, ...]:
    """ComparableVersion's item tree of ``version`` (every string is a valid Maven version)."""
    text = version.lower()
    root = _List()
    current = root
    stack: list[_List] = [root]
    is_digit = False
    start = 0

    def push_list() -> None:
        nonlocal current
        new = _List()
        current.append(new)
        current = new
        stack.append(new)

    def item(digit: bool, buf: str) -> Item:
        return _parse_number(buf) if digit else _qualifier(buf, False)

    for index, char in enumerate(text):
        if char == ".":
            current.append(0 if index == start else item(is_digit, text[start:index]))
            start = index + 1
        elif char == "-":
            current.append(0 if index == start else item(is_digit, text[start:index]))
            start = index + 1
            push_list()
        elif _is_digit(char):
            if not is_digit and index > start:
                # 1.0.0.X1 < 1.0.0-X2: treat .X as -X for any string qualifier X
                if current:
                    push_list()
                current.append(_qualifier(text[start:index], True))
                start = index
                push_list()
            is_digit = True
        else:
            if is_digit and index > start:
                current.append(_parse_number(text[start:index]))
                start = index
                push_list()
            is_digit = False
    if len(text) > start:
        if not is_digit and current:
            push_list()
        current.append(item(is_digit, text[start:]))
    for items in reversed(stack):
        _normalize(items)
    return _freeze(root)


def _compare_null(item: Item) -> int:
    if isinstance(item, int):
        return 0 if item == 0 else 1
    if isinstance(item, str):
        return (item > _RELEASE_INDEX) - (item < _RELEASE_INDEX)
    for sub in item:
        result = _compare_null(sub)
        if result:
            return result
    return 0


def _compare(left: Item, right: Item) -> int:
    if isinstance(left, int):
        if isinstance(right, int):
            return (left > right) - (left < right)
        return 1
    if isinstance(left, str):
        if isinstance(right, str):
            return (left > right) - (left < right)
        return -1
    if isinstance(right, int):
        return -1
    if isinstance(right, str):
        return 1
    return maven_compare_items(left, right)


def maven_compare_items(left: tuple[Item, ...], right: tuple[Item, ...]) -> int:
    for index in range(max(len(left), len(right))):
        if index >= len(left):
            result = -_compare_null(right[index])
        elif index >= len(right):
            result = _compare_null(left[index])
        else:
            result = _compare(left[index], right[index])
        if result:
            return result
    return 0
