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

Nothing here imports TensorFlow at module level (the Snakefile and the prepare step stay
light).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError

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
    """Where the prepare step writes the synthetic tile set (inside its run folder)."""
    from rstransfer.core.paths import Layout

    return Path(Layout.from_config(cfg).run_dir("segmentation", "prepare", file="tiles"))


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


