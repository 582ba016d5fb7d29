"""Vaihingen patches: tiles -> one chunked HDF5 per split, and the augmented tf.data stream."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rstransfer.core.errors import DataFormatError
from rstransfer.core.io import atomic_path

from .data import (
    CLASSES,
    COLORMAP,
    FORMAT,
    IMAGENET_BGR_MEAN,
    TileSource,
    cut_patches,
    grid_origins,
    read_tile,
    stride_for,
)
from .settings import check_tiles

# ---------------------------------------------------------------------------------------------
# prepare: tiles -> patches HDF5


def _patch_datasets(f: h5py.File, patch: int, channels: int) -> dict[str, h5py.Dataset]:
    opts = {"compression": "gzip", "compression_opts": 4}
    return {
        "images": f.create_dataset(
            "images", (0, patch, patch, channels), np.uint8, maxshape=(None, patch, patch, channels),
            chunks=(1, patch, patch, channels), **opts,
        ),
        "masks": f.create_dataset(
            "masks", (0, patch, patch), np.uint8, maxshape=(None, patch, patch), chunks=(1, patch, patch), **opts
        ),
        "origins": f.create_dataset("origins", (0, 3), np.int32, maxshape=(None, 3), chunks=(1024, 3)),
    }


def _append(ds: dict[str, h5py.Dataset], images: np.ndarray, masks: np.ndarray, origins: np.ndarray) -> None:
    n0 = ds["images"].shape[0]
    n1 = n0 + len(images)
    for key, value in (("images", images), ("masks", masks), ("origins", origins)):
        ds[key].resize(n1, axis=0)
        ds[key][n0:n1] = value


def prepare_vaihingen(
    cfg: dict[str, Any], outs: dict[str, Path], source: TileSource | None = None
) -> dict[str, Any]:
    """Cut the train and val tiles into patches; write one HDF5 per split, atomically.

    All tile files are checked to exist before anything is read; each split's file appears
    by rename only after every tile was read and checked, so bad input leaves no output.
    """
    seg = cfg["segmentation"]
    tiles = check_tiles(cfg)
    source = source or TileSource.from_config(cfg)
    for split in outs:
        source.check_exists(tiles[split], split)
    patch, overlap = seg["patch_size"], seg["overlap"]
    channels = 4 if source.dsm_dir is not None else 3
    summary: dict[str, Any] = {
        "patch_size": patch,
        "overlap": overlap,
        "stride": stride_for(patch, overlap),
        "channels": channels,
        "class_names": list(CLASSES),
        "splits": {},
    }
    attrs = {
        "format": FORMAT,
        "config": json.dumps({"segmentation": seg, "data_root": cfg.get("data_root", ".")}, sort_keys=True),
        "class_names": json.dumps(list(CLASSES)),
        "colormap": json.dumps([list(c) for c in COLORMAP]),
        "channels": json.dumps(["IR", "R", "G"] + (["DSM"] if channels == 4 else [])),
        "patch_size": patch,
        "overlap": overlap,
    }
    with _atomic_many([outs[s] for s in outs]) as tmps:
        for (split, out), tmp in zip(outs.items(), tmps, strict=True):
            counts = np.zeros(len(CLASSES), dtype=np.int64)
            per_tile = {}
            with h5py.File(tmp, "w") as f:
                ds = _patch_datasets(f, patch, channels)
                for n in tiles[split]:
                    tile = read_tile(source, n)
                    origins = grid_origins(tile.shape, patch, overlap, where=f"tile {n} ({source.paths(n)['image']})")
                    masks = cut_patches(tile.mask, origins, patch)
                    images = cut_patches(tile.channels(), origins, patch)
                    tagged = np.column_stack([np.full(len(origins), n, np.int32), origins])
                    _append(ds, images, masks, tagged)
                    counts += np.bincount(tile.mask.ravel(), minlength=len(CLASSES))
                    per_tile[str(n)] = {"shape": list(tile.shape), "patches": int(len(origins))}
                info = {
                    "split": split,
                    "tiles": tiles[split],
                    "patches": int(ds["images"].shape[0]),
                    "per_tile": per_tile,
                    "tile_pixels_per_class": dict(zip(CLASSES, counts.tolist(), strict=True)),
                    "file": str(out),
                }
                for key, value in {**attrs, "split": split, "summary": json.dumps(info)}.items():
                    f.attrs[key] = value
            summary["splits"][split] = info
    return summary


def _atomic_many(paths: list[Path]) -> Any:
    """``atomic_path`` for several files: on success all appear (by rename), on error none
    (ExitStack runs every cleanup even when an earlier one re-raises)."""

    @contextlib.contextmanager
    def many() -> Any:
        with contextlib.ExitStack() as stack:
            yield [stack.enter_context(atomic_path(p)) for p in paths]

    return many()


# ---------------------------------------------------------------------------------------------
# reading patches back, tf.data


@dataclass(frozen=True)
class PatchSet:
    """One split's patches in memory (a rank's shard of them)."""

    images: np.ndarray  # (N, P, P, C) uint8
    masks: np.ndarray  # (N, P, P) uint8
    origins: np.ndarray  # (N, 3) int32: tile, row, col
    attrs: dict[str, Any]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(json.loads(self.attrs["class_names"]))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def load_patches(path: str | Path, shard: tuple[int, int] = (1, 0)) -> PatchSet:
    """Read a split file; ``shard=(size, rank)`` keeps every size-th patch from ``rank``."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: patch file missing; run `rstransfer prepare --study segmentation` first")
    size, rank = shard
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise DataFormatError(f"{path}: not an rstransfer Vaihingen patch file (format {f.attrs.get('format')!r})")
            return PatchSet(
                images=f["images"][rank::size],
                masks=f["masks"][rank::size],
                origins=f["origins"][rank::size],
                attrs={k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()},
            )
    except (OSError, KeyError) as exc:
        raise DataFormatError(f"{path}: not a readable patch file ({str(exc).splitlines()[0]})") from exc


def normalize(x: np.ndarray) -> np.ndarray:
    """uint8 (..., C) -> float32 model input, the same for training and tile inference.

    IRRG is fed as Keras' ImageNet ResNet50 expects an RGB image (IR in the red slot):
    reversed to BGR and centred by the ImageNet means ("caffe" mode). A DSM channel is
    centred at 127.5.
    """
    x = np.asarray(x, dtype=np.float32)
    out = np.empty_like(x)
    out[..., :3] = x[..., 2::-1] - IMAGENET_BGR_MEAN
    out[..., 3:] = x[..., 3:] - 127.5
    return out


def dihedral(x: Any, y: Any, seed: Any) -> tuple[Any, Any]:
    """One random element of the dihedral group per patch of a batch (rotations by 0/90/180/270
    degrees, each with or without a flip), the same for image and mask.

    Vectorised: an optional transpose followed by optional flips of the two spatial axes
    generates all eight; three random bits per patch come from the stateless ``seed``.
    """
    import tensorflow as tf

    n = tf.shape(x)[0]
    bits = tf.random.stateless_uniform([n, 3], seed=seed) < 0.5

    def pick(bit: Any, a: Any, b: Any) -> Any:
        shape = tf.concat([[n], tf.ones([tf.rank(a) - 1], tf.int32)], axis=0)
        return tf.where(tf.reshape(bit, shape), a, b)

    for j, op in enumerate(
        (
            lambda t: tf.transpose(t, tf.concat([[0, 2, 1], tf.range(3, tf.rank(t))], axis=0)),
            lambda t: tf.reverse(t, [1]),
            lambda t: tf.reverse(t, [2]),
        )
    ):
        x, y = pick(bits[:, j], op(x), x), pick(bits[:, j], op(y), y)
    return x, y


def patch_dataset(
    patches: PatchSet,
    batch_size: int,
    *,
    augment: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    steps_per_epoch: int | None = None,
    first_epoch: int = 0,
) -> Any:
    """tf.data of ``(x[B, P, P, C] float32, y[B, P, P] int32)``.

    A batch of indices is fetched from the in-memory uint8 arrays and normalised in one numpy
    call; augmentation (``dihedral``) runs in the graph, seeded statelessly by (seed, the
    batch's running element counter). With ``steps_per_epoch`` (training) the stream is
    epoch-structured like ``data.patches.patch_dataset``: epoch ``e`` is a permutation drawn
    from (seed, e) alone and holds exactly ``steps_per_epoch`` batches, so a run resumed at
    ``first_epoch`` sees the same batches, augmented the same way.
    """
    import tensorflow as tf

    n = len(patches)
    p, _, c = patches.input_shape

    def fetch(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return normalize(patches.images[i]), patches.masks[i].astype(np.int32)

    if steps_per_epoch is not None:
        per_epoch = steps_per_epoch * batch_size

        def one_epoch(epoch: Any) -> Any:
            order = tf.range(n, dtype=tf.int64)
            if shuffle:
                key = tf.stack([tf.constant(seed, tf.int64), epoch])
                order = tf.cast(tf.argsort(tf.random.stateless_uniform([n], seed=key)), tf.int64)
            # cycle within the epoch so every epoch (and every rank) has the same step count
            order = tf.gather(order, tf.range(per_epoch, dtype=tf.int64) % n)
            counter = epoch * per_epoch + tf.range(per_epoch, dtype=tf.int64)
            return tf.data.Dataset.from_tensor_slices((counter, order))

        ds = tf.data.Dataset.range(first_epoch, 2**31).flat_map(one_epoch)
    else:
        ds = tf.data.Dataset.range(n)
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.enumerate()  # (running counter, index)

    def load(k: Any, i: Any) -> tuple[Any, Any]:
        x, y = tf.numpy_function(fetch, [i], [tf.float32, tf.int32], stateful=False)
        x = tf.ensure_shape(x, (None, p, p, c))
        y = tf.ensure_shape(y, (None, p, p))
        if augment:
            x, y = dihedral(x, y, tf.stack([tf.constant(seed, tf.int64), k[0]]))
        return x, y

    return ds.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


