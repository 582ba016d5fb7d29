"""Train/val/test splits of labelled pixels, as data: one function per protocol in ``SPLITS``.

``disjoint`` (default): the scene is tiled into square blocks; blocks are grouped by their
dominant class and each group is dealt to train/val/test by the configured fractions. Val and
test pixels within ``window // 2`` (Chebyshev) of any training pixel are then dropped, so no test
or val patch window contains a training pixel (leakage = 0 by construction, and asserted).

``paper``: random stratified per-pixel split as in HybridSN (Roy et al. 2020), kept for
comparison. Neighbouring windows overlap, so its leakage figure is large.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter, uniform_filter

from rstransfer.core.errors import DataFormatError

UNUSED, TRAIN, VAL, TEST = 0, 1, 2, 3
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}


@dataclass(frozen=True)
class SplitSettings:
    protocol: str
    train: float
    val: float
    test: float
    block_size: int
    window: int
    seed: int
    min_pixels: int


def disjoint_split(labels: np.ndarray, s: SplitSettings) -> np.ndarray:
    rng = np.random.default_rng(s.seed)
    h, w = labels.shape
    b = s.block_size
    block_id = (np.arange(h)[:, None] // b) * ((w + b - 1) // b) + (np.arange(w)[None, :] // b)
    n_blocks = int(block_id.max()) + 1
    n_classes = int(labels.max())
    # per-block class histogram -> dominant class of each block (0 = no labelled pixels)
    hist = np.zeros((n_blocks, n_classes + 1), dtype=np.int64)
    np.add.at(hist, (block_id.ravel(), labels.ravel()), 1)
    hist[:, 0] = 0
    dominant = np.where(hist.sum(1) > 0, hist.argmax(1), 0)

    block_split = np.full(n_blocks, UNUSED, dtype=np.uint8)
    fractions = np.array([s.train, s.val, s.test])
    for c in range(1, n_classes + 1):
        blocks = np.flatnonzero(dominant == c)
        rng.shuffle(blocks)
        # deal blocks so each split gets its share of this class's *pixels*, not of its blocks
        counts = hist[blocks, c]
        target = fractions / fractions.sum() * counts.sum()
        got = np.zeros(3)
        for blk, n in zip(blocks, counts, strict=True):
            k = int(np.argmax((target - got) / target))  # the split furthest below its share
            block_split[blk] = (TRAIN, VAL, TEST)[k]
            got[k] += n
    split = block_split[block_id]
    split[labels == 0] = UNUSED

    # buffer: drop val/test pixels whose patch window reaches a training pixel. Training
    # pixels are the scarce ones, so the buffer is taken from the held-out side.
    near_train = maximum_filter(split == TRAIN, size=s.window, mode="constant")
    split[((split == VAL) | (split == TEST)) & near_train] = UNUSED
    return split


def paper_split(labels: np.ndarray, s: SplitSettings) -> np.ndarray:
    rng = np.random.default_rng(s.seed)
    split = np.full(labels.shape, UNUSED, dtype=np.uint8)
    flat = split.ravel()
    fractions = np.array([s.train, s.val, s.test]) / (s.train + s.val + s.test)
    for c in range(1, int(labels.max()) + 1):
        idx = np.flatnonzero(labels.ravel() == c)
        rng.shuffle(idx)
        n_train = int(round(fractions[0] * idx.size))
        n_val = int(round(fractions[1] * idx.size))
        flat[idx[:n_train]] = TRAIN
        flat[idx[n_train : n_train + n_val]] = VAL
        flat[idx[n_train + n_val :]] = TEST
    return split


SPLITS: dict[str, Callable[[np.ndarray, SplitSettings], np.ndarray]] = {
    "disjoint": disjoint_split,
    "paper": paper_split,
}


def make_split(labels: np.ndarray, class_names: tuple[str, ...], s: SplitSettings, origin: str) -> np.ndarray:
    """Split labelled pixels; raise if a class ends up too small in any split."""
    split = SPLITS[s.protocol](labels, s)
    for c, name in enumerate(class_names, start=1):
        counts = {SPLIT_NAMES[k]: int(((split == k) & (labels == c)).sum()) for k in (TRAIN, VAL, TEST)}
        short = [k for k, n in counts.items() if n < s.min_pixels]
        if short:
            total = int((labels == c).sum())
            raise DataFormatError(
                f"{origin}: class {c} '{name}' ({total} px) too small for the {s.protocol} split: "
                f"{counts['train']}/{counts['val']}/{counts['test']} train/val/test px, "
                f"need >= {s.min_pixels} in each (prepare.split.min_pixels_per_class, "
                f"prepare.split.block_size or the split fractions)"
            )
    return split


def leakage(split: np.ndarray, window: int) -> dict[str, float]:
    """How many test pixels have at least one training pixel inside their patch window."""
    train = (split == TRAIN).astype(np.float64)
    # uniform_filter * area = number of training pixels in each window
    n_in_window = np.rint(uniform_filter(train, size=window, mode="constant") * window * window)
    test = split == TEST
    per_test = n_in_window[test]
    val = split == VAL
    return {
        "window": int(window),
        "test_pixels": int(test.sum()),
        "test_pixels_with_train_in_window": int((per_test > 0).sum()),
        "mean_train_pixels_per_test_window": float(per_test.mean()) if per_test.size else 0.0,
        "val_pixels_with_train_in_window": int((n_in_window[val] > 0).sum()),
    }
