"""Multispectral scenes for the U-Net study: readers, class-id remapping, the spatial split,
band scaling and seeded random patch extraction.

A scene is several images (frames) of one place with one label map: ``images`` (F, H, W, B)
float32 and ``labels`` (H, W) holding the dataset's own class ids. ``prepare`` remaps the ids to
0..K-1 with :data:`IGNORE` (-1) for "no label" and unknown pixels, cuts the rows into train /
val / test stripes (spatially disjoint), and standardises every band with the training stripe's
mean and std.

Readers (``DATASETS``):

* ``s2_eopatch``: the real Sentinel-2 L1C EOPatch of ``shared/data/s2_eopatch``:
  ``REFERENCE_SCENES.npy`` (5, 101, 100, 13) TOA reflectance, of which frames 2-4 are clear,
  and ``TestEOPatch/mask_timeless/LULC.npy`` (101, 100, 1) uint16 land-cover ids
  {0, 1, 2, 3, 4, 8}, 0 = no label (eo-learn's LULC legend).
* ``synthetic``: a seeded multispectral scene (smooth class regions, one spectrum per class,
  per-frame gain and noise) that needs no files: the demo and the tests.

Training patches are cut lazily inside ``tf.data``: epoch ``e`` draws its corners from
``(seed, e)`` alone, so a resumed run sees the same patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError

IGNORE = -1
SPLITS = {"train": 1, "val": 2, "test": 3}

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: eo-learn's LULC legend (the EOPatch's vector_timeless/LULC.gpkg, "schrubland" spelled right)
S2_LULC = {
    0: "no label", 1: "cultivated land", 2: "forest", 3: "grassland", 4: "shrubland", 5: "water",
    6: "wetlands", 7: "tundra", 8: "artificial surface", 9: "bareland", 10: "snow and ice",
}
S2_SCENES = "REFERENCE_SCENES.npy"
S2_LABELS = "TestEOPatch/mask_timeless/LULC.npy"


@dataclass(frozen=True)
class Scene:
    """Frames of one place: images (F, H, W, B) float32 and labels (H, W) in the dataset's ids."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    band_names: tuple[str, ...]
    legend: dict[int, str]
    note: str = ""
    source: str = ""  # where the labels come from (named in errors)


# ---------------------------------------------------------------------------------------------
# readers


def resolve(cfg: dict[str, Any], path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(cfg.get("data_root", ".")) / p


def s2_files(cfg: dict[str, Any]) -> dict[str, Path]:
    root = resolve(cfg, cfg["unet"]["data"]["s2_eopatch"]["path"])
    return {"scenes": root / S2_SCENES, "labels": root / S2_LABELS}


def check_files(cfg: dict[str, Any]) -> None:
    """DatasetNotFoundError naming the file, the folder searched and the config key."""
    if cfg["unet"]["data"]["dataset"] != "s2_eopatch":
        return
    files = s2_files(cfg)
    for path in files.values():
        if not path.is_file():
            raise DatasetNotFoundError(
                f"s2_eopatch: {path} not found (expected {S2_SCENES} and {S2_LABELS} under "
                f"{files['scenes'].parent}); set unet.data.s2_eopatch.path"
            )


def read_s2_eopatch(cfg: dict[str, Any]) -> Scene:
    opts = cfg["unet"]["data"]["s2_eopatch"]
    check_files(cfg)
    files = s2_files(cfg)
    scenes = np.load(files["scenes"], mmap_mode="r")
    labels = np.load(files["labels"])
    if scenes.ndim != 4 or scenes.shape[-1] != len(S2_BANDS):
        raise DataFormatError(f"{files['scenes']}: shape {scenes.shape}, expected (frames, rows, cols, 13)")
    if labels.shape != (*scenes.shape[1:3], 1):
        raise DataFormatError(f"{files['labels']}: shape {labels.shape}, expected {(*scenes.shape[1:3], 1)}")
    frames, bands = list(opts["frames"]), list(opts["bands"])
    for key, values, n in (("frames", frames, scenes.shape[0]), ("bands", bands, scenes.shape[-1])):
        bad = [v for v in values if not 0 <= v < n]
        if bad:
            raise ConfigError(f"unet.data.s2_eopatch.{key}: {bad} out of range 0..{n - 1}")
    images = np.asarray(scenes[frames][..., bands], dtype=np.float32)
    if not np.isfinite(images).all():
        raise DataFormatError(f"{files['scenes']}: non-finite values in frames {frames}")
    return Scene(
        "s2_eopatch", images, labels[..., 0].astype(np.int64), tuple(S2_BANDS[b] for b in bands), dict(S2_LULC),
        note=f"real Sentinel-2 L1C TOA reflectance, frames {frames}, bands {[S2_BANDS[b] for b in bands]}",
        source=str(files["labels"]),
    )


def synthetic_scene(height: int, width: int, bands: int, frames: int, classes: int, seed: int) -> Scene:
    """A seeded multispectral scene: class regions from a warped nearest-centre partition,
    one smooth spectrum per class, per-frame gain/offset, spatial texture and noise; class ids
    1..K with 0 ("no label") on a thin margin of the region borders."""
    rng = np.random.default_rng(seed)
    n_centres = classes * 3
    centres = rng.uniform(0, 1, (n_centres, 2)) * (height, width)
    owner = np.arange(n_centres) % classes  # every class owns three regions
    rr, cc = np.mgrid[0:height, 0:width].astype(np.float64)
    warp = 0.06 * (height + width) * np.sin(rr / 11.0 + rng.uniform(0, 6)) * np.cos(cc / 13.0 + rng.uniform(0, 6))
    d = (rr[..., None] + warp[..., None] - centres[:, 0]) ** 2 + (cc[..., None] - centres[:, 1]) ** 2
    order = np.sort(d, axis=-1)
    labels = owner[np.argmin(d, axis=-1)] + 1
    labels[np.sqrt(order[..., 1]) - np.sqrt(order[..., 0]) < 1.0] = 0  # unlabelled borders
    grid = np.linspace(0, 1, bands)
    spectra = np.stack([0.25 + 0.15 * np.sin(2 * np.pi * (grid * rng.uniform(0.5, 2) + rng.uniform(0, 1)))
                        for _ in range(classes)])
    texture = 0.02 * np.sin(rr / 3.0)[..., None] * np.cos(cc / 5.0)[..., None]
    images = []
    for _ in range(frames):
        gain = rng.uniform(0.9, 1.1, bands)
        base = spectra[np.maximum(labels, 1) - 1] * gain + texture
        images.append(base + rng.normal(0, 0.05, base.shape))
    names = tuple(f"band{b + 1}" for b in range(bands))
    legend = {0: "no label", **{k: f"class {k}" for k in range(1, classes + 1)}}
    return Scene("synthetic", np.stack(images).astype(np.float32), labels.astype(np.int64), names, legend,
                 note=f"synthetic {height}x{width} px, {bands} bands, {frames} frames, {classes} classes, seed {seed}",
                 source="synthetic scene")


def read_synthetic(cfg: dict[str, Any]) -> Scene:
    o = cfg["unet"]["data"]["synthetic"]
    return synthetic_scene(o["height"], o["width"], o["bands"], o["frames"], o["classes"], o["seed"])


DATASETS = {"s2_eopatch": read_s2_eopatch, "synthetic": read_synthetic}


def data_files(cfg: dict[str, Any]) -> dict[str, str]:
    """The user files a dataset reads (workflow inputs of prepare); none for synthetic."""
    return {k: str(v) for k, v in s2_files(cfg).items()} if cfg["unet"]["data"]["dataset"] == "s2_eopatch" else {}


def read_scene(cfg: dict[str, Any]) -> Scene:
    return DATASETS[cfg["unet"]["data"]["dataset"]](cfg)


# ---------------------------------------------------------------------------------------------
# prepare: remap, split, scale


def remap_labels(
    labels: np.ndarray, ignore_ids: list[int], class_ids: list[int], source: str = "labels"
) -> tuple[np.ndarray, list[int]]:
    """Dataset ids -> 0..K-1 (the order of ``class_ids``; [] = every id present, ascending),
    :data:`IGNORE` for ``ignore_ids``. An id that is neither kept nor ignored is an error."""
    present = sorted(int(v) for v in np.unique(labels))
    kept = list(class_ids) or [v for v in present if v not in ignore_ids]
    both = sorted(set(kept) & set(ignore_ids))
    if both:
        raise ConfigError(f"unet.data.class_ids: {both} also in unet.data.ignore_ids")
    unknown = [v for v in present if v not in kept and v not in ignore_ids]
    if unknown:
        raise DataFormatError(
            f"{source}: labels hold ids {unknown} that are neither in unet.data.class_ids {kept} nor in "
            f"unet.data.ignore_ids {ignore_ids}"
        )
    if not kept:
        raise DataFormatError(f"{source}: labels hold no class ids besides the ignored {ignore_ids}")
    lut = {v: i for i, v in enumerate(kept)}
    out = np.full(labels.shape, IGNORE, dtype=np.int16)
    for v, i in lut.items():
        out[labels == v] = i
    return out, kept


def split_rows(height: int, width: int, train: float, val: float) -> np.ndarray:
    """Spatially disjoint stripes of rows: train on top, then val, then test (uint8 1/2/3)."""
    if train <= 0 or val <= 0 or train + val >= 1:
        raise ConfigError(f"unet.split: train {train} and val {val} must be > 0 with train + val < 1")
    r1 = int(round(height * train))
    r2 = int(round(height * (train + val)))
    if not 0 < r1 < r2 < height:
        raise ConfigError(f"unet.split: {height} rows give an empty stripe (train {train}, val {val})")
    split = np.full((height, width), SPLITS["test"], dtype=np.uint8)
    split[:r1] = SPLITS["train"]
    split[r1:r2] = SPLITS["val"]
    return split


def stripe(split: np.ndarray, name: str) -> tuple[int, int]:
    rows = np.flatnonzero((split == SPLITS[name]).any(axis=1))
    return int(rows[0]), int(rows[-1]) + 1


@dataclass(frozen=True)
class Prepared:
    """``scene.npz`` of the prepare step: standardised images, remapped labels, split."""

    images: np.ndarray  # (F, H, W, B) float32, standardised
    labels: np.ndarray  # (H, W) int16, 0..K-1 or IGNORE
    split: np.ndarray  # (H, W) uint8, SPLITS
    class_names: list[str]
    class_ids: list[int]
    band_names: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def bands(self) -> int:
        return int(self.images.shape[-1])

    def mask(self, name: str) -> np.ndarray:
        """Labelled pixels of one split (H, W) bool."""
        return (self.split == SPLITS[name]) & (self.labels != IGNORE)


def prepare_scene(cfg: dict[str, Any]) -> tuple[Prepared, dict[str, Any]]:
    sec = cfg["unet"]
    scene = read_scene(cfg)
    labels, kept = remap_labels(scene.labels, sec["data"]["ignore_ids"], sec["data"]["class_ids"], scene.source)
    split = split_rows(*labels.shape, sec["split"]["train"], sec["split"]["val"])
    train_px = scene.images[:, split == SPLITS["train"]]  # (F, N, B)
    mean = train_px.reshape(-1, scene.images.shape[-1]).mean(axis=0)
    std = train_px.reshape(-1, scene.images.shape[-1]).std(axis=0)
    images = ((scene.images - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
    names = [scene.legend.get(v, f"id {v}") for v in kept]
    prepared = Prepared(images, labels, split, names, kept, list(scene.band_names))
    counts = {name: {s: int(((labels == k) & (split == code)).sum()) for s, code in SPLITS.items()}
              for k, name in enumerate(names)}
    summary = {
        "dataset": scene.name, "note": scene.note, "frames": int(images.shape[0]), "height": int(images.shape[1]),
        "width": int(images.shape[2]), "bands": list(scene.band_names), "class_ids": kept, "class_names": names,
        "ignore_ids": sec["data"]["ignore_ids"], "pixels_per_class": counts,
        "stripes": {s: stripe(split, s) for s in SPLITS}, "band_mean": mean.tolist(), "band_std": std.tolist(),
    }
    return prepared, summary


def save_prepared(path: Path, p: Prepared) -> None:
    from rstransfer.core.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, images=p.images, labels=p.labels, split=p.split, class_names=np.array(p.class_names),
                            class_ids=np.array(p.class_ids), band_names=np.array(p.band_names))


def load_prepared(path: Path) -> Prepared:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: missing; run `rstransfer prepare --study unet` first")
    with np.load(path) as z:
        return Prepared(z["images"], z["labels"], z["split"], [str(s) for s in z["class_names"]],
                        [int(v) for v in z["class_ids"]], [str(s) for s in z["band_names"]])


# ---------------------------------------------------------------------------------------------
# tf.data


def check_patch(p: Prepared, size: int, depth: int) -> None:
    r0, r1 = stripe(p.split, "train")
    if size % 2**depth:
        raise ConfigError(f"unet.patches.size: {size} is not divisible by 2**unet.model.depth = {2**depth}")
    if size > r1 - r0 or size > p.images.shape[2]:
        raise ConfigError(
            f"unet.patches.size: {size} px does not fit the training stripe ({r1 - r0} x {p.images.shape[2]} px)"
        )


def patch_dataset(p: Prepared, size: int, per_image: int, batch: int, seed: int, shard: tuple[int, int],
                  first_epoch: int = 0) -> tuple[Any, int]:
    """``((patch, target, weight) batches, steps per epoch)``: ``per_image`` random patches per
    frame inside the training stripe, corners drawn from (seed, epoch); ``shard = (size, rank)``
    keeps every size-th patch of the epoch. Weight 0 = unlabelled pixel."""
    import tensorflow as tf

    n_frames, _, width, _ = p.images.shape
    r0, r1 = stripe(p.split, "train")
    train = p.mask("train")
    images = tf.constant(p.images)
    target = tf.constant(np.where(train, p.labels, 0).astype(np.int32))
    weight = tf.constant(train.astype(np.float32))
    ranks, rank = shard
    total = per_image * n_frames
    steps = max(1, math.ceil(total / (batch * ranks)))
    frame_of = tf.constant(np.repeat(np.arange(n_frames), per_image).astype(np.int64))

    def one_epoch(epoch: Any) -> Any:
        u = tf.random.stateless_uniform([total, 2], seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        rows = r0 + tf.cast(u[:, 0] * (r1 - r0 - size + 1), tf.int64)
        cols = tf.cast(u[:, 1] * (width - size + 1), tf.int64)
        corners = tf.stack([frame_of, rows, cols], axis=1)[rank::ranks]
        order = tf.range(steps * batch) % tf.shape(corners, out_type=tf.int32)[0]  # equal steps on every rank
        return tf.data.Dataset.from_tensor_slices(tf.gather(corners, order))

    bands = p.bands

    def cut(c: Any) -> Any:
        f, r, q = c[0], c[1], c[2]
        return (tf.slice(images, tf.stack([f, r, q, 0]), [1, size, size, bands])[0],
                tf.slice(target, tf.stack([r, q]), [size, size]), tf.slice(weight, tf.stack([r, q]), [size, size]))

    ds = tf.data.Dataset.range(first_epoch, 2**31).flat_map(one_epoch).map(cut).batch(batch)
    return ds.prefetch(1), steps


def pad_to(x: np.ndarray, multiple: int) -> np.ndarray:
    """Reflect-pad rows and columns (axes -3, -2) up to a multiple of ``multiple``."""
    h, w = x.shape[-3], x.shape[-2]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = [(0, 0)] * (x.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
    return np.pad(x, pad, mode="reflect" if min(h, w) > max(ph, pw) else "edge")


def frame_dataset(p: Prepared, split: str, multiple: int, shard: tuple[int, int], repeat: bool) -> tuple[Any, int]:
    """Whole frames (padded to ``multiple``) with targets and weights on one split's labelled
    pixels, one frame per batch; ``shard`` gives every rank the same number of batches."""
    import tensorflow as tf

    ranks, rank = shard
    n = p.images.shape[0]
    steps = math.ceil(n / ranks)
    frames = [(rank + i * ranks) % n for i in range(steps)]
    images = pad_to(p.images[frames], multiple)
    mask = p.mask(split)
    h, w = images.shape[1:3]
    target = np.zeros((h, w), np.int32)
    weight = np.zeros((h, w), np.float32)
    target[: mask.shape[0], : mask.shape[1]] = np.where(mask, p.labels, 0)
    weight[: mask.shape[0], : mask.shape[1]] = mask
    ds = tf.data.Dataset.from_tensor_slices(
        (images, np.repeat(target[None], len(frames), 0), np.repeat(weight[None], len(frames), 0))
    ).batch(1)
    return (ds.repeat() if repeat else ds), steps


def predict_frames(model: Any, p: Prepared, multiple: int) -> np.ndarray:
    """Class map (F, H, W) int of every frame (whole-frame inference, padding cropped)."""
    h, w = p.images.shape[1:3]
    out = []
    for frame in p.images:
        probs = model.predict(pad_to(frame[None], multiple), verbose=0)
        out.append(np.argmax(probs[0, :h, :w], axis=-1))
    return np.stack(out).astype(np.int64)
