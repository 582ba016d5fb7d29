"""``rstransfer inspect <dataset>``: what a declaration reads, before a job is spent on it.

:func:`inspect_dataset` reads the declared scene exactly as ``prepare`` would
(:func:`~rstransfer.data.readers.load_dataset`) and describes it: cube shape, stored and
loaded dtype, value range, constant bands, wavelengths, label counts per class, and every note
and warning the reader left (a metadata variable that disagreed with the array, a variable
found by fallback, a stand-in scene). A declaration error raises the same one-line error that
``prepare`` would.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .readers import READERS, check_entry, load_dataset
from .scene import Scene

__all__ = ["describe_scene", "inspect_dataset"]

_SHOWN = ("source", "cube", "ground_truth", "labels", "warnings", "stand_in")


def _value_lines(scene: Scene) -> list[str]:
    cube = scene.cube
    flat = cube.reshape(-1, cube.shape[2])
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    constant = np.nonzero(lo == hi)[0]
    lines = [
        f"values    {float(lo.min()):.6g} .. {float(hi.max()):.6g}, mean {float(flat.mean(dtype=np.float64)):.6g}, "
        f"std {float(flat.std(dtype=np.float64)):.6g}"
    ]
    if constant.size:
        listed = ", ".join(str(b) for b in constant[:12]) + (" ..." if constant.size > 12 else "")
        lines.append(f"          {constant.size} constant band(s) (no information; consider cube.bands): {listed}")
    if scene.wavelengths is not None and len(scene.wavelengths):
        wl = np.asarray(scene.wavelengths)
        lines.append(f"waves     {float(wl.min()):.6g} .. {float(wl.max()):.6g} nm ({wl.size} bands)")
    return lines


def _class_lines(scene: Scene) -> list[str]:
    counts = np.bincount(scene.labels.ravel(), minlength=scene.n_classes + 1)
    total = scene.labels.size
    labelled = int(counts[1:].sum())
    width = max([len(n) for n in scene.class_names] + [4])
    lines = [
        f"labels    {scene.n_classes} classes, {labelled} of {total} px labelled "
        f"({100.0 * labelled / max(total, 1):.1f} %), {int(counts[0])} unlabelled (0)",
        f"          {'id':>3}  {'name':<{width}}  {'pixels':>8}",
    ]
    for k, name in enumerate(scene.class_names, start=1):
        flag = "  (absent)" if counts[k] == 0 else ""
        lines.append(f"          {k:>3}  {name:<{width}}  {int(counts[k]):>8}{flag}")
    return lines


def describe_scene(scene: Scene, header: str = "") -> str:
    """The inspection text of a loaded scene (see the module docstring)."""
    h, w, b = scene.cube.shape
    notes = scene.notes
    lines = [header] if header else []
    if scene.stand_in:
        lines.append(f"STAND-IN  {notes.get('stand_in', 'rebuilt from other data; report it as a stand-in')}")
    lines.append(f"cube      {h} rows x {w} cols x {b} bands, loaded as {scene.cube.dtype}")
    if "cube" in notes:
        lines.append(f"          read: {notes['cube']}")
    lines += _value_lines(scene)
    lines += _class_lines(scene)
    if "labels" in notes:
        lines.append(f"          read: {notes['labels']}")
    for key, value in notes.items():
        if key not in _SHOWN:
            lines.append(f"note      {key}: {value}")
    for line in filter(None, notes.get("warnings", "").split(" | ")):
        lines.append(f"WARNING   {line}")
    return "\n".join(lines)


def inspect_dataset(key: str, entry: Mapping[str, Any], data_root: Path | str) -> str:
    """What ``rstransfer inspect <key>`` prints for ``datasets.<key>``.

    Args:
        key: the dataset key.
        entry: its config entry.
        data_root: the folder relative dataset paths are resolved against.

    Returns:
        Several lines of text (no trailing newline).

    Raises:
        ConfigError, DatasetNotFoundError, DataFormatError: as
            :func:`~rstransfer.data.readers.load_dataset`, one line each.
    """
    full = check_entry(key, entry)
    scene = load_dataset(key, full, Path(data_root))
    reader = READERS[full["reader"]]
    where = full.get("path") or "(no files)"
    header = f"dataset   {key}: reader {reader.name} ({reader.summary}); path {where}"
    return describe_scene(scene, header)
