"""Table key encoding and table/container names.

Azure Table keys (PartitionKey, RowKey) may not contain ``/``, ``\\``, ``#``, ``?`` or control
characters (U+0000-U+001F, U+007F-U+009F) and are at most 1 KiB
(https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model).
Repository names contain ``/`` (OCI distribution spec, "Pulling manifests": ``<name>`` is
``[a-z0-9]+(...)(/[a-z0-9]+...)*``) and registries may carry ``:port``, so every component that
goes into a key is encoded:

* ``A-Z a-z 0-9 . - _ : @`` stay as they are;
* every other character becomes the ``~XX`` escapes of its UTF-8 bytes (upper-case hex), so
  ``/`` is ``~2F``, ``~`` itself is ``~7E`` and ``|`` is ``~7C``.

``%`` is deliberately not the escape character: the Table service URL-decodes keys of
point operations, so keys containing ``%`` cannot reliably be read or deleted one by one.
The encoding is per character, so it preserves prefixes (``encode(a) `` is a prefix of
``encode(a + b)``) and round-trips exactly (``decode_key(encode_key(s)) == s``).

Composite keys join encoded components with ``|``, which the encoding always escapes, so a
composite key splits back unambiguously (``split_key``).
"""

from __future__ import annotations

import re

from scanning.errors import ConfigError

SEPARATOR = "|"
# The character after SEPARATOR: ``PartitionKey ge 'a|' and PartitionKey lt 'a}'`` selects
# every key that starts with component ``a``.
SEPARATOR_END = chr(ord(SEPARATOR) + 1)
MAX_KEY_LENGTH = 1024

_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_:@")
_ESCAPE = re.compile(r"~([0-9A-F]{2})")
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,29}")


def encode_key(text: str) -> str:
    """Encode one key component (see the module docstring)."""
    parts: list[str] = []
    for char in text:
        if char in _PLAIN:
            parts.append(char)
        else:
            parts.extend(f"~{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(parts)


def decode_key(key: str) -> str:
    """Invert ``encode_key``; raises ValueError on text ``encode_key`` cannot have produced."""
    raw = bytearray()
    position = 0
    while position < len(key):
        char = key[position]
        if char == "~":
            match = _ESCAPE.match(key, position)
            if match is None:
                raise ValueError(f"bad escape at {position} in key {key!r}")
            raw.append(int(match.group(1), 16))
            position = match.end()
        elif char in _PLAIN:
            raw.append(ord(char))
            position += 1
        else:
            raise ValueError(f"unexpected character {char!r} in key {key!r}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"key {key!r} is not UTF-8 once decoded") from error


def join_key(*components: str) -> str:
    """Encode each component and join them with ``|``."""
    key = SEPARATOR.join(encode_key(component) for component in components)
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"key longer than {MAX_KEY_LENGTH} characters: {key[:80]!r}...")
    return key


def split_key(key: str) -> tuple[str, ...]:
    """Invert ``join_key``."""
    return tuple(decode_key(part) for part in key.split(SEPARATOR))


def prefix_range(prefix: str) -> tuple[str, str]:
    """Bounds ``(ge, lt)`` of the keys that start with ``prefix`` (a key, already encoded)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\uffff"


def validate_prefix(prefix: str) -> str:
    """Check a namespace prefix for table and container names.

    Table names are ``^[A-Za-z][A-Za-z0-9]{2,62}$`` and container names lower-case letters,
    digits and hyphens, 3-63 characters; a lower-case alphanumeric prefix of at most 30
    characters satisfies both once a table suffix is added.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"store prefix must be 1-30 lower-case letters or digits starting with a letter, "
            f"got {prefix!r}"
        )
    return prefix
