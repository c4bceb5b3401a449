"""Shared pieces of the version comparators: the error type (defined in ``scanning.errors``
with the rest of the tree) and the cache size."""

from __future__ import annotations

from scanning.errors import VersionError

# Distinct version strings seen while matching one image plus the advisory bounds they meet:
# a few tens of thousands at most. Parsed keys are small tuples, so this bounds memory at a
# few MB while keeping every hot parse a dict hit.
PARSE_CACHE_SIZE = 65536

__all__ = ["PARSE_CACHE_SIZE", "VersionError"]
