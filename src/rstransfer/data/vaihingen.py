"""ISPRS 2D semantic labelling contest, Vaihingen: tiles, label colours, patches, tf.data.

Source: https://www.isprs.org/education/benchmarks/UrbanSemLab/2d-sem-label-vaihingen.aspx
(Rottensteiner et al., ISPRS Annals I-3, 2012). 33 true-orthophoto tiles at 9 cm, about
2000 x 2500 px each; 16 of them have public ground truth.

Folder layout (the ISPRS archives unpacked; config keys in brackets):

* ``[image_dir]/top_mosaic_09cm_area{N}.tif``: the image tile, IRRG (near infrared, red,
  green), 3 bands, uint8, stored as an RGB TIFF (archive folder ``top/``).
* ``[label_dir]/top_mosaic_09cm_area{N}.tif``: the ground truth, **named like the image**,
  in its own folder, because that is how ISPRS ships it (``gts_for_participants/`` or
  ``ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE/``). RGB colour-coded, see
  ``COLORMAP``; any other colour is an error (the eroded ``*_noBoundary`` variants, whose
  boundaries are black, are not a supported label set).
* ``[dsm_dir]/dsm_09cm_matching_area{N}.tif``: the DSM (or an nDSM saved under that name),
  one float band; read only when ``segmentation.dsm`` is true. It becomes a 4th channel,
  min-max scaled per tile to 0..255 (uint8, about 0.4 m per step for a 100 m range).

Class ids are the positions in ``CLASSES`` (0..5). Patches are cut on a regular grid with
``overlap`` (stride ``round(patch * (1 - overlap))``, plus a last row/column flush with the
tile's edge) and written, with their class-id masks and origins (tile, row, col), to one
chunked, compressed HDF5 file per split. Augmentation (rotations by 90/180/270 degrees and
flips) happens in the tf.data pipeline (``patch_dataset``), never as stored copies.

Nothing here imports TensorFlow at module level (the Snakefile and ``prepare-vaihingen`` stay
light).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import ConfigError, DataFormatError, DatasetNotFoundError
from ..io import atomic_path

CLASSES: tuple[str, ...] = ("impervious", "building", "low_vegetation", "tree", "car", "clutter")
#: ISPRS label colours, in class-id order
COLORMAP: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (0, 0, 255),
    (0, 255, 255),
    (0, 255, 0),
    (255, 255, 0),
    (255, 0, 0),
)
#: the tutorial's split (the ISPRS tiles with public ground truth)
DEFAULT_TILES: dict[str, tuple[int, ...]] = {
    "train": (1, 3, 5, 7, 11, 13, 17, 21, 26, 28, 34, 37),
    "val": (30, 32),
    "test": (15, 23),
}
IMAGE_NAME = "top_mosaic_09cm_area{n}.tif"
LABEL_NAME = "top_mosaic_09cm_area{n}.tif"
DSM_NAME = "dsm_09cm_matching_area{n}.tif"
#: sub-folders of a synthetic (or unpacked) tile set, mirroring the ISPRS archives
SUBDIRS = {"image": "top", "label": "gts", "dsm": "dsm"}
FORMAT = "rstransfer.vaihingen_patches/1"
SPLIT_FILES = {"train": "vaihingen_train.hdf5", "val": "vaihingen_val.hdf5"}
#: ImageNet channel means of Keras' ResNet50 weights ("caffe" mode, BGR order, 0..255 scale)
IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# tiles


@dataclass(frozen=True)
class Tile:
    """One tile in memory.

    Attributes:
        number: the ISPRS area number N.
        image: (H, W, 3) uint8, IRRG.
        mask: (H, W) uint8 class ids 0..5, or None when labels were not read.
        dsm: (H, W) float32 heights, or None.
    """

    number: int
    image: np.ndarray
    mask: np.ndarray | None = None
    dsm: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def channels(self) -> np.ndarray:
        """(H, W, C) uint8 model input before normalisation: IRRG, plus the scaled DSM if read."""
        if self.dsm is None:
            return self.image
        return np.concatenate([self.image, scale_dsm(self.dsm)[..., None]], axis=-1)


def scale_dsm(dsm: np.ndarray) -> np.ndarray:
    """Min-max scale heights to 0..255 per tile (uint8)."""
    lo, hi = float(np.nanmin(dsm)), float(np.nanmax(dsm))
    scaled = (dsm - lo) / (hi - lo) if hi > lo else np.zeros_like(dsm)
    return np.round(np.nan_to_num(scaled) * 255).astype(np.uint8)


@dataclass(frozen=True)
class TileSource:
    """Where the tiles are, and whether the DSM channel is used."""

    image_dir: Path
    label_dir: Path
    dsm_dir: Path | None

    @classmethod
    def from_config(cls, cfg: dict[str, Any], synthetic_root: str | Path | None = None) -> TileSource:
        """Folders from ``segmentation`` (or the synthetic tile set when it is enabled)."""
        seg = cfg["segmentation"]
        if seg["synthetic"]["enabled"]:
            root = Path(synthetic_root) if synthetic_root else synthetic_dir(cfg)
            return cls(root / SUBDIRS["image"], root / SUBDIRS["label"], root / SUBDIRS["dsm"] if seg["dsm"] else None)
        for key in ("image_dir", "label_dir") + (("dsm_dir",) if seg["dsm"] else ()):
            if not seg[key]:
                raise ConfigError(
                    f"segmentation.{key}: empty; give the folder of the ISPRS tiles "
                    "(or set segmentation.synthetic.enabled: true for the demo tile set)"
                )
        base = Path(cfg.get("data_root", "."))
        return cls(base / seg["image_dir"], base / seg["label_dir"], base / seg["dsm_dir"] if seg["dsm"] else None)

    def paths(self, n: int, labels: bool = True) -> dict[str, Path]:
        out = {"image": self.image_dir / IMAGE_NAME.format(n=n)}
        if labels:
            out["label"] = self.label_dir / LABEL_NAME.format(n=n)
        if self.dsm_dir is not None:
            out["dsm"] = self.dsm_dir / DSM_NAME.format(n=n)
        return out

    def check_exists(self, tiles: Iterable[int], split: str, labels: bool = True) -> None:
        """DatasetNotFoundError for the first missing file (before anything is read or written)."""
        keys = {"image": "image_dir", "label": "label_dir", "dsm": "dsm_dir"}
        for n in tiles:
            for kind, path in self.paths(n, labels).items():
                if not path.is_file():
                    raise DatasetNotFoundError(
                        f"tile {n} (segmentation.tiles.{split}): {kind} file {path} not found; "
                        f"expected {path.name} in segmentation.{keys[kind]} = {path.parent}"
                    )


def synthetic_dir(cfg: dict[str, Any]) -> Path:
    from ..paths import Layout

    return Path(Layout.from_config(cfg).seg_synthetic_dir())


def read_tiff(path: Path, what: str) -> np.ndarray:
    """The first image of a TIFF as (H, W) or (H, W, bands); DataFormatError if unreadable."""
    import tifffile

    if not Path(path).is_file():
        raise DatasetNotFoundError(f"{path}: {what} file not found")
    log = logging.getLogger("tifffile")  # it logs each bad tag; the exception below says it once
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        arr = tifffile.imread(path, key=0)
    except Exception as exc:  # tifffile raises many types for a damaged file; report one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFormatError(f"{path}: not a readable TIFF {what} ({first})") from exc
    finally:
        log.setLevel(level)
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar (separate) configuration
    return arr


def read_image(path: Path) -> np.ndarray:
    arr = read_tiff(path, "image")
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise DataFormatError(
            f"{path}: expected an IRRG image tile (H, W, 3) uint8, got shape {arr.shape} {arr.dtype}"
        )
    return arr


def decode_labels(rgb: np.ndarray, path: Path | str = "<labels>") -> np.ndarray:
    """RGB colour-coded ground truth -> (H, W) uint8 class ids; unknown colours are an error."""
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise DataFormatError(f"{path}: expected an RGB label tile (H, W, 3) uint8, got shape {rgb.shape} {rgb.dtype}")
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    ids = np.full(codes.shape, 255, dtype=np.uint8)
    for k, (r, g, b) in enumerate(COLORMAP):
        ids[codes == ((r << 16) | (g << 8) | b)] = k
    unknown = ids == 255
    if unknown.any():
        values, counts = np.unique(codes[unknown], return_counts=True)
        top = int(values[np.argmax(counts)])
        colour = ((top >> 16) & 255, (top >> 8) & 255, top & 255)
        known = ", ".join(f"{name} {c}" for name, c in zip(CLASSES, COLORMAP, strict=True))
        raise DataFormatError(
            f"{path}: unknown label colour {colour} in {int(counts.max())} pixels "
            f"({len(values)} unknown colour(s), {int(unknown.sum())} pixels in all); known colours: {known}"
        )
    return ids


def encode_labels(ids: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 ISPRS colours."""
    return np.asarray(COLORMAP, dtype=np.uint8)[ids]


def read_tile(source: TileSource, n: int, labels: bool = True) -> Tile:
    """Read and check one tile (image, optional labels and DSM)."""
    paths = source.paths(n, labels)
    image = read_image(paths["image"])
    h, w = image.shape[:2]
    mask = None
    if labels:
        rgb = read_tiff(paths["label"], "label")
        if rgb.shape[:2] != (h, w):
            raise DataFormatError(
                f"{paths['label']}: label tile is {rgb.shape[0]}x{rgb.shape[1]} px but image "
                f"{paths['image']} is {h}x{w} px"
            )
        mask = decode_labels(rgb, paths["label"])
    dsm = None
    if "dsm" in paths:
        raw = read_tiff(paths["dsm"], "DSM")
        if raw.ndim == 3 and raw.shape[-1] == 1:
            raw = raw[..., 0]
        if raw.shape != (h, w):
            raise DataFormatError(
                f"{paths['dsm']}: DSM is {'x'.join(map(str, raw.shape))} but image {paths['image']} is {h}x{w} px"
            )
        dsm = raw.astype(np.float32)
    return Tile(n, image, mask, dsm)


# ---------------------------------------------------------------------------------------------
# patch grid


def stride_for(patch: int, overlap: float) -> int:
    return max(1, int(round(patch * (1.0 - overlap))))


def axis_origins(length: int, patch: int, overlap: float) -> list[int]:
    """Window starts along one axis: every ``stride`` px, plus one flush with the far edge."""
    if patch > length:
        raise ValueError(f"patch {patch} > length {length}")
    starts = list(range(0, length - patch + 1, stride_for(patch, overlap)))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def grid_origins(shape: tuple[int, int], patch: int, overlap: float, where: str = "tile") -> np.ndarray:
    """(N, 2) int32 top-left corners covering the whole tile."""
    h, w = shape
    if patch > h or patch > w:
        raise ConfigError(f"segmentation.patch_size: {patch} px patches do not fit {where} ({h}x{w} px)")
    rows, cols = axis_origins(h, patch, overlap), axis_origins(w, patch, overlap)
    return np.array([(r, c) for r in rows for c in cols], dtype=np.int32)


def cut_patches(array: np.ndarray, origins: np.ndarray, patch: int) -> np.ndarray:
    """(N, P, P, ...) contiguous copies of the windows of ``array`` at ``origins``.

    Plain slices stacked: as fast as a strided-view gather (both are memory copies; see
    benchmarks/seg_patches.py) and already C-contiguous for the HDF5 write.
    """
    return np.stack([array[r : r + patch, c : c + patch] for r, c in origins])


# ---------------------------------------------------------------------------------------------
# prepare: tiles -> patches HDF5


def check_tiles(cfg: dict[str, Any]) -> dict[str, list[int]]:
    """The configured split; tile numbers may appear in one split only."""
    tiles = {k: list(v) for k, v in cfg["segmentation"]["tiles"].items()}
    seen: dict[int, str] = {}
    for split, numbers in tiles.items():
        for n in numbers:
            if n in seen:
                raise ConfigError(f"segmentation.tiles: tile {n} is in both {seen[n]} and {split}")
            seen[n] = split
    return tiles


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
        raise DataFormatError(f"{path}: patch file missing; run `rstransfer prepare-vaihingen` first")
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
