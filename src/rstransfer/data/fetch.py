"""Opt-in download of a declared dataset file, verified by its sha256 (``rstransfer download``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError

__all__ = ["download", "extract_zip"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    entry: Mapping[str, Any], dest_dir: Path, *, key: str = "<key>", timeout: float = 60.0, section: str = "datasets."
) -> Path:
    """Fetch ``entry['url']`` into ``dest_dir`` and verify ``entry['sha256']``.

    Opt-in only: never called at import or by a reader. The file is written under a temporary
    name and renamed only once its checksum matches, so a failed or tampered download leaves
    nothing behind. A file already present with the right checksum is not fetched again.

    Args:
        entry: dataset entry with ``url`` and ``sha256`` (lower-case hex).
        dest_dir: folder to write into (created if needed); the file keeps the URL's base name.
        key: dataset key, for messages.
        section: config prefix of ``key`` in messages (a study's archive: ``""`` with key ``multilabel.archive``).
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
        raise ConfigError(f"{section}{key}.url: not set; nothing to download")
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ConfigError(f"{section}{key}.sha256: a 64-digit hex checksum is required to download {url}")
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise ConfigError(f"{section}{key}.url: {url} does not end in a file name")
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
                f"({section}{key}.sha256); file discarded"
            )
    return target


def extract_zip(archive: Path, dest_dir: Path) -> list[str]:
    """Unpack a downloaded zip into ``dest_dir``; every member must stay inside it (no absolute
    paths, no ``..``, no links), checked before anything is written. Returns the top-level names."""
    import zipfile

    dest = Path(dest_dir).resolve()
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                target = (dest / info.filename).resolve()
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if is_link or not (target == dest or dest in target.parents):
                    raise DataFormatError(f"{archive}: member {info.filename!r} would be written outside {dest}; nothing unpacked")
            z.extractall(dest)
            return sorted({Path(i.filename).parts[0] for i in z.infolist() if Path(i.filename).parts})
    except zipfile.BadZipFile as exc:
        raise DataFormatError(f"{archive}: not a zip archive ({exc})") from exc
