"""Downloads: mirrors first, then the official address; rich progress bar; strict md5; atomic writes.

Set ``CNNLAB_DATA_MIRRORS`` (space- or comma-separated base URLs) to try mirrors laid out like the data
root (``<base>/<folder>/<file>``, e.g. ``http://host/mnist/train-images-idx3-ubyte.gz``) before the
official addresses. Nothing here runs unless a file is missing and a download was allowed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import DataError, UserError
from cnnlab.io import atomic_path

MIRRORS_ENV = "CNNLAB_DATA_MIRRORS"
TIMEOUT_S = 30.0
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """A file of an official dataset: its name, official md5 and official download addresses."""

    name: str
    md5: str
    urls: tuple[str, ...]


class DownloadFailed(UserError):
    """Every address failed for network reasons (offline, refused, 404)."""


def mirror_bases(mirrors: Sequence[str] | str | None = None) -> list[str]:
    """Mirror base URLs: the explicit argument, else ``$CNNLAB_DATA_MIRRORS``."""
    if mirrors is None:
        mirrors = os.environ.get(MIRRORS_ENV, "")
    if isinstance(mirrors, str):
        mirrors = mirrors.replace(",", " ").split()
    return [m.rstrip("/") for m in mirrors if m]


def candidate_urls(remote: RemoteFile, folder: str, mirrors: Sequence[str] | str | None = None) -> list[str]:
    """Addresses to try for ``remote``, mirrors first."""
    return [f"{base}/{folder}/{remote.name}" for base in mirror_bases(mirrors)] + list(remote.urls)


def download_file(urls: Sequence[str], dest: str | os.PathLike, md5: str | None, *,
                  quiet: bool = False, sha256: str | None = None) -> Path:
    """Download the first address that works to ``dest``, atomically, checking ``md5`` / ``sha256``
    strictly; a body shorter than its Content-Length (a dropped connection) is not kept either.

    A checksum mismatch is a :class:`DataError` (the file is not kept); when every address fails for
    network reasons a :class:`DownloadFailed` says why.
    """
    dest = Path(dest)
    errors: list[str] = []
    checksum_error: str | None = None
    for url in urls:
        try:
            _fetch(url, dest, md5, quiet, sha256)
            return dest
        except _ChecksumMismatch as e:
            checksum_error = str(e)
        except http.client.IncompleteRead as e:
            errors.append(f"{url}: truncated download ({e.expected} bytes missing, nothing kept)")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
            code = getattr(e, "code", None)
            errors.append(f"{url}: {f'HTTP {code}' if code else reason or type(e).__name__}")
    if checksum_error:
        raise DataError(checksum_error)
    raise DownloadFailed("; ".join(errors) if errors else "no download address")


class _ChecksumMismatch(Exception):
    pass


def _fetch(url: str, dest: Path, md5: str | None, quiet: bool, sha256: str | None = None) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    req = urllib.request.Request(url, headers={"User-Agent": "cnnlab"})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
        total = resp.headers.get("Content-Length")
        h, h256, received = hashlib.md5(), hashlib.sha256(), 0
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True, disable=quiet)
        # the destination folder is only created once the server has answered
        with progress, atomic_path(dest) as tmp, open(tmp, "wb") as out:
            task = progress.add_task(f"download {dest.name}", total=int(total) if total else None)
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                h256.update(chunk)
                received += len(chunk)
                progress.advance(task, len(chunk))
            out.flush()
            if total and received != int(total):
                raise http.client.IncompleteRead(b"", int(total) - received)
            digest = h.hexdigest()
            if sha256 and h256.hexdigest() != sha256.lower():
                raise _ChecksumMismatch(f"{url}: checksum mismatch (sha256 {h256.hexdigest()}, expected "
                                        f"{sha256}); the download was discarded")
            if md5 and digest != md5:
                raise _ChecksumMismatch(f"{url}: checksum mismatch (md5 {digest}, expected {md5}); "
                                        f"the download was discarded")
