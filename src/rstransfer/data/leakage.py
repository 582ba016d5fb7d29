"""Leakage figures of a split, computed from the window footprints alone.

This module does not know how a split was built (``splits.py`` and its buffer): it only asks
which scene pixels the patch windows cover. The window of a centre (r, c) covers the pixels
within Chebyshev distance ``window // 2`` (clipped to the scene: the zero padding outside is not
data). From the split mask it counts, with a plain window convolution:

* ``shared_pixels_train_test``: scene pixels covered by a training window *and* a test window
  (0 = the model never saw, as input, any pixel a test window shows it);
* ``test_pixels_with_train_in_window``: test windows that contain a training centre (a labelled
  training pixel, i.e. a training *target*);
* ``test_windows_sharing_pixels_with_train``: test windows that overlap some training window;
* the same for validation (against train, and between val and test), and the mean number of
  training centres per test window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import correlate

from .splits import TEST, TRAIN, VAL  # the split codes only: nothing of how a split is built


def window_counts(centres: np.ndarray, window: int) -> np.ndarray:
    """For every pixel, how many of ``centres`` have a window covering it (equivalently: how many
    centres lie in the window around the pixel; the square window is symmetric)."""
    kernel = np.ones((window, window), dtype=np.int64)
    return correlate(centres.astype(np.int64), kernel, mode="constant", cval=0)


def footprint(centres: np.ndarray, window: int) -> np.ndarray:
    """The scene pixels covered by at least one window centred on ``centres``."""
    return window_counts(centres, window) > 0


def leakage(split: np.ndarray, window: int) -> dict[str, Any]:
    """The leakage figures of ``split`` (codes 1 train, 2 val, 3 test) for ``window`` x ``window`` patches."""
    train, val, test = (split == TRAIN), (split == VAL), (split == TEST)
    train_in = window_counts(train, window)  # training centres inside the window around each pixel
    fp = {name: footprint(mask, window) for name, mask in (("train", train), ("val", val), ("test", test))}
    # windows of half-width h overlap iff their centres are within 2h: the "reach" of a footprint
    train_reach = footprint(fp["train"], window)
    per_test = train_in[test]
    return {
        "window": int(window),
        "train_pixels": int(train.sum()),
        "val_pixels": int(val.sum()),
        "test_pixels": int(test.sum()),
        "test_pixels_with_train_in_window": int((per_test > 0).sum()),
        "mean_train_pixels_per_test_window": float(per_test.mean()) if per_test.size else 0.0,
        "val_pixels_with_train_in_window": int((train_in[val] > 0).sum()),
        "test_windows_sharing_pixels_with_train": int((train_reach & test).sum()),
        "shared_pixels_train_test": int((fp["train"] & fp["test"]).sum()),
        "shared_pixels_train_val": int((fp["train"] & fp["val"]).sum()),
        "shared_pixels_val_test": int((fp["val"] & fp["test"]).sum()),
    }


def buffer_violations(leak: dict[str, Any], buffer: str) -> dict[str, int]:
    """The figures that must be 0 under ``buffer`` (``hsi.prepare.split.buffer``) and are not."""
    must_be_zero = {
        "window": ("shared_pixels_train_test", "shared_pixels_train_val", "shared_pixels_val_test"),
        "centre": ("test_pixels_with_train_in_window", "val_pixels_with_train_in_window"),
        "none": (),
    }[buffer]
    return {k: leak[k] for k in must_be_zero if leak[k] != 0}
