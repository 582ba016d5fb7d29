"""The generic scene reader: a cube and its ground truth, read by declaration alone.

One function, :func:`read_scene`, serves the readers ``mat``, ``npy``, ``envi`` and ``geotiff``
(the format of the cube file) and every preset of them (:mod:`rstransfer.data.presets`). The
options are the ``cube`` and ``labels`` blocks of ``datasets.<key>.options`` documented in
``dataset.schema.yaml``; they arrive validated, with defaults filled in.

Rules the reader keeps:

* every error is one line naming the file, the variable and the config key to change;
* a metadata variable that disagrees with the array (a band count recorded before band
  removal, say) never stops the read and is never silent: the array wins, one warning line
  is logged (logger ``rstransfer.data``) and the same line goes into ``Scene.notes["warnings"]``;
* a pixel matrix needs rows and columns and an explicit pixel order, because a wrong reshape
  gives a plausible-looking but sheared image.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError

from .declare import Context, Geometry, KeyNamer, dimension, layout_name, open_labels, pick, select
from .labels import read_label_block
from .layouts import LAYOUTS, band_indices
from .scene import Scene
from .sources import ArrayFile, describe, open_file

__all__ = ["declared_files", "read_labels", "read_scene", "require"]


def _variables(block: Mapping[str, Any], names: tuple[str, ...]) -> list[str]:
    return [str(block[n]) for n in names if isinstance(block.get(n), str) and block.get(n)]


def declared_files(options: Mapping[str, Any], *, labels_only: bool = False) -> dict[str, list[str]]:
    """File name -> the variables the declaration reads from it (for messages and inputs)."""
    cube, labels = options["cube"], options["labels"]
    out: dict[str, list[str]] = {}
    if not labels_only:
        out[cube["file"]] = _variables(cube, ("variable", "rows", "cols", "band_count", "wavelengths"))
    gt = labels.get("file") or cube["file"]
    out.setdefault(gt, []).extend(_variables(labels, ("variable", "names_variable")))
    if labels_only:
        out[gt].extend(_variables(cube, ("rows", "cols")))
    return out


def require(root: Path | None, expected: Mapping[str, list[str]]) -> dict[str, Path]:
    """Check that every declared file exists before reading any (cubes are large).

    Raises:
        DatasetNotFoundError: no folder given (and a relative name), folder or file missing.
    """
    listing = ", ".join(f"{name} (variable {', '.join(v)})" if v else name for name, v in expected.items())
    relative = [n for n in expected if not Path(n).is_absolute()]
    if relative and (root is None or str(root) == ""):
        raise DatasetNotFoundError(f"no folder given (path is empty); expected files: {listing}")
    if relative and not Path(root).is_dir():  # type: ignore[arg-type]
        raise DatasetNotFoundError(f"folder {root} does not exist; expected files: {listing}")
    paths = {n: Path(n) if Path(n).is_absolute() else Path(root) / n for n in expected}  # type: ignore[arg-type]
    missing = [n for n, p in paths.items() if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(f"{', '.join(missing)} not found in {root}; expected files: {listing}")
    return paths


def _pixel_grid(
    n_pixels: int, rows: tuple[int | None, str], cols: tuple[int | None, str], what: str, ctx: Context
) -> tuple[int, int]:
    (r, r_from), (c, c_from) = rows, cols
    if r is None and c is None:
        raise ConfigError(
            f"{what} is a pixel matrix of {n_pixels} pixels: set {ctx.key('cube.rows')} and {ctx.key('cube.cols')} "
            "(numbers or variable names)"
        )
    if r is None or c is None:
        known, other = (c, "rows") if r is None else (r, "cols")
        if known <= 0 or n_pixels % known:  # type: ignore[operator]
            raise DataFormatError(
                f"{what}: {n_pixels} pixels do not divide by {known} ({r_from or c_from}); "
                f"set {ctx.key('cube.' + other)}"
            )
        r, c = (n_pixels // known, known) if r is None else (known, n_pixels // known)  # type: ignore[operator]
    if r * c != n_pixels:
        raise DataFormatError(
            f"{what}: rows x cols = {r}x{c} = {r * c} ({r_from}, {c_from}) but the array has {n_pixels} pixels; "
            f"fix {ctx.key('cube.rows')} / {ctx.key('cube.cols')}"
        )
    return r, c


def _cube(
    src: ArrayFile, cube: Mapping[str, Any], files: list[ArrayFile], ctx: Context
) -> tuple[np.ndarray, Geometry, np.ndarray | None]:
    layout = LAYOUTS[layout_name(src, cube.get("layout"), "cube", ctx)]
    index = list(cube.get("index") or [])
    arr, name = pick(src, cube.get("variable"), layout.ndim + len(index), bool(cube.get("fallback")), "cube", ctx)
    stored_desc = describe(arr)
    what = f"{src.path}: {name} ({stored_desc})"
    arr = select(arr, index, what, "cube", ctx)
    if arr.ndim != layout.ndim:
        raise DataFormatError(
            f"{what}: layout {layout.name} needs a {layout.ndim}-D array, got {arr.ndim}-D; "
            f"fix {ctx.key('cube.layout')}" + (f" or {ctx.key('cube.index')}" if arr.ndim > layout.ndim else "")
        )
    n_bands = int(arr.shape[layout.band_axis])
    claimed, claimed_from = dimension(cube.get("band_count"), "cube.band_count", [src], ctx)
    if claimed is not None and claimed != n_bands:
        ctx.warn(
            f"{src.path}: {claimed_from} says {claimed} bands but {name} has {n_bands}; "
            f"using the array ({ctx.key('cube.band_count')})"
        )
    try:
        picked = band_indices(list(cube.get("bands") or []), n_bands)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc} ({ctx.key('cube.bands')})") from None
    rows, cols = (dimension(cube.get(k), f"cube.{k}", files, ctx) for k in ("rows", "cols"))
    order = str(cube.get("pixel_order") or "column")
    if layout.pixels:
        r, c = _pixel_grid(layout.n_pixels(arr.shape), rows, cols, what, ctx)
    else:
        r, c = layout.spatial_shape(arr.shape)  # type: ignore[misc]
        for (value, origin), actual, dim in ((rows, r, "rows"), (cols, c, "cols")):
            if value is not None and value != actual:
                line = f"{what}: {origin} says {value} {dim} but the array has {actual}"
                if origin.startswith("variable"):
                    ctx.warn(f"{line}; using the array ({ctx.key('cube.' + dim)})")
                else:
                    raise ConfigError(
                        f"{line} in layout {layout.name}; fix {ctx.key('cube.' + dim)} or {ctx.key('cube.layout')}"
                    )
    if picked.size != n_bands:
        arr = np.take(arr, picked, axis=layout.band_axis)
    out = layout.to_cube(np.asarray(arr), r, c, order)
    wavelengths = _wavelengths(src, cube.get("wavelengths"), n_bands, picked, ctx)
    ctx.notes["source"] = str(src.path)
    nodata = src.meta.get("nodata") or src.meta.get("data ignore value")
    if nodata is not None:
        ctx.notes["nodata"] = f"{nodata} (declared by {src.path.name}; kept as a value, not masked)"
    ctx.notes["cube"] = (
        f"{src.path.name} {name}, stored {stored_desc}"
        + (f", index {index}" if index else "")
        + f", layout {layout.name}"
        + (f", {order}-major pixels, rows {r}, cols {c}" if layout.pixels else "")
        + (f", bands {picked.size} of {n_bands}" if picked.size != n_bands else "")
    )
    return out, Geometry(r, c, order), wavelengths


def _wavelengths(src: ArrayFile, spec: Any, n_bands: int, picked: np.ndarray, ctx: Context) -> np.ndarray | None:
    values = src.meta.get("_wavelengths")
    if spec:
        if src.variables is None or spec not in src.variables:
            raise DataFormatError(
                f"{src.path}: variable {spec!r} not found ({ctx.key('cube.wavelengths')}); variables: {src.listing()}"
            )
        values = np.asarray(src.variables[spec], dtype=np.float64).ravel()
        if values.size != n_bands:
            ctx.warn(
                f"{src.path}: variable {spec!r} holds {values.size} wavelengths for {n_bands} bands; "
                f"wavelengths dropped ({ctx.key('cube.wavelengths')})"
            )
            return None
    return None if values is None else np.asarray(values, dtype=np.float32)[picked]


def _check_same_grid(cube_path: Path, shape: tuple[int, int], labels: np.ndarray, src: ArrayFile, ctx: Context) -> None:
    if labels.shape != shape:
        raise DataFormatError(
            f"{cube_path}: cube/GT shape mismatch: cube is {shape[0]}x{shape[1]}, ground truth is "
            f"{labels.shape[0]}x{labels.shape[1]} ({src.path.name} {ctx.labels_name}; {ctx.key('labels')})"
        )


def read_scene(fmt: str, root: Path | None, options: Mapping[str, Any], key: KeyNamer, name: str = "scene") -> Scene:
    """Read a declared scene.

    Args:
        fmt: format of the cube file (``mat``, ``npy``, ``envi``, ``geotiff``).
        root: the folder relative file names are resolved against (``datasets.<key>.path``).
        options: ``{"cube": {...}, "labels": {...}}``, validated, defaults filled.
        key: names a config key in messages (``"cube.variable"`` -> ``"datasets.x.options.cube.variable"``).
        name: the scene name.

    Raises:
        DatasetNotFoundError: the folder or a declared file is missing.
        ConfigError: the declaration cannot fit the files (missing rows/cols, bad band subset).
        DataFormatError: a file is unreadable or disagrees with the declaration.
    """
    cube_opts, label_opts = options["cube"], options["labels"]
    paths = require(root, declared_files(options))
    ctx = Context(fmt, key)
    cube_src = open_file(paths[cube_opts["file"]], fmt)
    gt_name = label_opts.get("file") or cube_opts["file"]
    gt_src = cube_src if gt_name == cube_opts["file"] else open_labels(paths[gt_name], ctx)
    mix = bool(cube_opts.get("mix_abundances"))
    if mix:
        cube, labels, class_names = _mixed_cube(cube_src, gt_src, cube_opts, label_opts, ctx)
        wavelengths = None
    else:
        cube, geo, wavelengths = _cube(cube_src, cube_opts, [cube_src, gt_src], ctx)
        cube_layout = layout_name(cube_src, cube_opts.get("layout"), "cube", ctx)
        labels, class_names, _ = read_label_block(gt_src, label_opts, geo, cube_layout, ctx)
        _check_same_grid(cube_src.path, cube.shape[:2], labels, gt_src, ctx)
    if ctx.warnings:
        ctx.notes["warnings"] = " | ".join(ctx.warnings)
    return Scene(
        name=name,
        cube=np.asarray(cube, dtype=np.float32),
        labels=labels,
        class_names=class_names,
        wavelengths=wavelengths,
        stand_in=mix,
        notes=ctx.notes,
    )


def _mixed_cube(
    cube_src: ArrayFile, gt_src: ArrayFile, cube_opts: Mapping[str, Any], label_opts: Mapping[str, Any], ctx: Context
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Stand-in cube = endmember spectra (bands x k) @ abundances, per pixel; with the labels."""
    if label_opts.get("kind") != "abundances":
        raise ConfigError(
            f"{ctx.key('cube.mix_abundances')} needs abundance ground truth: set {ctx.key('labels.kind')}: abundances"
        )
    spectra, name = pick(cube_src, cube_opts.get("variable"), 2, bool(cube_opts.get("fallback")), "cube", ctx)
    files = [gt_src, cube_src]
    rows, cols = (dimension(cube_opts.get(k), f"cube.{k}", files, ctx)[0] for k in ("rows", "cols"))
    geo = Geometry(rows, cols, str(cube_opts.get("pixel_order") or "column"))
    labels, class_names, image = read_label_block(gt_src, label_opts, geo, cube_opts.get("layout"), ctx)
    k = image.shape[2]  # type: ignore[union-attr]
    if spectra.shape[1] != k:
        raise DataFormatError(
            f"{cube_src.path}: endmember spectra {name} have shape {tuple(spectra.shape)}, expected (bands, {k}) "
            f"for {k} abundances ({ctx.key('cube.variable')})"
        )
    try:
        picked = band_indices(list(cube_opts.get("bands") or []), spectra.shape[0])
    except ValueError as exc:
        raise ConfigError(f"{cube_src.path}: {name}: {exc} ({ctx.key('cube.bands')})") from None
    mixed = np.einsum("rck,bk->rcb", image, np.asarray(spectra, dtype=np.float64)[picked])
    ctx.notes["source"] = str(cube_src.path)
    ctx.notes["stand_in"] = (
        f"rebuilt as {name} @ abundances ({picked.size} bands) from {gt_src.path.name}: "
        "a noise-free linear mixture, not a measured cube"
    )
    return mixed, labels, class_names


def read_labels(
    fmt: str, root: Path | None, options: Mapping[str, Any], key: KeyNamer
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read only the ground truth of a declared scene.

    The cube file is not opened, unless ``cube.rows``/``cube.cols`` name variables that only
    it holds (a pixel-matrix ground truth needs them).

    Raises:
        as :func:`read_scene`.
    """
    cube_opts, label_opts = options["cube"], options["labels"]
    paths = require(root, declared_files(options, labels_only=True))
    ctx = Context(fmt, key)
    gt_name = label_opts.get("file") or cube_opts["file"]
    gt_src = open_file(paths[gt_name], fmt) if gt_name == cube_opts["file"] else open_labels(paths[gt_name], ctx)
    files = [gt_src]
    wanted = [cube_opts.get(k) for k in ("rows", "cols") if isinstance(cube_opts.get(k), str)]
    if any(gt_src.variables is None or v not in gt_src.variables for v in wanted) and gt_name != cube_opts["file"]:
        # rows/cols recorded in the cube file only: open it for them (a MAT/NPZ file loads whole)
        files.append(open_file(require(root, {cube_opts["file"]: wanted})[cube_opts["file"]], fmt))
    rows, cols = (dimension(cube_opts.get(k), f"cube.{k}", files, ctx)[0] for k in ("rows", "cols"))
    geo = Geometry(rows, cols, str(cube_opts.get("pixel_order") or "column"))
    cube_layout = cube_opts.get("layout") if cube_opts.get("layout") != "auto" else None
    labels, names, _ = read_label_block(gt_src, label_opts, geo, cube_layout, ctx)
    return labels, names
