"""ENVI raster files: a text header (``.hdr``) beside a raw binary (BSQ, BIL or BIP).

The header format is documented by NV5 ("ENVI Header Files"). Only the fields needed to map
the binary are read: ``samples``, ``lines``, ``bands``, ``header offset``, ``data type``,
``interleave``, ``byte order``, plus ``wavelength`` (with ``wavelength units``), ``class
names`` (ENVI classification files) and ``data ignore value`` for the notes. The binary is
memory-mapped, so a band subset of a large cube reads only those bands.

Interleave -> axis order of the binary: ``bsq`` (bands, lines, samples), ``bil`` (lines, bands,
samples), ``bip`` (lines, samples, bands). :func:`open_envi` returns the cube as
(lines, samples, bands), i.e. rows x cols x bands, as a view of the memory map.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import DataFormatError, DatasetNotFoundError

__all__ = ["BINARY_SUFFIXES", "ENVI_DTYPES", "find_pair", "open_envi", "parse_header"]

#: ENVI ``data type`` code -> NumPy dtype (complex types 6 and 9 are not hyperspectral cubes)
ENVI_DTYPES: dict[int, str] = {
    1: "u1",
    2: "i2",
    3: "i4",
    4: "f4",
    5: "f8",
    12: "u2",
    13: "u4",
    14: "i8",
    15: "u8",
}
#: interleave -> (binary axis order as (lines, samples, bands) positions, transpose to rows x cols x bands)
_INTERLEAVE: dict[str, tuple[str, tuple[int, int, int]]] = {
    "bsq": ("bands lines samples", (1, 2, 0)),
    "bil": ("lines bands samples", (0, 2, 1)),
    "bip": ("lines samples bands", (0, 1, 2)),
}
BINARY_SUFFIXES: tuple[str, ...] = ("", ".img", ".dat", ".raw", ".bin", ".bsq", ".bil", ".bip")


def parse_header(path: Path) -> dict[str, Any]:
    """Read an ENVI header into ``{field: str | list[str]}`` (field names lower-case).

    Braced values (``wavelength = { 400.0, 410.0 }``) may span lines and become lists.

    Raises:
        DataFormatError: the file does not start with ``ENVI`` or a line is malformed.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read the ENVI header: {exc}") from exc
    lines = text.splitlines()
    if not lines or lines[0].strip() != "ENVI":
        raise DataFormatError(f"{path}: not an ENVI header (the first line must be 'ENVI')")
    fields: dict[str, Any] = {}
    pending: tuple[str, str] | None = None
    for number, line in enumerate(lines[1:], start=2):
        if pending is not None:
            key, value = pending[0], pending[1] + " " + line
        elif not line.strip() or line.lstrip().startswith(";"):
            continue
        elif "=" not in line:
            raise DataFormatError(f"{path}: line {number} of the ENVI header is not 'field = value': {line.strip()!r}")
        else:
            key, value = (part.strip() for part in line.split("=", 1))
            key = key.lower()
        if value.startswith("{") and "}" not in value:
            pending = (key, value)
            continue
        pending = None
        if value.startswith("{"):
            inner = value[1 : value.rindex("}")]
            fields[key] = [item.strip() for item in inner.split(",")] if inner.strip() else []
        else:
            fields[key] = value
    if pending is not None:
        raise DataFormatError(f"{path}: ENVI header field {pending[0]!r} opens '{{' but never closes it")
    return fields


def find_pair(path: Path) -> tuple[Path, Path]:
    """(header, binary) for a declared ``.hdr`` file or a declared binary.

    Raises:
        DatasetNotFoundError: the partner file is missing; the message lists the names tried.
    """
    if path.suffix.lower() == ".hdr":
        header = path
        tried = [path.with_suffix(s) for s in BINARY_SUFFIXES]
    else:
        header = path.with_suffix(".hdr") if path.with_suffix(".hdr").is_file() else Path(f"{path}.hdr")
        tried = [path]
        if not header.is_file():
            raise DatasetNotFoundError(
                f"{path}: ENVI header not found (tried {path.with_suffix('.hdr').name} and {path.name}.hdr)"
            )
    for candidate in tried:
        if candidate.is_file():
            return header, candidate
    raise DatasetNotFoundError(f"{header}: ENVI binary not found (tried {', '.join(c.name for c in tried)})")


def _int_field(fields: dict[str, Any], header: Path, name: str, default: int | None = None) -> int:
    raw = fields.get(name)
    if raw is None and default is not None:
        return default
    if raw is None or isinstance(raw, list) or not re.fullmatch(r"\s*\d+\s*", raw):
        raise DataFormatError(f"{header}: ENVI header field {name!r} must be a whole number, got {raw!r}")
    return int(raw)


def open_envi(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Memory-map an ENVI raster as (lines, samples, bands).

    Args:
        path: the header or the binary.

    Returns:
        ``(cube, fields)``: a read-only (rows, cols, bands) view, and the header fields plus
        ``"_header"``/``"_binary"`` (the two paths) and ``"_wavelengths"`` (float array or None).

    Raises:
        DatasetNotFoundError: the header or the binary is missing.
        DataFormatError: the header is malformed, names an unsupported data type or
            interleave, or the binary is shorter than the header says.
    """
    header, binary = find_pair(path)
    fields = parse_header(header)
    rows, cols, bands = (_int_field(fields, header, k) for k in ("lines", "samples", "bands"))
    offset = _int_field(fields, header, "header offset", default=0)
    code = _int_field(fields, header, "data type")
    if code not in ENVI_DTYPES:
        raise DataFormatError(f"{header}: ENVI data type {code} is not supported (supported: {sorted(ENVI_DTYPES)})")
    interleave = str(fields.get("interleave", "bsq")).strip().lower()
    if interleave not in _INTERLEAVE:
        raise DataFormatError(f"{header}: ENVI interleave {interleave!r} is not one of bsq, bil, bip")
    order = _int_field(fields, header, "byte order", default=0)
    dtype = np.dtype(ENVI_DTYPES[code]).newbyteorder(">" if order == 1 else "<")
    axes, transpose = _INTERLEAVE[interleave]
    sizes = {"lines": rows, "samples": cols, "bands": bands}
    shape = tuple(sizes[a] for a in axes.split())
    need = offset + rows * cols * bands * dtype.itemsize
    have = binary.stat().st_size
    if have < need:
        raise DataFormatError(
            f"{binary}: {have} bytes, but the header ({header.name}: {rows} lines x {cols} samples x "
            f"{bands} bands of {dtype.name}, offset {offset}) needs {need}; truncated or a wrong header"
        )
    raw = np.memmap(binary, dtype=dtype, mode="r", offset=offset, shape=shape)
    fields["_header"], fields["_binary"] = header, binary
    fields["_wavelengths"] = _wavelengths(fields, header, bands)
    return raw.transpose(transpose), fields


def _wavelengths(fields: dict[str, Any], header: Path, bands: int) -> np.ndarray | None:
    values = fields.get("wavelength")
    if not isinstance(values, list) or len(values) != bands:
        return None
    try:
        wl = np.asarray([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return None
    units = str(fields.get("wavelength units", "")).lower()
    scale = {"micrometers": 1000.0, "microns": 1000.0, "um": 1000.0, "millimeters": 1e6}.get(units, 1.0)
    return wl * scale
