"""Array files by format: MAT, NPY/NPZ, ENVI and (Geo)TIFF behind one small interface.

:func:`open_file` returns an :class:`ArrayFile`: either named variables (MAT, NPZ) or one
array (NPY, ENVI, TIFF). The generic reader picks variables and axis orders on top of it,
so adding a format is one opener in :data:`OPENERS`. Labels may come from any format; their
format follows the file suffix (:func:`format_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import DataFormatError, DatasetNotFoundError

from .matfile import load_mat

__all__ = ["OPENERS", "SUFFIXES", "ArrayFile", "describe", "format_of", "open_file"]


@dataclass
class ArrayFile:
    """The arrays of one file.

    Attributes:
        path: the file (for ENVI, the path as declared: header or binary).
        format: key of :data:`OPENERS`.
        variables: name -> array for MAT and NPZ files; None for single-array formats.
        single: the one array of an NPY, ENVI or TIFF file.
        layout: the layout the single array is already in (ENVI, TIFF), else None.
        meta: format details for notes (ENVI header fields, TIFF axes, nodata).
    """

    path: Path
    format: str
    variables: Mapping[str, np.ndarray] | None = None
    single: np.ndarray | None = None
    layout: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def listing(self) -> str:
        """``name dtype shape`` of every variable, for messages."""
        if self.variables is None:
            return f"one array {describe(self.single)}"  # type: ignore[arg-type]
        return ", ".join(f"{k} {describe(v)}" for k, v in self.variables.items()) or "none"


def describe(arr: np.ndarray) -> str:
    arr = np.asarray(arr) if not hasattr(arr, "shape") else arr
    return f"{arr.dtype} {tuple(arr.shape)}"


def _open_mat(path: Path) -> ArrayFile:
    return ArrayFile(path, "mat", variables=load_mat(path))


def _open_npy(path: Path) -> ArrayFile:
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return ArrayFile(path, "npy", variables={k: npz[k] for k in npz.files})
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: not a readable .npy/.npz file: {_short(exc)}") from exc
    if not isinstance(arr, np.ndarray):
        raise DataFormatError(f"{path}: expected one array in the .npy file")
    return ArrayFile(path, "npy", single=arr)


def _open_envi(path: Path) -> ArrayFile:
    from .envi import open_envi

    cube, fields = open_envi(path)
    return ArrayFile(path, "envi", single=cube, layout="rows_cols_bands", meta=fields)


def _open_tiff(path: Path) -> ArrayFile:
    try:
        import tifffile
    except ImportError as exc:  # pragma: no cover - tifffile is in envs/requirements.txt
        raise DataFormatError(f"{path}: reading TIFF needs the tifffile package") from exc
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            arr = series.asarray()
            tag = tif.pages[0].tags.get(42113)  # GDAL_NODATA, stored as text
            nodata = None if tag is None else str(tag.value).strip("\x00 ")
    except KeyError as exc:  # tifffile: "<COMPRESSION.LZW: 5> requires the 'imagecodecs' package"
        raise DataFormatError(f"{path}: {_short(exc)} (pip install imagecodecs)") from exc
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error for bad files
        raise DataFormatError(f"{path}: not a readable TIFF file: {_short(exc)}") from exc
    arr, axes = _squeeze_axes(arr, axes)
    meta: dict[str, Any] = {"axes": axes, "nodata": nodata}
    # The stored order, read off tifffile's axes: Y rows, X columns, S samples, I/Q/C pages or channels.
    layout = None
    if axes == "YX":
        arr, layout = arr[:, :, None], "rows_cols_bands"
    elif len(axes) == 3 and axes[:2] == "YX":
        layout = "rows_cols_bands"
    elif len(axes) == 3 and axes[1:] == "YX":
        layout = "bands_rows_cols"
    return ArrayFile(path, "geotiff", single=arr, layout=layout, meta=meta)


def _squeeze_axes(arr: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    keep = [i for i, n in enumerate(arr.shape) if n != 1 or axes[i] in "YX"]
    return arr.reshape([arr.shape[i] for i in keep]), "".join(axes[i] for i in keep)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


#: format name (the generic reader's name) -> opener
OPENERS: dict[str, Callable[[Path], ArrayFile]] = {
    "mat": _open_mat,
    "npy": _open_npy,
    "envi": _open_envi,
    "geotiff": _open_tiff,
}
#: file suffix -> format, for label files
SUFFIXES: dict[str, str] = {
    ".mat": "mat",
    ".npy": "npy",
    ".npz": "npy",
    ".hdr": "envi",
    ".tif": "geotiff",
    ".tiff": "geotiff",
}


def format_of(path: Path) -> str | None:
    """The format of a label file by its suffix; an ENVI binary is known by its ``.hdr`` twin."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None and (path.with_suffix(".hdr").is_file() or Path(f"{path}.hdr").is_file()):
        return "envi"
    return fmt


def open_file(path: Path, fmt: str) -> ArrayFile:
    """Open ``path`` as format ``fmt`` (a key of :data:`OPENERS`).

    Raises:
        DatasetNotFoundError: the file (or its ENVI partner) is missing.
        DataFormatError: the file is unreadable.
    """
    if not path.is_file() and fmt != "envi":
        raise DatasetNotFoundError(f"{path}: file not found")
    return OPENERS[fmt](path)
