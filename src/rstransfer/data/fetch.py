"""Opt-in download of a declared dataset file, verified by its sha256 (``rstransfer download``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError

__all__ = ["download"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(entry: Mapping[str, Any], dest_dir: Path, *, key: str = "<key>", timeout: float = 60.0) -> Path:
    """Fetch ``entry['url']`` into ``dest_dir`` and verify ``entry['sha256']``.

    Opt-in only: never called at import or by a reader. The file is written under a temporary
    name and renamed only once its checksum matches, so a failed or tampered download leaves
    nothing behind. A file already present with the right checksum is not fetched again.

    Args:
        entry: dataset entry with ``url`` and ``sha256`` (lower-case hex).
        dest_dir: folder to write into (created if needed); the file keeps the URL's base name.
        key: dataset key, for messages.
        timeout: network timeout in seconds.

    Returns:
        The downloaded file.

    Raises:
        ConfigError: ``url`` or ``sha256`` is missing.
        DatasetNotFoundError: the URL could not be fetched.
        DataFormatError: the checksum does not match.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    from rstransfer.core.io import atomic_path

    url, expected = entry.get("url"), str(entry.get("sha256") or "").lower()
    if not url:
        raise ConfigError(f"datasets.{key}.url: not set; nothing to download")
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ConfigError(f"datasets.{key}.sha256: a 64-digit hex checksum is required to download {url}")
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise ConfigError(f"datasets.{key}.url: {url} does not end in a file name")
    target = Path(dest_dir) / name
    if target.is_file() and _sha256(target) == expected:
        return target
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
        except (urllib.error.URLError, OSError) as exc:
            raise DatasetNotFoundError(f"dataset '{key}': could not download {url}: {exc}") from exc
        actual = _sha256(tmp)
        if actual != expected:
            raise DataFormatError(
                f"dataset '{key}': {url} has sha256 {actual}, expected {expected} "
                f"(datasets.{key}.sha256); file discarded"
            )
    return target
