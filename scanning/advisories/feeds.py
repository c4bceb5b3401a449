"""Download the OSV bulk feeds: ``<base>/<ecosystem>/all.zip`` (https://google.github.io/osv.dev/data/).

The base comes from the ``ADVISORY_FEED_URL`` setting: osv.dev's public bucket by default, an
internal https mirror, or ``file:///path`` for an air-gapped copy laid out the same way.

A download is resumable and atomic:

* bytes go to ``<name>.part`` next to the destination; the server's validator (``ETag`` or
  ``Last-Modified``) is kept in ``<name>.part.validator``;
* a later attempt asks for the rest with ``Range: bytes=N-`` and ``If-Range: <validator>``
  (RFC 9110 section 13.1.5): a ``206`` appends, a ``200`` means the file changed upstream and the
  download starts again;
* only a complete file that opens as a zip replaces the destination (``os.replace``), so a
  failed or interrupted download leaves the previous copy, and the index built from it, intact.

Progress goes to stderr when stderr is a terminal.
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from scanning.config import setting
from scanning.errors import AdvisoryError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
TIMEOUT_SECONDS = 60.0
# The largest bulk zip (Debian, Ubuntu) is a few hundred MB; refuse unbounded streams.
MAX_FEED_BYTES = 8 * 1024 * 1024 * 1024

Progress = Callable[[str, int, int | None], None]


def feed_url(ecosystem: str, base: str | None = None) -> str:
    """URL of one ecosystem's bulk zip; the ecosystem name is percent-encoded (``Red%20Hat``)."""
    root = (base if base is not None else setting("ADVISORY_FEED_URL")).rstrip("/")
    return f"{root}/{urllib.parse.quote(ecosystem)}/all.zip"


def terminal_progress(label: str, done: int, total: int | None) -> None:
    """Progress on stderr, one line rewritten in place."""
    if total:
        text = f"\r{label}: {done * 100 // total:3d}% of {total / 1e6:.1f} MB"
    else:
        text = f"\r{label}: {done / 1e6:.1f} MB"
    sys.stderr.write(text)
    sys.stderr.flush()


def default_progress() -> Progress | None:
    return terminal_progress if sys.stderr.isatty() else None


def download_feed(
    ecosystem: str,
    destination: Path,
    *,
    base: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Fetch ``<base>/<ecosystem>/all.zip`` to ``destination``; return ``destination``."""
    url = feed_url(ecosystem, base)
    part = fetch_url(url, destination, label=ecosystem, progress=progress)
    if not zipfile.is_zipfile(part):
        part.unlink(missing_ok=True)
        raise AdvisoryError(f"{url}: the download is not a zip archive")
    os.replace(part, destination)
    return destination


def fetch_url(
    url: str, destination: Path, *, label: str, progress: Progress | None = None
) -> Path:
    """Download ``url`` (https, http or ``file:``) to ``<destination>.part``, resuming an
    earlier partial download, and return that part file: the caller checks it and replaces
    ``destination`` with it, so a bad download never replaces a good copy."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    validator_file = destination.with_name(destination.name + ".part.validator")
    logger.info("downloading %s to %s", url, destination)
    if url.startswith("file:"):
        _copy_local(url, part, label, progress)
    else:
        _download_http(url, part, validator_file, label, progress)
    if progress is not None:
        sys.stderr.write("\n")
    validator_file.unlink(missing_ok=True)
    return part


def _copy_local(url: str, part: Path, label: str, progress: Progress | None) -> None:
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not source.is_file():
        raise AdvisoryError(f"{url}: no such file")
    total = source.stat().st_size
    with source.open("rb") as reader, part.open("wb") as writer:
        _pump(reader, writer, 0, total, label, progress)


def _download_http(
    url: str, part: Path, validator_file: Path, label: str, progress: Progress | None
) -> None:
    offset = part.stat().st_size if part.exists() else 0
    validator = validator_file.read_text().strip() if validator_file.exists() else ""
    headers = {"User-Agent": "acr-scan advisory feed"}
    if offset and validator:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = validator
    else:
        offset = 0
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Range not satisfiable: the part is already whole (or stale); start again next time.
            part.unlink(missing_ok=True)
            validator_file.unlink(missing_ok=True)
        retryable = error.code == 429 or error.code >= 500
        raise AdvisoryError(f"{url}: HTTP {error.code}", retryable=retryable) from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise AdvisoryError(f"{url}: {error}", retryable=True) from error
    with response:
        resumed = response.status == 206
        if not resumed:
            offset = 0
        new_validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
        if new_validator:
            validator_file.write_text(new_validator)
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        if total is not None and total > MAX_FEED_BYTES:
            raise AdvisoryError(f"{url}: {total} bytes is over the {MAX_FEED_BYTES} byte cap")
        try:
            with part.open("ab" if resumed else "wb") as writer:
                _pump(response, writer, offset, total, label, progress)
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            # The part file stays: the next attempt resumes from here.
            raise AdvisoryError(f"{url}: interrupted: {error}", retryable=True) from error
        if total is not None and part.stat().st_size != total:
            raise AdvisoryError(
                f"{url}: got {part.stat().st_size} of {total} bytes", retryable=True
            )


def _pump(
    reader: BinaryIO,
    writer: BinaryIO,
    done: int,
    total: int | None,
    label: str,
    progress: Progress | None,
) -> None:
    while True:
        chunk = reader.read(CHUNK_BYTES)
        if not chunk:
            return
        writer.write(chunk)
        done += len(chunk)
        if done > MAX_FEED_BYTES:
            raise AdvisoryError(f"{label}: more than {MAX_FEED_BYTES} bytes")
        if progress is not None:
            progress(label, done, total)
