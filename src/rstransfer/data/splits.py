"""Train/val/test splits of labelled pixels, as data: one function per protocol in ``SPLITS``.

``disjoint`` (default): the scene is tiled into square blocks, and each block is dealt to train,
val or test so that every class gets close to the configured share of its pixels in each split.
The dealing keeps a *buffer* between splits (``hsi.prepare.split.buffer``): the centres of any two
pixels in different splits are at least ``buffer_distance`` apart (Chebyshev distance):

* ``window`` (default): distance >= window, so no input pixel is shared: a training window, a
  validation window and a test window never overlap (and no window holds another split's centre);
* ``centre``: distance >= window // 2 + 1, so no window holds a centre of another split, but
  windows of different splits may still share up to half their area;
* ``none``: blocks only; windows of neighbouring blocks overlap freely.

The buffer is not cut out afterwards: a block may only take the pixels that keep the distance
to what the other splits already hold, and a local search then moves blocks between splits,
trading buffer for coverage (score: every class >= ``min_pixels`` in each split first, then
each class's share). A class the buffer cannot keep in every split is named by ``make_split``
(or, with ``min_pixels_per_class: 0``, listed in ``split_summary``).

``paper``: random stratified per-pixel split as in HybridSN (Roy et al. 2020), kept for
comparison. Neighbouring windows overlap, so its leakage figures are large. The buffer does not
apply to it.

The leakage figures themselves are computed independently of this module, from the window
footprints (``rstransfer.data.leakage``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rstransfer.core.errors import DataFormatError

UNUSED, TRAIN, VAL, TEST = 0, 1, 2, 3
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}
BUFFERS = ("window", "centre", "none")

FLOOR_WEIGHT = 10.0  # a class reaching its floor in a split outweighs any share of another
FLOOR = 5  # the dealing aims at >= max(min_pixels, FLOOR) px per class and split (so 0 and 5 split alike)
MAX_PASSES = 12  # local-search passes over all blocks (it stops earlier once nothing improves)
RESTARTS = 4  # independent dealings per seed; the best-scoring one is kept


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
    buffer: str = "window"


def buffer_distance(buffer: str, window: int) -> int:
    """Smallest Chebyshev distance allowed between the centres of two pixels in different splits."""
    if buffer == "window":
        return window  # windows of half-width window // 2 are then disjoint
    if buffer == "centre":
        return window // 2 + 1  # no window reaches another split's centre
    if buffer == "none":
        return 1  # any two distinct pixels
    raise ValueError(f"hsi.prepare.split.buffer: {buffer!r} is not one of {', '.join(BUFFERS)}")


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of ``a`` over the (2r+1) x (2r+1) box around each element (zeros outside)."""
    n = 2 * r + 1
    h, w = a.shape
    c = np.pad(a, r + 1).cumsum(0).cumsum(1)
    return c[n : n + h, n : n + w] - c[:h, n : n + w] - c[n : n + h, :w] + c[:h, :w]


class _Dealer:
    """Blocks dealt to splits under the buffer; ``reach[k]`` counts split-k pixels within r."""

    def __init__(self, labels: np.ndarray, s: SplitSettings) -> None:
        self.labels = labels
        self.h, self.w = labels.shape
        self.r = buffer_distance(s.buffer, s.window) - 1
        self.n_classes = int(labels.max())
        b = s.block_size
        self.blocks = [
            (r0, min(r0 + b, self.h), c0, min(c0 + b, self.w))
            for r0 in range(0, self.h, b)
            for c0 in range(0, self.w, b)
            if labels[r0 : r0 + b, c0 : c0 + b].any()
        ]
        per_class = np.bincount(labels.ravel(), minlength=self.n_classes + 1)[1:].astype(np.float64)
        fractions = np.array([s.train, s.val, s.test]) / (s.train + s.val + s.test)
        self.target = np.maximum(per_class[:, None] * fractions[None, :], 1e-9)  # (C, 3)
        self.weight = fractions[None, :] * (per_class > 0)[:, None]  # each class counts as much in total
        self.floor = float(max(s.min_pixels, FLOOR))
        self.got = np.zeros((self.n_classes, 3))
        self.split = np.zeros(labels.shape, dtype=np.uint8)
        self.reach = np.zeros((3, self.h, self.w), dtype=np.int32)
        self.dealt = np.zeros(len(self.blocks), dtype=np.uint8)

    def score(self, got: np.ndarray) -> float:
        floor = np.minimum(got, self.floor).sum() / self.floor
        # concave in each (class, split): a pixel is worth exp(-got/target) / class size, so the
        # splits fill in proportion to their shares and a rare class's pixels count for more
        share = (self.weight * (1.0 - np.exp(-got / self.target))).sum()
        return float(FLOOR_WEIGHT * floor + share)

    def _counts(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(values, minlength=self.n_classes + 1)[1:]

    def _move(self, i: int, code: int, mask: np.ndarray, sign: int) -> None:
        """Add (sign +1) or remove (-1) the ``mask`` pixels of block ``i`` as split ``code``."""
        r0, r1, c0, c1 = self.blocks[i]
        self.split[r0:r1, c0:c1][mask] = code if sign > 0 else UNUSED
        self.got[:, code - 1] += sign * self._counts(self.labels[r0:r1, c0:c1][mask])
        if self.r > 0:
            a0, a1, b0, b1 = max(r0 - self.r, 0), min(r1 + self.r, self.h), max(c0 - self.r, 0), min(c1 + self.r, self.w)
            local = np.zeros((a1 - a0, b1 - b0), dtype=np.int32)
            local[r0 - a0 : r1 - a0, c0 - b0 : c1 - b0] = mask
            self.reach[code - 1, a0:a1, b0:b1] += sign * _box_sum(local, self.r)

    def visit(self, i: int) -> None:
        """Re-deal block ``i``: keep it where it is unless another split (or none) scores higher."""
        r0, r1, c0, c1 = self.blocks[i]
        lab = self.labels[r0:r1, c0:c1]
        current = int(self.dealt[i])
        if current:
            self._move(i, current, self.split[r0:r1, c0:c1] == current, -1)
        options: list[tuple[float, int, np.ndarray | None]] = [(self.score(self.got), UNUSED, None)]
        for code in (TRAIN, VAL, TEST):
            others = self.reach[[k for k in range(3) if k != code - 1], r0:r1, c0:c1].sum(axis=0)
            free = (lab > 0) & (others == 0)
            got = self.got.copy()
            got[:, code - 1] += self._counts(lab[free])
            options.append((self.score(got), code, free))
        # the current choice wins ties, so the search only moves on a strict improvement
        best = max(options, key=lambda o: (round(o[0], 9), o[1] == current))
        self.dealt[i] = best[1]
        if best[1]:
            self._move(i, best[1], best[2], +1)

    def run(self, rng: np.random.Generator) -> None:
        for _ in range(MAX_PASSES + 1):  # the first pass deals every block, later passes improve
            before = self.score(self.got)
            for i in rng.permutation(len(self.blocks)):
                self.visit(int(i))
            if self.dealt.any() and self.score(self.got) <= before + 1e-9:
                break


def disjoint_split(labels: np.ndarray, s: SplitSettings) -> np.ndarray:
    best: _Dealer | None = None
    for rng in np.random.default_rng(s.seed).spawn(RESTARTS):
        dealer = _Dealer(labels, s)
        dealer.run(rng)
        if best is None or dealer.score(dealer.got) > best.score(best.got):
            best = dealer
    assert best is not None
    return best.split


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


def class_counts(labels: np.ndarray, split: np.ndarray, n_classes: int) -> dict[str, list[int]]:
    """Pixels per class (1..C) in each split."""
    return {
        SPLIT_NAMES[k]: [int(((split == k) & (labels == c)).sum()) for c in range(1, n_classes + 1)]
        for k in (TRAIN, VAL, TEST)
    }


def make_split(labels: np.ndarray, class_names: tuple[str, ...], s: SplitSettings, origin: str) -> np.ndarray:
    """Split labelled pixels; raise if a class ends up too small in any split (min_pixels > 0)."""
    split = SPLITS[s.protocol](labels, s)
    counts = class_counts(labels, split, len(class_names))
    for c, name in enumerate(class_names, start=1):
        got = {k: v[c - 1] for k, v in counts.items()}
        if min(got.values()) < s.min_pixels:
            total = int((labels == c).sum())
            raise DataFormatError(
                f"{origin}: class {c} '{name}' ({total} px) too small for the {s.protocol} split: "
                f"{got['train']}/{got['val']}/{got['test']} train/val/test px, "
                f"need >= {s.min_pixels} in each (hsi.prepare.split.min_pixels_per_class, "
                f"hsi.prepare.split.block_size, hsi.prepare.split.buffer or the split fractions; "
                f"min_pixels_per_class 0 keeps going and names the class in the report)"
            )
    return split


def split_summary(labels: np.ndarray, split: np.ndarray, class_names: tuple[str, ...], s: SplitSettings) -> dict:
    """What the split kept: labelled pixels per split, how many the buffer dropped, and the
    classes missing from a split (by name)."""
    labelled = int((labels > 0).sum())
    kept = int((split != UNUSED).sum())
    counts = class_counts(labels, split, len(class_names))
    removed = [
        {"class": c, "name": name, "missing_from": [k for k in counts if counts[k][c - 1] == 0]}
        for c, name in enumerate(class_names, start=1)
        if (labels == c).any() and any(counts[k][c - 1] == 0 for k in counts)
    ]
    dropped = [int(((labels == c) & (split == UNUSED)).sum()) for c in range(1, len(class_names) + 1)]
    return {
        "protocol": s.protocol,
        "buffer": s.buffer if s.protocol == "disjoint" else "n/a (per-pixel split)",
        "min_distance": buffer_distance(s.buffer, s.window) if s.protocol == "disjoint" else 1,
        "labelled_pixels": labelled,
        "kept_pixels": kept,
        "dropped_pixels": labelled - kept,
        "dropped_fraction": (labelled - kept) / labelled if labelled else 0.0,
        "dropped_per_class": dropped,
        "split_pixels": {SPLIT_NAMES[k]: int((split == k).sum()) for k in (TRAIN, VAL, TEST)},
        "classes_removed": removed,
    }
