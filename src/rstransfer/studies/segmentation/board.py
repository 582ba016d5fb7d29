"""The study's competition task ``vaihingen``: one entry per experiment, ranked by the OA of
test area 15 (the lecture's competition table), with every other test tile as a column beside it.

A participant submits the label maps its evaluate step wrote for every test tile of the
config (``area<N>/prediction.npy``, class ids 0..5, uint8, the tile's H x W); the organiser
scores them against the tiles' ground truth, which it reads itself (the ISPRS label files, or
the synthetic tile set of its own prepare run). Light (no TensorFlow): the study's
``__init__`` imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.paths import Layout
from rstransfer.leaderboard.tasks import (
    Prediction,
    SubmissionError,
    Task,
    Truth,
    check_label_array,
    check_text,
    load_map,
    read_evaluated,
    need,
    train_cost,
)

from .settings import NAME, is_synthetic, tile_source

MAP_FILE = "prediction.npy"  # in each evaluated tile's folder: class id 0..5 per pixel (uint8, H x W)
RANK_TILE = 15  # the lecture's competition ranks on test area 15


def _tiles(cfg: dict[str, Any]) -> list[int]:
    return sorted(int(n) for n in cfg[NAME]["tiles"]["test"])


def _runs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    """One folder per experiment, holding its evaluated test tiles (area<N>/)."""
    return [layout.run_dir(NAME, "evaluate", e) for e in cfg[NAME]["experiments"]]


def _inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    tiles = cfg[NAME]["tiles"]["test"]
    runs = [layout.run_dir(NAME, "evaluate", f"{e}/area{n}") for e in cfg[NAME]["experiments"] for n in tiles]
    return [layout.run_dir(NAME, "report"), *runs]


def _setting(value: Any, key: str, where: Any) -> str | int | float:
    """One experiment setting as board text: booleans yes/no, a weights path by its file name."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return value
    text = "" if value is None else str(value)
    if "/" in text or "\\" in text:
        text = Path(text.replace("\\", "/")).name  # a weights file: its name, not the team's folders
    return check_text(text, key, where)


def _predictions(run: Path, cfg: dict[str, Any], layout: Layout) -> Prediction:
    """An experiment's evaluated test tiles (``rstransfer evaluate --study segmentation``), every
    test tile of the config: each area<N>/ holds metrics.json (train.json inside as ``train``)
    and the tile's label map ``prediction.npy``; all tiles must come from one training run."""
    experiment, tiles = run.name, _tiles(cfg)
    hint = "evaluate the run again: rstransfer evaluate --study segmentation"
    arrays: dict[str, np.ndarray] = {}
    cost, model, t = None, None, {}
    for n in tiles:
        where = run / f"area{n}" / "metrics.json"
        m, t = read_evaluated(where, ("experiment", "tile", "tile_split"))
        need(t, "model", where, prefix="train.")
        if (m["experiment"], m["tile"], m["tile_split"]) != (experiment, n, "test"):
            raise SubmissionError(
                f"{where}: experiment/tile/split {m['experiment']}/{m['tile']}/{m['tile_split']} "
                f"is not {experiment}/{n}/test"
            )
        if cost is not None and (train_cost(t, where), t["model"]) != (cost, model):
            raise SubmissionError(f"{where}: train differs from the other tiles' (one experiment, one training run)")
        cost, model = train_cost(t, where), t["model"]
        path = run / f"area{n}" / MAP_FILE
        arrays[f"area{n}"] = load_map(path, hint, np.uint8)
    assert cost is not None and model is not None  # the schema requires >= 1 test tile
    where = run / f"area{tiles[-1]}" / "metrics.json"
    meta = {
        "entry": check_text(experiment, "experiment", run),
        "model": check_text(model, "train.model", where),
        "details": {
            "experiment": experiment,
            "tiles": tiles,
            **{k: _setting(t.get(k), f"train.{k}", where) for k in ("pretrained", "augment", "policy")},
        },
        "cost": cost,
    }
    return Prediction(meta=meta, arrays=arrays)


# ------------------------------------------------------------------------------ organiser
def _prepare_dir(layout: Layout) -> str:
    return layout.run_dir(NAME, "prepare")


def _label_files(cfg: dict[str, Any], layout: Layout) -> dict[int, Path]:
    """Each test tile's ground-truth file: the ISPRS label folder, or the synthetic tile set
    inside the prepare run folder."""
    source = tile_source(cfg, _prepare_dir(layout) if is_synthetic(cfg) else None)
    return {n: source.paths(n)["label"] for n in _tiles(cfg)}


def _truth_inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    """The synthetic set: the prepare run folder (prepare writes the tiles into it); ISPRS
    tiles: the test tiles' label files (the images are not needed to score)."""
    if is_synthetic(cfg):
        return [_prepare_dir(layout)]
    return [str(p) for p in _label_files(cfg, layout).values()]


def _truth(cfg: dict[str, Any], layout: Layout) -> Truth:
    """Every test tile's label mask (class ids 0..5, uint8)."""
    from .data import CLASSES, decode_labels, read_tiff

    tiles = _tiles(cfg)
    arrays = {}
    for n, path in _label_files(cfg, layout).items():
        arrays[f"area{n}"] = decode_labels(read_tiff(path, "label"), path)
    synthetic = "synthetic " if is_synthetic(cfg) else ""
    return Truth(
        meta={
            "benchmark": f"{synthetic}Vaihingen test areas {', '.join(map(str, tiles))}",
            "tiles": tiles,
            "rank_tile": RANK_TILE if RANK_TILE in tiles else tiles[0],
            "class_names": list(CLASSES),
        },
        arrays=arrays,
    )


def _score(arrays: dict[str, np.ndarray], truth: Truth) -> dict[str, Any]:
    """Per tile a confusion matrix; OA/AA/Kappa of the rank tile, OA and Kappa of every tile."""
    from rstransfer.core.metrics import confusion_matrix, scores

    tiles = [int(n) for n in truth.meta["tiles"]]
    names = list(truth.meta["class_names"])
    wanted = [f"area{n}" for n in tiles]
    extra = sorted(set(arrays) - set(wanted))
    if extra:
        raise SubmissionError(
            f"unexpected array(s) {', '.join(map(repr, extra))}: the task takes {', '.join(map(repr, wanted))}"
        )
    missing = [k for k in wanted if k not in arrays]
    if missing:
        raise SubmissionError(f"missing array(s) {', '.join(map(repr, missing))} (one label map per test tile)")
    per_tile: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
    for n, key in zip(tiles, wanted, strict=True):
        mask = np.asarray(truth.arrays[key])
        pred = check_label_array(arrays.get(key), key, mask.shape, 0, len(names) - 1)
        cm = confusion_matrix(mask.reshape(-1), pred.reshape(-1), len(names))
        per_tile[n] = (cm, scores(cm))
    rank = int(truth.meta["rank_tile"])
    cm, s = per_tile[rank]
    out = {k: s[k] for k in ("OA", "AA", "Kappa")}
    for n in tiles:
        out[f"OA_area{n}"] = per_tile[n][1]["OA"]
        out[f"Kappa_area{n}"] = per_tile[n][1]["Kappa"]
    return {
        "scores": out,
        "confusion_matrix": cm.astype(int).tolist(),
        "per_class": dict(zip(names, s["per_class_accuracy"], strict=True)),
    }


TASKS: dict[str, Task] = {
    # one entry = one experiment; ranked on test area 15, test area 23 beside it
    "vaihingen": Task(
        label="ISPRS Vaihingen segmentation (ResNet50-FCN): OA on test area 15",
        metric="OA",
        columns=(("OA", "OA area 15 (%)"), ("OA_area23", "OA area 23 (%)"), ("Kappa", "Kappa area 15 (%)")),
        entry_label="experiment",
        cost_note="training time and GPU-hours of the experiment's finetune run (not of a run it starts from)",
        runs=_runs,
        inputs=_inputs,
        predictions=_predictions,
        truth_inputs=_truth_inputs,
        truth=_truth,
        score=_score,
    ),
}
