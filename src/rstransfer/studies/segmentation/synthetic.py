"""The synthetic demo tile set (exact ISPRS file format; made-up content)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.io import atomic_path

from .data import DSM_NAME, IMAGE_NAME, LABEL_NAME, SUBDIRS, encode_labels

# ---------------------------------------------------------------------------------------------
# the synthetic demo tile set (exact ISPRS file format; made-up content)


def synthetic_tile(n: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A made-up tile: (IRRG uint8 (H, W, 3), class ids (H, W), DSM float32 (H, W)).

    Low vegetation background, smooth tree crowns, rectangular buildings, a road grid with
    cars, and a few clutter patches; IRRG colours and heights per class with texture, so a
    model can learn something in a few epochs. Sizes differ a little per tile, as in ISPRS.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng([seed, n])
    h, w = height + 8 * (n % 3), width + 8 * (n % 2)
    ids = np.full((h, w), 2, dtype=np.uint8)
    dsm = 265.0 + 3.0 * gaussian_filter(rng.standard_normal((h, w)), 30, mode="reflect") * 10
    field = gaussian_filter(rng.standard_normal((h, w)), max(2.0, min(h, w) / 40), mode="reflect")
    field /= field.std() + 1e-9
    trees = field > 0.9
    ids[trees] = 3
    dsm += np.where(trees, 4.0 + 3.0 * np.clip(field, 0, 3), 0.0)
    for _ in range(max(2, h * w // 6000)):  # buildings
        bh, bw = rng.integers(max(6, h // 12), max(8, h // 5)), rng.integers(max(6, w // 12), max(8, w // 5))
        r, c = rng.integers(0, h - bh), rng.integers(0, w - bw)
        ids[r : r + bh, c : c + bw] = 1
        dsm[r : r + bh, c : c + bw] = dsm[r : r + bh, c : c + bw].min() + rng.uniform(6, 14)
    road = max(5, min(h, w) // 20)
    roads = np.zeros((h, w), dtype=bool)
    for r in rng.choice(np.arange(road, h - 2 * road), size=max(1, h // 150), replace=False):
        roads[r : r + road] = True
    for c in rng.choice(np.arange(road, w - 2 * road), size=max(1, w // 150), replace=False):
        roads[:, c : c + road] = True
    ids[roads] = 0
    rr, cc = np.nonzero(roads)
    for i in rng.choice(len(rr), size=max(2, len(rr) // 400), replace=False):  # cars on roads
        r, c = min(rr[i], h - 4), min(cc[i], w - 7)
        ids[r : r + 3, c : c + 6] = 4
        dsm[r : r + 3, c : c + 6] += 1.5
    for _ in range(max(1, h * w // 20000)):  # clutter
        r, c = rng.integers(0, h - 6), rng.integers(0, w - 6)
        ids[r : r + rng.integers(3, 7), c : c + rng.integers(3, 7)] = 5
    base = np.array([[125, 128, 132], [175, 140, 135], [195, 115, 105], [140, 70, 60], [60, 60, 200], [90, 95, 115]])
    car_colours = rng.integers(20, 235, (h, w, 3))
    image = base[ids].astype(np.float64)
    image[ids == 4] = car_colours[ids == 4]
    light = 1.0 + 0.08 * gaussian_filter(rng.standard_normal((h, w)), 20, mode="reflect") * 10
    texture = rng.normal(0, 6, (h, w, 3)) + np.where(ids == 3, 12, 0)[..., None] * rng.standard_normal((h, w, 1))
    image = np.clip(image * light[..., None] + texture, 0, 255).astype(np.uint8)
    return image, ids, dsm.astype(np.float32)


def write_synthetic_tiles(root: Path, tiles: Iterable[int], height: int, width: int, seed: int) -> list[Path]:
    """Write ``top/``, ``gts/`` and ``dsm/`` under ``root`` in the exact ISPRS format (atomically)."""
    import tifffile

    written = []
    for n in sorted(set(tiles)):
        image, ids, dsm = synthetic_tile(n, height, width, seed)
        files: list[tuple[Path, np.ndarray, Callable[..., None]]] = [
            (root / SUBDIRS["image"] / IMAGE_NAME.format(n=n), image, _rgb_writer),
            (root / SUBDIRS["label"] / LABEL_NAME.format(n=n), encode_labels(ids), _rgb_writer),
            (root / SUBDIRS["dsm"] / DSM_NAME.format(n=n), dsm, _band_writer),
        ]
        for path, data, writer in files:
            with atomic_path(path) as tmp:
                writer(tifffile, tmp, data)
            written.append(path)
    return written


def _rgb_writer(tifffile: Any, path: Path, data: np.ndarray) -> None:
    tifffile.imwrite(path, data, photometric="rgb")


def _band_writer(tifffile: Any, path: Path, data: np.ndarray) -> None:
    tifffile.imwrite(path, data, photometric="minisblack")

