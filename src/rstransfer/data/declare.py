"""Shared pieces of a declared read: where a problem is, and how a declared array is found.

:class:`Context` carries the key namer (so every message names the config key to change),
the notes that end up in ``Scene.notes`` and the warnings. :func:`pick` finds the declared
variable of a file, :func:`dimension` reads rows/cols/band counts given as numbers or as
variable names, :func:`layout_name` settles the axis order of a stored array.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError

from .sources import ArrayFile, describe, format_of, open_file

__all__ = ["LOG", "Context", "Geometry", "KeyNamer", "dimension", "layout_name", "open_labels", "pick", "select"]

LOG = logging.getLogger("rstransfer.data")
#: turns a key relative to the options ("cube.variable") into the text that names it
KeyNamer = Callable[[str], str]


@dataclass
class Context:
    """What one read needs to say where a problem is, and what it found."""

    fmt: str
    key: KeyNamer
    notes: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    labels_name: str = ""  # how the ground-truth array was found, for the size check

    def warn(self, line: str) -> None:
        LOG.warning(line)
        self.warnings.append(line)


@dataclass(frozen=True)
class Geometry:
    """Rows, columns and pixel order of the cube (rows/cols None while unknown)."""

    rows: int | None
    cols: int | None
    order: str


def open_labels(path: Path, ctx: Context) -> ArrayFile:
    fmt = format_of(path)
    if fmt is None:
        raise ConfigError(
            f"{path}: cannot tell the format of the label file from its suffix ({ctx.key('labels.file')}); "
            "use .mat, .npy, .npz, .hdr, .tif or .tiff"
        )
    return open_file(path, fmt)


def pick(
    src: ArrayFile, variable: str | None, ndim: int, fallback: bool, rel: str, ctx: Context
) -> tuple[np.ndarray, str]:
    """The declared array of a file, and how to name it in messages."""
    key = ctx.key(f"{rel}.variable")
    if src.variables is None:
        if variable:
            raise ConfigError(
                f"{src.path}: a {src.format} file holds one array, not variable {variable!r}; leave {key} empty"
            )
        return src.single, "(one array)"  # type: ignore[return-value]
    if variable and variable in src.variables:
        arr = np.asarray(src.variables[variable])
        if arr.dtype.kind not in "biuf":
            raise DataFormatError(f"{src.path}: variable {variable!r} is not numeric ({describe(arr)}); see {key}")
        return arr, f"variable {variable!r}"
    candidates = [
        k
        for k, v in src.variables.items()
        if np.asarray(v).ndim == ndim and np.asarray(v).dtype.kind in "biuf" and np.asarray(v).size > 1
    ]
    if (fallback or not variable) and len(candidates) == 1:
        if variable:
            ctx.warn(
                f"{src.path}: variable {variable!r} not found; using {candidates[0]!r}, "
                f"the only {ndim}-D numeric variable ({key})"
            )
        return np.asarray(src.variables[candidates[0]]), f"variable {candidates[0]!r}"
    what = f"variable {variable!r} not found" if variable else f"no variable named ({key} is empty)"
    tried = ""
    if fallback or not variable:
        found = f"{len(candidates)} ({', '.join(candidates)})" if candidates else "no"
        tried = f", and {found} {ndim}-D numeric variables to fall back on"
    raise DataFormatError(f"{src.path}: {what} ({key}){tried}; variables: {src.listing()}")


def _scalar(src: ArrayFile, name: str, rel: str, ctx: Context) -> int:
    arr = np.asarray(src.variables[name])  # type: ignore[index]
    value = float(arr.ravel()[0]) if arr.size == 1 and arr.dtype.kind in "biuf" else float("nan")
    if not np.isfinite(value) or value != int(value):
        raise DataFormatError(
            f"{src.path}: variable {name!r} must be a whole-number scalar, got {describe(arr)} ({ctx.key(rel)})"
        )
    return int(value)


def dimension(spec: Any, rel: str, files: list[ArrayFile], ctx: Context) -> tuple[int | None, str]:
    """rows/cols/band_count: a number from config, a variable's value, or None."""
    if spec is None or spec == "":
        return None, ""
    if isinstance(spec, int) and not isinstance(spec, bool):
        return spec, f"{ctx.key(rel)}={spec}"
    for src in files:
        if src.variables is not None and str(spec) in src.variables:
            origin = f"variable {spec!r}" + (f" of {src.path.name}" if src is not files[0] else "")
            return _scalar(src, str(spec), rel, ctx), origin
    where = ", ".join(str(f.path) for f in files)
    raise DataFormatError(f"{where}: variable {spec!r} not found ({ctx.key(rel)}); variables: {files[0].listing()}")


def select(arr: np.ndarray, index: list[int], what: str, rel: str, ctx: Context) -> np.ndarray:
    for i in index:
        if arr.ndim < 2 or not -arr.shape[0] <= i < arr.shape[0]:
            raise ConfigError(
                f"{what} has shape {tuple(arr.shape)}: index {i} is out of range ({ctx.key(rel + '.index')})"
            )
        arr = arr[i]
    return arr


def layout_name(src: ArrayFile, declared: str | None, rel: str, ctx: Context) -> str:
    name = src.layout if declared in (None, "auto") else declared
    if name is None:
        raise ConfigError(
            f"{src.path}: cannot tell the axis order of a {src.format} array with axes {src.meta.get('axes')!r}; "
            f"set {ctx.key(rel + '.layout')}"
        )
    return name
