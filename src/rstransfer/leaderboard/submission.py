"""The submission file: one ``<task>.<id>.npz`` per entry in the team's folder, holding the
entry's predictions (numeric arrays) and its ``__meta__`` (UTF-8 JSON as a uint8 array).

Nothing in it is trusted: ``read`` refuses links, special files, oversized files, archives
that decompress beyond a limit, object arrays (no pickle) and malformed metadata, each as
one ``SubmissionError`` line. The id is a hash of the content, so a rerun with unchanged
predictions writes nothing, and a file is created once (never replaced).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .tasks import SubmissionError, check_count, check_number, check_text, need

FORMAT = 2
META = "__meta__"
ID_LENGTH = 16
NAME_RE = re.compile(rf"^(?P<task>[a-z0-9_]{{1,32}})\.(?P<id>[0-9a-f]{{{ID_LENGTH}}})\.npz$")
ARRAY_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
#: dtype kinds a prediction may use: bool, ints, floats, unicode text
KINDS = "biufU"


def content_id(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """Hash of the metadata and every array (name, dtype, shape, bytes)."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:ID_LENGTH]


def encode(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    text = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    np.savez_compressed(buf, **{META: np.frombuffer(text, dtype=np.uint8)}, **arrays)
    return buf.getvalue()


def validate_meta(meta: Any, where: Any) -> dict[str, Any]:
    """The metadata every submission carries, each field typed and plain."""
    if not isinstance(meta, dict):
        raise SubmissionError(f"{where}: metadata must be an object")
    if need(meta, "format", where) != FORMAT:
        raise SubmissionError(f"{where}: format {meta['format']!r} is not {FORMAT} (predictions, scored by the organiser)")
    for key in ("team", "task", "entry", "model"):
        check_text(need(meta, key, where), key, where)
    details = need(meta, "details", where)
    if not isinstance(details, dict) or len(details) > 16:
        raise SubmissionError(f"{where}: details: expected an object of at most 16 keys")
    for key, value in details.items():
        check_text(key, "details key", where)
        values = value if isinstance(value, list) and len(value) <= 16 else [value]
        for v in values:
            if isinstance(v, str):
                check_text(v, f"details.{key}", where)
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise SubmissionError(f"{where}: details.{key}: expected text or numbers")
    cost = need(meta, "cost", where)
    if not isinstance(cost, dict):
        raise SubmissionError(f"{where}: cost: expected an object")
    for key in ("train_seconds", "gpu_hours"):
        check_number(need(cost, key, where, "cost."), f"cost.{key}", where, 0.0, 1e9)
    trainable = check_count(need(cost, "trainable_params", where, "cost."), "cost.trainable_params", where)
    if trainable > check_count(need(cost, "total_params", where, "cost."), "cost.total_params", where):
        raise SubmissionError(f"{where}: cost.trainable_params exceeds cost.total_params")
    ids = need(cost, "slurm_job_ids", where, "cost.")
    if not isinstance(ids, list) or len(ids) > 100 or not all(isinstance(j, str) and re.fullmatch(r"[0-9_]{1,20}", j) for j in ids):
        raise SubmissionError(f"{where}: cost.slurm_job_ids: expected a list of SLURM job ids")
    return meta


def write_new(folder: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[Path, bool]:
    """Create ``<folder>/<task>.<id>.npz`` once; ``(path, False)`` if it exists already."""
    validate_meta(meta, "submission")
    for name, a in arrays.items():
        if not ARRAY_RE.match(name) or a.dtype.kind not in KINDS:
            raise SubmissionError(f"submission: array {name!r} ({a.dtype}) is not a plain numeric or text array")
    path = folder / f"{meta['task']}.{content_id(meta, arrays)}.npz"
    if os.path.lexists(path):
        return path, False
    data = encode(meta, arrays)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails if it exists: never replaces a file
    except FileExistsError:
        return path, False
    finally:
        tmp.unlink(missing_ok=True)
    return path, True


def _array_bytes(member: Any) -> tuple[int, np.dtype]:
    """Decompressed size and dtype from an .npy header, without reading the data."""
    fmt = np.lib.format
    version = fmt.read_magic(member)
    header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = header(member)
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, dtype


def read(path: Path, max_bytes: int, max_unpacked: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metadata and arrays of one submission file, refusing anything unsafe (one line each)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise SubmissionError("a symbolic link (refused)")
    if not stat.S_ISREG(st.st_mode):
        raise SubmissionError("not a regular file")
    if st.st_size > max_bytes:
        raise SubmissionError(f"{st.st_size / 2**20:.1f} MiB exceeds the limit of {max_bytes / 2**20:.0f} MiB")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
        if len(infos) > 64:
            raise SubmissionError(f"{len(infos)} arrays (at most 64)")
        total, arrays = 0, {}
        for info in infos:
            name = info.filename.removesuffix(".npy")
            if not info.filename.endswith(".npy") or not ARRAY_RE.match(name):
                raise SubmissionError(f"unexpected member {info.filename[:60]!r} in the archive")
            with archive.open(info) as member:
                size, dtype = _array_bytes(member)
            total += size
            if total > max_unpacked:
                raise SubmissionError(f"arrays decompress beyond the limit of {max_unpacked / 2**20:.0f} MiB")
            if dtype.hasobject or dtype.kind not in KINDS:
                raise SubmissionError(f"array {name!r} has dtype {dtype} (plain numbers or text only)")
            with archive.open(info) as member:
                arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, NotImplementedError) as exc:
        raise SubmissionError(f"not a readable .npz archive ({type(exc).__name__}: {' '.join(str(exc).split())[:100]})") from exc
    raw = arrays.pop(META, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise SubmissionError(f"no {META} metadata array")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SubmissionError(f"{META}: not valid JSON") from exc
    return validate_meta(meta, META), arrays
