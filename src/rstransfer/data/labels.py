"""Class ids and names: from the values stored in a ground-truth map to labels 0..C.

The stored values follow the file's own numbering. ``labels.ignore`` lists the values that
mean "unlabelled" (default 0); ``labels.ids`` lists the class ids in class order when they are
not 1..C (Salinas-A keeps the Salinas ids {1, 10, ..., 14}; a land-cover map may skip ids).
Every labelled pixel becomes 1..C and every ignored one 0; any other value is an error, not a
silent drop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError

from .declare import Context, Geometry, layout_name, pick, select
from .layouts import LAYOUTS, label_layout, to_map
from .sources import ArrayFile, describe

__all__ = ["finish_labels", "read_label_block"]


def _as_ints(raw: np.ndarray, path: Path, name: str, key: Callable[[str], str]) -> np.ndarray:
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or not np.array_equal(raw, np.round(raw)):
            raise DataFormatError(
                f"{path}: ground truth {name} holds non-integer values; expected class ids 0..C "
                f"(abundances? set {key('labels.kind')}: abundances)"
            )
    elif raw.dtype.kind not in "biu":
        raise DataFormatError(f"{path}: ground truth {name} has dtype {raw.dtype}; expected integer class ids")
    return raw.astype(np.int64)


def finish_labels(
    raw: np.ndarray,
    opts: Mapping[str, Any],
    names: Sequence[str],
    n_abundances: int | None,
    path: Path,
    key: Callable[[str], str],
    name: str = "",
) -> tuple[np.ndarray, tuple[str, ...], dict[str, str]]:
    """Stored values -> (int32 labels 0..C, C class names, notes).

    Args:
        raw: the (rows, cols) map as stored, or 0..k from an abundance argmax.
        opts: the ``labels`` options (``ignore``, ``ids``).
        names: class names declared or read from the file (may be empty).
        n_abundances: k when ``raw`` is an abundance argmax, already 0..k (ids and ignore do not
            apply); None for a stored map.
        path: the ground-truth file, for messages.
        key: names a config key in messages.
        name: how the array was found ("variable 'gt'"), for messages.

    Raises:
        DataFormatError: a stored value is neither ignored nor a class id.
        ConfigError: ``ids`` and the names disagree in number.
    """
    notes: dict[str, str] = {}
    values = _as_ints(np.asarray(raw), path, name, key)
    ids = [int(i) for i in opts.get("ids") or []]
    ignore = opts.get("ignore", 0)
    ignored = {int(v) for v in (ignore if isinstance(ignore, (list, tuple)) else [ignore])}
    if n_abundances is not None:
        labels, n_classes = values, n_abundances
    elif ids:
        present = {int(v) for v in np.unique(values)}
        unknown = sorted(present - set(ids) - ignored)
        if unknown:
            raise DataFormatError(
                f"{path}: label(s) {unknown[:10]} outside the class list (expected 0 or one of {ids}; "
                f"{key('labels.ids')}, {key('labels.ignore')})"
            )
        lut = {v: k for k, v in enumerate(ids, start=1)}
        labels = np.zeros(values.shape, dtype=np.int64)
        for v, k in lut.items():
            labels[values == v] = k
        n_classes = len(ids)
        notes["original_ids"] = ",".join(str(i) for i in ids)
        notes["label_map"] = ", ".join(f"{stored}->{label}" for stored, label in lut.items())
    else:
        mask = np.isin(values, list(ignored))
        bad = sorted({int(v) for v in np.unique(values[~mask & (values < 1)])})
        if bad:
            raise DataFormatError(
                f"{path}: ground truth holds value(s) {bad[:10]} that are neither ignored ({key('labels.ignore')}) "
                f"nor class ids 1..C; list the class ids in {key('labels.ids')}"
            )
        labels = np.where(mask, 0, values)
        n_classes = len(names) if names else int(labels.max(initial=0))
    if ignored != {0} and n_abundances is None:
        notes["ignored_values"] = ",".join(str(v) for v in sorted(ignored))
    names = list(names)
    if names and len(names) != n_classes:
        raise ConfigError(
            f"{path}: {len(names)} class names for {n_classes} classes ({key('labels.names')}"
            f"{', ' + key('labels.ids') if ids else ''})"
        )
    if not names:
        names = [f"class {i}" for i in (ids or range(1, n_classes + 1))]
    return labels.astype(np.int32), tuple(str(n) for n in names), notes


def _class_names(src: ArrayFile, name: str, ctx: Context) -> list[str]:
    key = ctx.key("labels.names_variable")
    if src.format == "envi":
        value = src.meta.get(name.lower())
        if not isinstance(value, list):
            raise DataFormatError(
                f"{src.meta.get('_header', src.path)}: ENVI header has no list field {name!r} ({key})"
            )
        if name.lower() == "class names" and value:
            # ENVI numbers class names from value 0 ("Unclassified"), which is not a class.
            ctx.notes["dropped_name"] = f"{value[0]!r} (ENVI's name of value 0)"
            value = value[1:]
        return [str(v) for v in value]
    if src.variables is None or name not in src.variables:
        raise DataFormatError(
            f"{src.path}: variable {name!r} (class names) not found ({key}); variables: {src.listing()}"
        )
    from .matfile import strings

    try:
        raw = strings(np.asarray(src.variables[name]))
    except TypeError as exc:
        raise DataFormatError(
            f"{src.path}: variable {name!r} should hold the class names as strings: {exc} ({key})"
        ) from None
    # Unmixing ground truths number their names ("1-Asphalt Road"); the number is the id, not the name.
    return [re.sub(r"^\s*\d+\s*-\s*", "", s) for s in raw]


def read_label_block(
    src: ArrayFile, labels: Mapping[str, Any], geo: Geometry, cube_layout: str | None, ctx: Context
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray | None]:
    """(label map, class names, abundance image or None)."""
    kind = labels.get("kind") or "map"
    index = list(labels.get("index") or [])
    order = str(labels.get("pixel_order") or geo.order)
    declared = labels.get("layout")
    abundance = None
    if kind == "abundances":
        # declared > the file's own order (ENVI, TIFF) > the cube's order
        fallback_layout = src.layout or cube_layout or "rows_cols_bands"
        name_ = layout_name(src, declared if declared not in (None, "auto") else fallback_layout, "labels", ctx)
        if name_ not in LAYOUTS:
            raise ConfigError(
                f"{src.path}: layout {name_} is a label-map layout; abundances need one of {sorted(LAYOUTS)} "
                f"({ctx.key('labels.layout')})"
            )
        layout = LAYOUTS[name_]
        arr, name = pick(
            src, labels.get("variable"), layout.ndim + len(index), bool(labels.get("fallback")), "labels", ctx
        )
        what = f"{src.path}: abundances {name} ({describe(arr)})"
        ctx.labels_name = name
        arr = select(arr, index, what, "labels", ctx)
        rows, cols = geo.rows, geo.cols
        if layout.pixels and (rows is None or cols is None):
            raise ConfigError(
                f"{what}: set {ctx.key('cube.rows')} and {ctx.key('cube.cols')} to reshape the pixel matrix"
            )
        try:
            image = layout.to_cube(np.asarray(arr, dtype=np.float64), rows or 0, cols or 0, order)
        except ValueError as exc:
            raise DataFormatError(
                f"{what}: {exc}; expected (endmembers, {rows}x{cols}) for layout {layout.name} "
                f"({ctx.key('labels.layout')})"
            ) from None
        purity = float(labels.get("purity", 0.0))
        raw = np.argmax(image, axis=2).astype(np.int32) + 1
        raw[image.max(axis=2) <= purity] = 0
        abundance = image
        ctx.notes["labels"] = (
            f"argmax of the {image.shape[2]} abundances {name} of {src.path.name}; top abundance > {purity} kept"
        )
        ctx.notes["purity"] = str(purity)
    else:
        arr, name = pick(src, labels.get("variable"), 2 + len(index), bool(labels.get("fallback")), "labels", ctx)
        what = f"{src.path}: label map {name} ({describe(arr)})"
        ctx.labels_name = name
        arr = select(arr, index, what, "labels", ctx)
        try:
            map_layout = label_layout(arr, None if declared in (None, "auto") else declared)
            raw = to_map(np.asarray(arr), map_layout, geo.rows or 0, geo.cols or 0, order)
        except ValueError as exc:
            raise DataFormatError(f"{what}: {exc} ({ctx.key('labels.layout')})") from None
        ctx.notes["labels"] = f"label map {name} of {src.path.name}" + (
            f" ({order}-major pixel vector)" if map_layout == "pixels" else ""
        )
    names_var = labels.get("names_variable")
    names = list(labels.get("names") or []) or (_class_names(src, names_var, ctx) if names_var else [])
    if names_var:
        ctx.notes["class_names"] = f"from {names_var!r} of {src.path.name}"
    k = None if abundance is None else int(abundance.shape[2])
    final, class_names, notes = finish_labels(raw, labels, names, k, src.path, ctx.key, ctx.labels_name)
    ctx.notes.update(notes)
    ctx.notes["ground_truth"] = str(src.path)
    return final, class_names, abundance
