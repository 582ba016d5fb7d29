"""Axis orders: how an array on disk becomes a (rows, cols, bands) cube or a (rows, cols) map.

A cube is stored in one of four layouts (:data:`LAYOUTS`):

* ``rows_cols_bands`` (H, W, B): the EHU scenes, most ``.npy`` stacks, ENVI BIP;
* ``bands_rows_cols`` (B, H, W): band-sequential stacks, ENVI BSQ, planar GeoTIFF;
* ``bands_pixels`` (B, H*W): unmixing benchmarks (HYDICE Urban ``Y``, Samson, Jasper Ridge);
* ``pixels_bands`` (H*W, B): pixel tables.

The pixel layouts need ``rows`` and ``cols`` and a pixel order: ``column`` (MATLAB, Fortran:
pixel ``p = r + c * rows``) or ``row`` (C, NumPy: ``p = r * cols + c``). A C-order reshape of a
MATLAB matrix would silently transpose and shear the image, so the order is always explicit.

Abundance ground truth uses the same four names, with "bands" read as "endmembers".
Errors here are :class:`ValueError` with a short reason; the generic reader adds the file, the
variable and the config key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LAYOUTS", "PIXEL_ORDERS", "Layout", "band_indices", "label_layout", "to_map"]

#: pixel order name -> NumPy reshape order
PIXEL_ORDERS: dict[str, str] = {"column": "F", "row": "C"}


@dataclass(frozen=True)
class Layout:
    """One stored axis order.

    Attributes:
        name: the config name.
        band_axis: axis of the bands (endmembers) in the stored array.
        pixels: True when rows and columns are flattened into one pixel axis.
    """

    name: str
    band_axis: int
    pixels: bool

    @property
    def ndim(self) -> int:
        return 2 if self.pixels else 3

    def n_pixels_axis(self) -> int:
        return 1 - self.band_axis  # only meaningful for pixel layouts

    def spatial_shape(self, shape: Sequence[int]) -> tuple[int, int] | None:
        """(rows, cols) read off the array, or None for pixel layouts."""
        if self.pixels:
            return None
        return (int(shape[1]), int(shape[2])) if self.band_axis == 0 else (int(shape[0]), int(shape[1]))

    def n_pixels(self, shape: Sequence[int]) -> int:
        if self.pixels:
            return int(shape[self.n_pixels_axis()])
        rows, cols = self.spatial_shape(shape)  # type: ignore[misc]
        return rows * cols

    def to_cube(self, arr: np.ndarray, rows: int, cols: int, order: str) -> np.ndarray:
        """The stored array -> (rows, cols, bands); ``order`` is a :data:`PIXEL_ORDERS` key.

        Raises:
            ValueError: the array's rank or pixel count does not fit the layout.
        """
        if arr.ndim != self.ndim:
            raise ValueError(f"layout {self.name} needs a {self.ndim}-D array, got shape {tuple(arr.shape)}")
        if not self.pixels:
            return arr if self.band_axis == 2 else np.moveaxis(arr, 0, -1)
        table = arr.T if self.band_axis == 0 else arr  # (pixels, bands)
        if table.shape[0] != rows * cols:
            raise ValueError(
                f"layout {self.name}: {table.shape[0]} pixels in shape {tuple(arr.shape)}, "
                f"but rows x cols = {rows}x{cols} = {rows * cols}"
            )
        return table.reshape(rows, cols, table.shape[1], order=PIXEL_ORDERS[order])


LAYOUTS: dict[str, Layout] = {
    "rows_cols_bands": Layout("rows_cols_bands", band_axis=2, pixels=False),
    "bands_rows_cols": Layout("bands_rows_cols", band_axis=0, pixels=False),
    "bands_pixels": Layout("bands_pixels", band_axis=0, pixels=True),
    "pixels_bands": Layout("pixels_bands", band_axis=1, pixels=True),
}


def label_layout(arr: np.ndarray, declared: str | None) -> str:
    """``rows_cols`` or ``pixels`` for a label map; None means: by the array's rank.

    Singleton axes (MATLAB 1 x N vectors, EOPatch (H, W, 1) masks) do not count.

    Raises:
        ValueError: the declared layout is not a label-map layout, or the rank does not fit.
    """
    squeezed = _squeeze(arr)
    if declared is None:
        declared = "pixels" if squeezed.ndim == 1 else "rows_cols"
    if declared not in ("rows_cols", "pixels"):
        raise ValueError(f"layout {declared} is not a label-map layout (rows_cols or pixels)")
    want = 1 if declared == "pixels" else 2
    if squeezed.ndim != want:
        raise ValueError(f"a label map in layout {declared} must be {want}-D, got shape {tuple(arr.shape)}")
    return declared


def to_map(arr: np.ndarray, layout: str, rows: int, cols: int, order: str) -> np.ndarray:
    """A label map (rows_cols) or pixel vector (pixels) -> (rows, cols).

    Raises:
        ValueError: the pixel count does not match ``rows * cols`` (pixel vectors only; a
            rows_cols map is returned as stored and compared with the cube by the caller).
    """
    squeezed = _squeeze(arr)
    if layout == "rows_cols":
        return squeezed
    if squeezed.size != rows * cols:
        raise ValueError(
            f"{squeezed.size} pixels in shape {tuple(arr.shape)}, but rows x cols = {rows}x{cols} = {rows * cols}"
        )
    return squeezed.reshape(rows, cols, order=PIXEL_ORDERS[order])


def _squeeze(arr: np.ndarray) -> np.ndarray:
    """Drop singleton axes: (1, N) -> (N,), (H, W, 1) -> (H, W)."""
    return np.squeeze(arr) if arr.ndim > 1 and arr.size > 1 else arr


def band_indices(spec: Sequence[int | str], n_bands: int) -> np.ndarray:
    """A band subset -> sorted-as-given 0-based indices.

    Args:
        spec: 0-based band numbers and ``"start:stop"`` ranges (stop excluded, as in Python),
            e.g. ``[0, "5:100", 110]``. Empty means every band.
        n_bands: bands in the stored array.

    Raises:
        ValueError: an entry is malformed, out of range, or repeated.
    """
    if not spec:
        return np.arange(n_bands)
    out: list[int] = []
    for item in spec:
        if isinstance(item, bool):
            raise ValueError(f"band {item!r} is not a band number")
        if isinstance(item, int):
            picked = [item]
        else:
            parts = str(item).split(":")
            if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() or p.strip() == "" for p in parts):
                raise ValueError(f"band range {item!r} is not 'start:stop'")
            start = int(parts[0]) if parts[0].strip() else 0
            stop = int(parts[1]) if parts[1].strip() else n_bands
            if not 0 <= start < stop <= n_bands:
                raise ValueError(f"band range {item!r} is outside 0:{n_bands}")
            picked = list(range(start, stop))
        bad = [b for b in picked if not 0 <= b < n_bands]
        if bad:
            raise ValueError(f"band {bad[0]} is outside 0..{n_bands - 1} (the array has {n_bands} bands)")
        out.extend(picked)
    if len(set(out)) != len(out):
        raise ValueError(f"band(s) {sorted({b for b in out if out.count(b) > 1})[:10]} selected twice")
    return np.asarray(out, dtype=np.intp)
