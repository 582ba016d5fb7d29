"""MATLAB ``.mat`` files: the one module that knows MATLAB's quirks.

Two on-disk formats occur in hyperspectral releases:

* MAT v5 (the EHU/GIC scenes, the Urban ground truth), read with :func:`scipy.io.loadmat`;
* MAT v7.3, which is HDF5 behind a 512-byte MATLAB header. h5py returns every array with its
  axes reversed (HDF5 is row-major, MATLAB column-major), char arrays as ``uint16`` code units
  and cell arrays as object references into ``#refs#``. :func:`load_mat` undoes all three, so
  both formats give the same arrays.

Urban-style cubes also store pixels as MATLAB columns (``Y`` is bands x pixels, pixels in
column-major order); :func:`column_major_cube` and :func:`column_major_map` turn them into images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import DataFormatError, DatasetNotFoundError

__all__ = [
    "column_major_cube",
    "column_major_map",
    "find_variable",
    "load_mat",
    "scalar_int",
    "strings",
]


def load_mat(path: str | Path) -> dict[str, np.ndarray]:
    """Read every variable of a MAT v5 or v7.3 file, in MATLAB axis order.

    Args:
        path: the ``.mat`` file.

    Returns:
        Variable name -> array. Numeric arrays keep their MATLAB shape (at least 2-D) and
        dtype; char arrays become arrays of ``str`` (one per row) and cell arrays object arrays
        of the decoded elements, as :func:`scipy.io.loadmat` gives them for v5. v7.3 structs
        and objects (HDF5 groups) are skipped: none of the supported scenes uses them.

    Raises:
        DatasetNotFoundError: ``path`` does not exist.
        DataFormatError: the file is truncated, corrupt or not a MAT file.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: file not found")
    try:
        from scipy.io.matlab import matfile_version

        major, _ = matfile_version(str(path))
        if major == 2:
            return _load_v73(path)
        return _load_v5(path)
    except (DatasetNotFoundError, DataFormatError):
        raise
    except Exception as exc:  # scipy/h5py/zlib raise many types for the same bad-file cases
        raise DataFormatError(f"{path}: not a readable MAT file (truncated or corrupt): {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    """One-line, bounded description of a reader exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _load_v5(path: Path) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    # No squeezing: scalars stay (1, 1) and vectors 2-D, exactly as in MATLAB and as in v7.3.
    raw = loadmat(str(path), squeeze_me=False, struct_as_record=True)
    return {k: v for k, v in raw.items() if not k.startswith("__")}


def _load_v73(path: Path) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        for name, item in f.items():
            # '#refs#' holds cell elements and '#subsystem#' MATLAB objects; neither is a variable.
            if name.startswith("#") or not isinstance(item, h5py.Dataset):
                continue
            out[name] = _decode_dataset(f, item)
    return out


def _attr_str(ds: Any, key: str) -> str:
    value = ds.attrs.get(key, b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_dataset(f: Any, ds: Any) -> np.ndarray:
    """One v7.3 dataset -> the array MATLAB would show (axes back in MATLAB order)."""
    import h5py

    cls = _attr_str(ds, "MATLAB_class")
    data = ds[()]
    if int(ds.attrs.get("MATLAB_empty", 0)):
        # Empty arrays are stored as their dimensions, not as data.
        return np.zeros(tuple(int(d) for d in np.ravel(data)), dtype=np.float64)
    data = np.asarray(data)
    if h5py.check_dtype(ref=ds.dtype) is not None or cls == "cell":
        # Cell array: each element is a reference to a dataset in '#refs#'.
        refs = data.T
        cell = np.empty(refs.shape, dtype=object)
        for idx in np.ndindex(refs.shape):
            cell[idx] = _decode_dataset(f, f[refs[idx]])
        return cell
    data = data.T  # h5py reverses MATLAB's axis order; undo it for every rank
    if cls == "char":
        return _chars_to_str(data)
    if cls == "logical":
        return data.astype(bool)
    return data


def _chars_to_str(codes: np.ndarray) -> np.ndarray:
    """MATLAB char matrix (rows x cols of UTF-16 code units) -> one str per row."""
    codes = np.atleast_2d(codes)
    rows = ["".join(chr(int(c)) for c in row).rstrip("\x00") for row in codes]
    return np.array(rows, dtype=str)


def strings(value: np.ndarray) -> list[str]:
    """Flatten a MATLAB char array or cell array of strings to a list of str.

    Cells are walked in MATLAB (column-major) order, as ``cood{i}`` would index them.

    Args:
        value: an array returned by :func:`load_mat`.

    Returns:
        The strings, whitespace-trimmed.
    """
    if value.dtype == object:
        out: list[str] = []
        for item in np.asarray(value).ravel(order="F"):
            out.extend(strings(np.asarray(item)))
        return out
    if value.dtype.kind in "US":
        return [str(s).strip() for s in np.asarray(value).ravel(order="F")]
    raise TypeError(f"not a char or cell array of strings (dtype {value.dtype})")


def scalar_int(mat: dict[str, np.ndarray], path: str | Path, name: str) -> int:
    """Read a MATLAB scalar such as ``nRow`` (stored 1x1, any numeric class) as an int.

    Raises:
        DataFormatError: the variable is missing, not a scalar, or not a whole number.
    """
    if name not in mat:
        raise DataFormatError(f"{path}: variable '{name}' not found (variables: {_listing(mat)})")
    arr = np.asarray(mat[name])
    value = float(arr.ravel()[0]) if arr.size == 1 and arr.dtype.kind in "iuf" else float("nan")
    if not np.isfinite(value) or value != int(value):
        raise DataFormatError(f"{path}: variable '{name}' must be a whole-number scalar, got {_describe(arr)}")
    return int(value)


def _describe(arr: np.ndarray) -> str:
    return f"{arr.dtype} {tuple(arr.shape)}"


def _listing(mat: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {_describe(np.asarray(v))}" for k, v in mat.items()) or "none"


def find_variable(
    mat: dict[str, np.ndarray],
    path: str | Path,
    names: str | Sequence[str],
    ndim: int,
    what: str,
) -> np.ndarray:
    """Pick one numeric array from a loaded MAT file.

    The declared name(s) win. Otherwise, because re-saved copies of the public scenes often
    rename the variable (``indian_pines`` vs ``indian_pines_corrected``), fall back to the one
    numeric variable with ``ndim`` dimensions and more than one element.

    Args:
        mat: output of :func:`load_mat`.
        path: the file, for messages.
        names: expected variable name(s), tried in order.
        ndim: required number of dimensions.
        what: what the variable is ("cube", "ground truth"), for messages.

    Returns:
        The array.

    Raises:
        DataFormatError: the named variable has the wrong rank, or no name matches and the
            shape fallback finds no candidate or more than one.
    """
    wanted = [names] if isinstance(names, str) else list(names)
    for name in wanted:
        if name in mat:
            arr = np.asarray(mat[name])
            if arr.ndim != ndim or arr.dtype.kind not in "biuf":
                raise DataFormatError(
                    f"{path}: variable '{name}' ({what}) should be a {ndim}-D numeric array, got {_describe(arr)}"
                )
            return arr
    candidates = [
        k
        for k, v in mat.items()
        if np.asarray(v).ndim == ndim and np.asarray(v).dtype.kind in "biuf" and np.asarray(v).size > 1
    ]
    if len(candidates) == 1:
        return np.asarray(mat[candidates[0]])
    reason = "no" if not candidates else f"{len(candidates)} ({', '.join(candidates)})"
    raise DataFormatError(
        f"{path}: {what} not found: expected variable {' or '.join(repr(n) for n in wanted)}, "
        f"and {reason} {ndim}-D numeric variables to fall back on; variables found: {_listing(mat)}"
    )


def column_major_cube(Y: np.ndarray, n_row: int, n_col: int) -> np.ndarray:
    """Bands x pixels matrix with MATLAB column-major pixel order -> (n_row, n_col, bands).

    MATLAB's ``reshape(Y', nRow, nCol, nBand)`` fills columns first, hence ``order='F'``;
    a C-order reshape would silently transpose and shear the image.

    Raises:
        DataFormatError: the pixel count is not ``n_row * n_col``.
    """
    if Y.ndim != 2 or Y.shape[1] != n_row * n_col:
        raise DataFormatError(
            f"pixel matrix has shape {tuple(Y.shape)}, expected (bands, {n_row}*{n_col}={n_row * n_col})"
        )
    return Y.T.reshape(n_row, n_col, Y.shape[0], order="F")


def column_major_map(a: np.ndarray, n_row: int, n_col: int) -> np.ndarray:
    """One MATLAB column-major pixel vector (e.g. an abundance row ``A(i,:)``) -> (n_row, n_col).

    Raises:
        DataFormatError: the pixel count is not ``n_row * n_col``.
    """
    a = np.asarray(a)
    if a.size != n_row * n_col:
        raise DataFormatError(f"pixel vector has {a.size} values, expected {n_row}*{n_col}={n_row * n_col}")
    return a.reshape(n_row, n_col, order="F")
