"""What the commands accept as IMAGE, and their errors in words a user can act on.

``parse_image`` adds the hint a plain path needs (``docker-archive:`` or ``oci:`` in front);
``reachability`` turns a registry that never answered into "cannot reach REGISTRY: <reason>",
the innermost cause (connection refused, name not resolved, timed out) instead of the HTTP
library's nested text.
"""

from __future__ import annotations

import re
from pathlib import Path

from scanning.errors import BadRequest, RegistryError, ScanError, TransientRegistryError
from scanning.registry import ImageReference, ReferenceKind, parse_reference

SOURCE_PREFIXES = ("docker-archive:", "oci:", "dir:", "sbom:")
# The innermost OS error in requests/urllib3 text: "[Errno 111] Connection refused".
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")


def parse_image(text: str) -> ImageReference:
    """The reference ``text`` names; BadRequest with a hint when it is a local path."""
    looks_like_path = text.startswith(("/", "./", "../", "~")) or Path(text).is_file()
    if looks_like_path and not text.startswith(SOURCE_PREFIXES):
        raise BadRequest(f"{text!r} is a path, not an image reference: did you mean "
                         f"docker-archive:{text} or oci:{text}")
    try:
        return parse_reference(text)
    except ValueError as error:
        raise BadRequest(f"bad image reference {text!r}: {error}") from error


def reachability(error: ScanError, reference: ImageReference) -> ScanError:
    """``error`` as "cannot reach REGISTRY: reason" when the registry never answered."""
    if reference.kind is not ReferenceKind.REGISTRY or not isinstance(error, RegistryError):
        return error
    text = str(error)
    if not isinstance(error, TransientRegistryError) and "ConnectionError" not in text:
        return error
    found = _ERRNO_TEXT.findall(text)
    if found:
        reason = found[-1].strip().rstrip(".")
        if reason == "Name or service not known":
            reason = "name not resolved"
    elif "timed out" in text.lower() or "Timeout" in text:
        reason = "timed out"
    elif status := _HTTP_STATUS.findall(text):
        reason = f"HTTP {status[-1]}"
    else:
        reason = text.removeprefix(f"{reference.registry}: ")
    return TransientRegistryError(f"cannot reach {reference.registry}: {reason}")
