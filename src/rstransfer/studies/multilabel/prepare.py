"""Step prepare: read the scenes (UC Merced or the generated set), resize, split into
validation/test/pool and build the imbalance scenarios.

Writes ``scenes.npz`` (images uint8 (N, S, S, 3), multilabels, class ids, names, the split's
index arrays), ``scenarios.json`` (per scenario: minority labels, removed and remaining pool
indices) and ``prepare.json`` (counts, label frequencies per split). No TensorFlow.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import DataFormatError
from rstransfer.core.io import atomic_path, write_json
from rstransfer.core.report import read_json
from rstransfer.core.study import StepContext
from rstransfer.data.ucmerced import SceneSet, load_ucmerced

from .scenarios import build_scenarios, split_indices

SCENES_FILE = "scenes.npz"
SCENARIOS_FILE = "scenarios.json"
SPLITS = ("val", "test", "pool")


def data_paths(cfg: dict[str, Any]) -> dict[str, str]:
    """The user's data files the prepare step reads (none for the generated set)."""
    section = cfg["multilabel"]
    if section["dataset"] != "ucmerced":
        return {}
    root = Path(cfg.get("data_root", "."))
    return {"images": str(root / section["images"]), "labels": str(root / section["labels"])}


def _read_ucmerced(section: dict[str, Any], inputs: dict[str, Any]) -> SceneSet:
    return load_ucmerced(inputs["images"], inputs["labels"], section["image_size"])


def _read_synthetic(section: dict[str, Any], inputs: dict[str, Any]) -> SceneSet:
    from rstransfer.data.synthetic_scenes import write_synthetic_ucmerced

    syn = section["synthetic"]
    with tempfile.TemporaryDirectory(prefix="rstransfer-scenes-") as tmp:
        images, labels = write_synthetic_ucmerced(tmp, syn["per_class"], section["image_size"], syn["seed"])
        return load_ucmerced(images, labels, section["image_size"])


DATASETS: dict[str, Callable[[dict[str, Any], dict[str, Any]], SceneSet]] = {
    "ucmerced": _read_ucmerced,
    "synthetic": _read_synthetic,
}


@dataclass(frozen=True)
class Prepared:
    """The prepared scenes, the split and the scenarios."""

    scenes: SceneSet
    split: dict[str, np.ndarray]
    scenarios: dict[str, dict[str, Any]]

    @property
    def labels(self) -> np.ndarray:
        assert self.scenes.multilabels is not None
        return self.scenes.multilabels


def prepare_step(ctx: StepContext) -> dict[str, Any]:
    section = ctx.section
    scenes = DATASETS[section["dataset"]](section, ctx.inputs)
    if scenes.multilabels is None or not len(scenes):
        raise DataFormatError(f"multilabel: dataset {section['dataset']!r} has no multi-labelled images")
    sp = section["split"]
    split = split_indices(scenes.class_ids, sp["val"], sp["test"], sp["seed"])
    scenarios = build_scenarios(scenes.multilabels, scenes.label_names, split["pool"], section["scenarios"])
    with atomic_path(ctx.out / SCENES_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh, images=scenes.images, multilabels=scenes.multilabels, class_ids=scenes.class_ids,
                names=np.array(scenes.names), classes=np.array(scenes.classes),
                label_names=np.array(scenes.label_names), **split,
            )
    write_json(ctx.out / SCENARIOS_FILE, scenarios)
    freq = {k: dict(zip(scenes.label_names, scenes.multilabels[v].sum(axis=0).tolist(), strict=True)) for k, v in split.items()}
    summary = {
        "dataset": section["dataset"], "images": len(scenes), "image_size": section["image_size"],
        "labels": list(scenes.label_names), "classes": list(scenes.classes),
        "split": {k: len(v) for k, v in split.items()}, "label_counts": freq,
        "scenarios": {k: {"minority": v["minority"], "pool": len(v["pool"])} for k, v in scenarios.items()},
    }
    write_json(ctx.out / "prepare.json", summary)
    sizes = "/".join(str(len(split[k])) for k in SPLITS)
    return {**summary, "line": f"prepared {len(scenes)} {section['dataset']} scenes at {section['image_size']} px; "
                               f"val/test/pool {sizes}; minority labels {scenarios[str(len(scenarios))]['minority']}"}


def load_prepared(folder: str | Path) -> Prepared:
    path = Path(folder) / SCENES_FILE
    if not path.is_file():
        raise DataFormatError(f"{path}: missing; run `rstransfer prepare --study multilabel` first")
    with np.load(path) as z:
        scenes = SceneSet(
            images=z["images"], names=tuple(z["names"].tolist()), classes=tuple(z["classes"].tolist()),
            class_ids=z["class_ids"], multilabels=z["multilabels"], label_names=tuple(z["label_names"].tolist()),
        )
        split = {k: z[k] for k in SPLITS}
    scenarios = read_json(Path(folder) / SCENARIOS_FILE, "rstransfer prepare --study multilabel")
    return Prepared(scenes, split, scenarios)
