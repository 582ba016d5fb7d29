"""prepare: scene -> split -> scaler + PCA fitted on training pixels only -> one HDF5 file.

The HDF5 holds the reduced cube (H, W, K), the labels, the split mask, the scaler/PCA
parameters and metadata. It never holds patches: those are cut lazily (``patches.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError
from rstransfer.core.io import atomic_path
from .scene import Scene
from .leakage import buffer_violations, leakage
from .splits import TRAIN, SplitSettings, class_counts, make_split, split_summary


@dataclass(frozen=True)
class Prepared:
    """What training and evaluation read back from ``results/prepare/{dataset}.h5``."""

    dataset: str
    cube: np.ndarray  # (H, W, K) float32, scaled + PCA-reduced
    labels: np.ndarray  # (H, W) int32, 0 = unlabelled
    split: np.ndarray  # (H, W) uint8: 0 unused, 1 train, 2 val, 3 test
    class_names: tuple[str, ...]
    window: int
    attrs: dict[str, Any]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def pixels(self, which: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, zero-based labels) of the pixels in split ``which``."""
        rows, cols = np.nonzero(self.split == which)
        return rows.astype(np.int32), cols.astype(np.int32), (self.labels[rows, cols] - 1).astype(np.int32)


def split_settings(cfg: dict[str, Any], dataset: str | None = None) -> SplitSettings:
    prep = cfg["hsi"]["prepare"]
    sp = {**prep["split"], **cfg["datasets"].get(dataset, {}).get("split", {})}
    return SplitSettings(
        protocol=sp["protocol"],
        train=sp["train"],
        val=sp["val"],
        test=sp["test"],
        block_size=sp["block_size"],
        window=prep["window"],
        seed=sp["seed"],
        min_pixels=sp["min_pixels_per_class"],
        buffer=sp.get("buffer", "window"),
    )


def fit_reduction(cube: np.ndarray, train_mask: np.ndarray, n_components: int, origin: str) -> dict[str, np.ndarray]:
    """Per-band standardisation and PCA, both fitted on training pixels only."""
    bands = cube.shape[-1]
    if n_components > bands:
        raise ConfigError(
            f"prepare.pca_components: {n_components} components requested but {origin} has only {bands} bands"
        )
    train = cube[train_mask].astype(np.float64)
    if n_components > train.shape[0]:
        raise ConfigError(
            f"prepare.pca_components: {n_components} components exceed the {train.shape[0]} training pixels of {origin}"
        )
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale == 0] = 1.0  # constant bands carry no information; avoid 0/0
    z = (train - mean) / scale
    # PCA by SVD of the centred training matrix (z is already centred)
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    var = s**2 / max(train.shape[0] - 1, 1)
    return {
        "scaler_mean": mean.astype(np.float32),
        "scaler_scale": scale.astype(np.float32),
        "pca_components": vt[:n_components].astype(np.float32),  # (K, B)
        "pca_explained_variance_ratio": (var[:n_components] / var.sum()).astype(np.float32),
    }


def apply_reduction(cube: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    h, w, b = cube.shape
    z = (cube.reshape(-1, b) - params["scaler_mean"]) / params["scaler_scale"]
    return (z @ params["pca_components"].T).reshape(h, w, -1).astype(np.float32)


def prepare_scene(scene: Scene, cfg: dict[str, Any], out: Path, origin: str) -> dict[str, Any]:
    """Split, fit the reduction on training pixels, write the HDF5 atomically; return the summary."""
    settings = split_settings(cfg, scene.name)
    split = make_split(scene.labels, scene.class_names, settings, origin)
    leak = leakage(split, settings.window)  # from the window footprints, not from the split's rule
    broken = buffer_violations(leak, settings.buffer) if settings.protocol == "disjoint" else {}
    if broken:
        raise AssertionError(f"{origin}: disjoint split with buffer {settings.buffer} leaks: {broken}")  # a bug
    params = fit_reduction(scene.cube, split == TRAIN, cfg["hsi"]["prepare"]["pca_components"], origin)
    reduced = apply_reduction(scene.cube, params)

    summary = {
        "dataset": scene.name,
        "shape": list(scene.cube.shape),
        "class_names": list(scene.class_names),
        "stand_in": scene.stand_in,
        "notes": scene.notes,
        "split": asdict(settings),
        "pixels_per_class": class_counts(scene.labels, split, scene.n_classes),
        "buffer": split_summary(scene.labels, split, scene.class_names, settings),
        "leakage": leak,
        "pca_explained_variance": float(params["pca_explained_variance_ratio"].sum()),
    }
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("cube", data=reduced, compression="gzip", compression_opts=4)
            f.create_dataset("labels", data=scene.labels.astype(np.int32), compression="gzip")
            f.create_dataset("split", data=split, compression="gzip")
            for key, value in params.items():
                f.create_dataset(key, data=value)
            f.attrs["summary"] = json.dumps(summary)
            f.attrs["window"] = settings.window
            f.attrs["format"] = "rstransfer.prepared/1"
    return summary


def load_prepared(path: str | Path) -> Prepared:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: prepared file missing; run `rstransfer prepare` for this dataset first")
    try:
        with h5py.File(path, "r") as f:
            summary = json.loads(f.attrs["summary"])
            return Prepared(
                dataset=summary["dataset"],
                cube=f["cube"][...],
                labels=f["labels"][...],
                split=f["split"][...],
                class_names=tuple(summary["class_names"]),
                window=int(f.attrs["window"]),
                attrs=summary,
            )
    except (OSError, KeyError) as exc:
        raise DataFormatError(f"{path}: not a prepared rstransfer file ({exc})") from exc
