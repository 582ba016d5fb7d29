"""Feature extractors (a registry) and the feature cache: one HDF5 per (extractor, dataset).

Scene-wise extractors map RGB images (N, S, S, 3) uint8 to vectors:

* ``imagenet``: DenseNet121 + global average pooling with ImageNet weights from a local Keras
  file (``features.imagenet_weights``); never downloaded, a missing file is a one-line error.
* ``byol``: the multi-label study's BYOL encoder: ``encoder.weights.h5`` of its pretrain run,
  rebuilt from the builder kwargs its ``train.json`` records under ``"encoder"``.
* ``random``: the same DenseNet, randomly initialised (``features.backbone.seed``): the floor
  that says how much of a backbone's score is pretraining and how much is architecture.
* ``rgb`` (raw pixels, bilinear-downsampled), ``histogram`` (per-channel colour histograms).

Pixel-wise extractors map labelled hyperspectral pixels of the HSI study's prepared target
scene to vectors: ``spectra`` (the raw spectrum of the pixel, all bands) and ``hybridsn`` (the
penultimate layer, ``features.hybridsn_layer``, of the HSI study's pretrained HybridSN on the
pixel's window of the prepared cube).

The cache (:class:`FeatureCache`) is filled in chunks and records how many rows are done, so an
extraction killed by a time limit resumes where it stopped; a finished file whose fingerprint
(extractor settings + input digest) matches is reused instead of recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError

FEATURES_FILE = "features.h5"
HSI_MODEL = "model.keras"  # in the HSI study's pretrain run folder
FORMAT = "rstransfer.features/1"

BatchFn = Callable[[np.ndarray], np.ndarray]  # row indices -> (len, width) float32


@dataclass
class Source:
    """What an extractor reads: scene images, or the pixels of a prepared HSI scene."""

    dataset: str
    n: int
    images: np.ndarray | None = None  # (N, S, S, 3) uint8 (scene-wise)
    prepared: Any = None  # rstransfer.data.prepare.Prepared (pixel-wise)
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None
    raw_cube: np.ndarray | None = None  # (H, W, B) the unreduced target scene (spectra)


@dataclass(frozen=True)
class Extractor:
    name: str
    title: str
    domain: str  # "scene" or "pixel"
    pretrained: bool  # trained on some task (the probe table marks it); random and raw ones are not
    network: bool  # runs a Keras model (TensorFlow is set up first)
    make: Callable[[dict[str, Any], dict[str, Any], Source], tuple[BatchFn, int, dict[str, Any]]]
    width: Callable[[dict[str, Any]], int | None]  # expected width from the config alone (None: unknown)
    keys: tuple[str, ...] = ()  # the features.* settings its features depend on
    probe: bool = False  # gets a linear-probe row (pretrained backbones and the random floor)


# ---------------------------------------------------------------- scene-wise: raw pixels


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if images.shape[1] == size and images.shape[2] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])


def _make_rgb(section: dict[str, Any], inputs: dict[str, Any], src: Source) -> tuple[BatchFn, int, dict[str, Any]]:
    size = section["rgb_size"]
    return (lambda idx: _resize(src.images[idx], size).reshape(len(idx), -1).astype(np.float32) / 255.0,
            size * size * 3, {"size": size})


def colour_histograms(images: np.ndarray, bins: int) -> np.ndarray:
    """Per-channel histograms over 0..255, normalised to sum 1 per channel: (N, 3 * bins)."""
    edges = np.linspace(0, 256, bins + 1)
    out = np.empty((len(images), 3 * bins), dtype=np.float32)
    for i, im in enumerate(images):
        for c in range(3):
            out[i, c * bins:(c + 1) * bins] = np.histogram(im[..., c], bins=edges)[0] / im[..., c].size
    return out


def _make_histogram(section: dict[str, Any], inputs: dict[str, Any], src: Source) -> tuple[BatchFn, int, dict[str, Any]]:
    bins = section["histogram_bins"]
    return lambda idx: colour_histograms(src.images[idx], bins), 3 * bins, {"bins": bins}


# ---------------------------------------------------------------- scene-wise: networks


def _encoder_fn(model: Any, src: Source) -> tuple[BatchFn, int]:
    """Batches of images -> pooled features (resized to the encoder's input side when needed;
    the DenseNet input scaling of rstransfer.models.densenet, as the multilabel study trains with)."""
    from rstransfer.models.densenet import preprocess

    side = int(model.input_shape[1])
    if len(model.output_shape) != 2:
        raise DataFormatError(f"{model.name}: encoder output {model.output_shape} is not a pooled (batch, width) vector")

    def fn(idx: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(preprocess(_resize(src.images[idx], side).astype(np.float32))))

    return fn, int(model.output_shape[-1])


def _densenet(section: dict[str, Any], src: Source, weights: str | None) -> Any:
    from rstransfer.models.densenet import build_densenet_encoder

    bb = section["backbone"]
    side = section["image_size"]
    return build_densenet_encoder((side, side, 3), weights=weights, blocks=bb["blocks"], pooling="avg")


def imagenet_weights(section: dict[str, Any]) -> Path:
    return Path(section["imagenet_weights"])


def check_imagenet_weights(section: dict[str, Any]) -> None:
    path = imagenet_weights(section)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path}: ImageNet weights of features extractor 'imagenet' not found (features.imagenet_weights; "
            "put densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5 there or drop imagenet from "
            "features.extractors; nothing is downloaded)"
        )


def _make_imagenet(section: dict[str, Any], inputs: dict[str, Any], src: Source) -> tuple[BatchFn, int, dict[str, Any]]:
    check_imagenet_weights(section)
    if list(section["backbone"]["blocks"]) != [6, 12, 24, 16]:
        raise ConfigError("features.backbone.blocks: ImageNet weights exist for DenseNet121 only ([6, 12, 24, 16])")
    fn, width = _encoder_fn(_densenet(section, src, str(imagenet_weights(section))), src)
    return fn, width, {"weights": str(imagenet_weights(section)), "blocks": section["backbone"]["blocks"]}


def _make_random(section: dict[str, Any], inputs: dict[str, Any], src: Source) -> tuple[BatchFn, int, dict[str, Any]]:
    from rstransfer.core.keras import keras

    keras.utils.set_random_seed(section["backbone"]["seed"])
    fn, width = _encoder_fn(_densenet(section, src, None), src)
    return fn, width, {"blocks": section["backbone"]["blocks"], "init_seed": section["backbone"]["seed"]}


def _make_byol(section: dict[str, Any], inputs: dict[str, Any], src: Source) -> tuple[BatchFn, int, dict[str, Any]]:
    from rstransfer.core.report import read_json
    from rstransfer.studies.multilabel.model import load_encoder

    run = Path(inputs["byol"])
    record = read_json(run / "train.json", "rstransfer pretrain --study multilabel")
    if not isinstance(record.get("encoder"), dict):
        raise DataFormatError(f"{run / 'train.json'}: no 'encoder' builder kwargs (expected a BYOL pretrain record)")
    fn, width = _encoder_fn(load_encoder(run, record), src)
    return fn, width, {"run": str(run), "encoder": record["encoder"]}


def _densenet_width(section: dict[str, Any]) -> int:
    from rstransfer.models.densenet import feature_dim

    return feature_dim(section["backbone"]["blocks"])


# ---------------------------------------------------------------- pixel-wise


def _make_spectra(section: dict[str, Any], inputs: dict[str, Any], src: Source) -> tuple[BatchFn, int, dict[str, Any]]:
    cube = src.raw_cube
    return lambda idx: cube[src.rows[idx], src.cols[idx]].astype(np.float32), int(cube.shape[-1]), {}


def _make_hybridsn(section: dict[str, Any], inputs: dict[str, Any], src: Source) -> tuple[BatchFn, int, dict[str, Any]]:
    from rstransfer.core.fit import load_model
    from rstransfer.core.keras import keras
    from rstransfer.data.patches import pad_cube, window_offsets

    path = Path(inputs["model"]) / HSI_MODEL
    model = load_model(path)
    prepared = src.prepared
    shape = (prepared.window, prepared.window, int(prepared.cube.shape[-1]), 1)
    if tuple(model.input_shape[1:]) != shape:
        raise DataFormatError(
            f"{path}: HybridSN input {tuple(model.input_shape[1:])} does not match the prepared target's {shape} "
            "(hsi.prepare.window / pca_components differ between the model and the scene)"
        )
    layer = section["hybridsn_layer"]
    try:
        tap = model.get_layer(layer).output
    except ValueError:
        raise ConfigError(f"features.hybridsn_layer: {path} has no layer {layer!r}") from None
    sub = keras.Model(model.input, tap, name="hybridsn_features")
    padded = pad_cube(prepared.cube, prepared.window)
    hp, wp, k = padded.shape
    flat = padded.reshape(hp * wp, k)
    offsets = window_offsets(prepared.window, wp)
    starts = src.rows.astype(np.int64) * wp + src.cols.astype(np.int64)

    def fn(idx: np.ndarray) -> np.ndarray:
        windows = flat[starts[idx][:, None, None] + offsets[None]][..., None]  # (n, W, W, K, 1)
        return np.asarray(sub.predict_on_batch(windows)).reshape(len(idx), -1)

    return fn, int(np.prod(sub.output_shape[1:])), {"model": str(path), "layer": layer}


EXTRACTORS: dict[str, Extractor] = {
    e.name: e
    for e in [
        Extractor("imagenet", "DenseNet121 ImageNet", "scene", True, True, _make_imagenet, _densenet_width,
                  ("image_size", "backbone", "imagenet_weights"), probe=True),
        Extractor("byol", "DenseNet BYOL (multilabel study)", "scene", True, True, _make_byol, lambda s: None,
                  ("image_size",), probe=True),
        Extractor("random", "DenseNet random init", "scene", False, True, _make_random, _densenet_width,
                  ("image_size", "backbone"), probe=True),
        Extractor("rgb", "raw RGB (downsampled)", "scene", False, False, _make_rgb, lambda s: s["rgb_size"] ** 2 * 3,
                  ("image_size", "rgb_size")),
        Extractor("histogram", "colour histograms", "scene", False, False, _make_histogram,
                  lambda s: 3 * s["histogram_bins"], ("image_size", "histogram_bins")),
        Extractor("spectra", "raw spectra", "pixel", False, False, _make_spectra, lambda s: None),
        Extractor("hybridsn", "HybridSN penultimate layer", "pixel", True, True, _make_hybridsn, lambda s: None,
                  ("hybridsn_layer",), probe=True),
    ]
}


def get_extractor(name: str) -> Extractor:
    if name not in EXTRACTORS:
        raise ConfigError(f"features.extractors: unknown extractor {name!r} (registered: {', '.join(EXTRACTORS)})")
    return EXTRACTORS[name]


# ---------------------------------------------------------------- the cache


class FeatureCache:
    """``features`` (N, width) float32 in an HDF5 file, filled in chunks; ``done`` rows so far.

    Opening a file with another fingerprint starts it afresh; opening one with the same
    fingerprint resumes it, and a width that differs from the file's is a one-line error.
    """

    def __init__(self, path: Path, fingerprint: str, n: int, width: int, attrs: dict[str, Any]):
        self.path = Path(path)
        fresh = True
        if self.path.exists():
            try:
                with h5py.File(self.path, "r") as f:
                    fresh = f.attrs.get("fingerprint") != fingerprint or f.attrs.get("format") != FORMAT
                    old_width = int(f["features"].shape[1]) if not fresh else width
            except (OSError, KeyError):
                fresh = True
            if not fresh and old_width != width:
                raise DataFormatError(
                    f"{self.path}: features of width {width} ({attrs.get('extractor')} on {attrs.get('dataset')}) "
                    f"do not fit the cached file of width {old_width}; delete it to re-extract"
                )
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(self.path, "w") as f:
                f.create_dataset("features", shape=(n, width), dtype="float32", chunks=(min(n, 256), width),
                                 track_times=False)
                f.attrs.update({"format": FORMAT, "fingerprint": fingerprint, "width": width, "n": n, "done": 0,
                                "complete": False, "seconds": 0.0, "meta": json.dumps(attrs)})
        self.fingerprint, self.n, self.width = fingerprint, n, width

    @property
    def done(self) -> int:
        with h5py.File(self.path, "r") as f:
            return int(f.attrs["done"])

    def write(self, start: int, block: np.ndarray, seconds: float) -> None:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != self.width:
            raise DataFormatError(
                f"{self.path}: features of width {block.shape[-1]} do not fit the cached file of width {self.width}"
            )
        if not np.isfinite(block).all():
            raise DataFormatError(f"{self.path}: non-finite features in rows {start}..{start + len(block) - 1}")
        with h5py.File(self.path, "a") as f:
            f["features"][start:start + len(block)] = block
            f.attrs["done"] = start + len(block)
            f.attrs["seconds"] = float(f.attrs["seconds"]) + seconds

    def finish(self, arrays: dict[str, np.ndarray]) -> None:
        """Add the row metadata (labels, ids, split) and mark the file complete."""
        with h5py.File(self.path, "a") as f:
            for key, value in arrays.items():
                if key in f:
                    del f[key]
                f.create_dataset(key, data=value, track_times=False)
            f.attrs["complete"] = True


def is_complete(path: Path, fingerprint: str) -> bool:
    """A finished cache with this fingerprint (what a rerun can reuse)."""
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete")) and f.attrs.get("fingerprint") == fingerprint
    except (OSError, KeyError):
        return False


@dataclass(frozen=True)
class Features:
    """A finished cache read back: features plus the row metadata."""

    path: Path
    x: np.ndarray  # (N, width)
    arrays: dict[str, np.ndarray]  # class_ids, multilabels, names/rows/cols, split ...
    attrs: dict[str, Any]

    @property
    def width(self) -> int:
        return int(self.x.shape[1])


def read_features(path: str | Path, expected_width: int | None = None) -> Features:
    """Read a finished cache; a wrong width, an unfinished or a foreign file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: feature file missing; run `rstransfer pretrain --study features` first")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT or not f.attrs.get("complete"):
                raise DataFormatError(f"{path}: not a finished feature cache ({FORMAT})")
            x = f["features"][...]
            arrays = {k: f[k][...] for k in f if k != "features"}
            attrs = {k: _attr(v) for k, v in f.attrs.items() if k != "meta"}
            attrs.update(json.loads(f.attrs.get("meta", "{}")))
    except OSError as exc:
        raise DataFormatError(f"{path}: unreadable feature cache ({exc})") from None
    stored = int(attrs["width"])
    if x.shape[1] != stored or (expected_width is not None and stored != expected_width):
        raise DataFormatError(
            f"{path}: cached features have width {x.shape[1]} but {attrs.get('extractor')} gives "
            f"{expected_width if expected_width is not None else stored}; rerun `rstransfer pretrain --study features`"
        )
    return Features(path, x, arrays, attrs)


def _attr(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
