"""The study's competition task ``hsi``: one entry per evaluated policy and seed, ranked by
the target scene's test OA.

A participant submits the scene map its evaluate step wrote (``prediction.npy``, class ids
1..C for every pixel of the target scene); the organiser scores the map's test pixels (the
prepared split's TEST pixels, read from the organiser's own prepare run) against their labels.
Light (no TensorFlow): the study's ``__init__`` imports it.
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

STUDY = "hsi"  # the study's name (rstransfer.studies.hsi.NAME; that module imports this one)
MAP_FILE = "prediction.npy"  # in the evaluate run folder: class id 1..C of every target pixel (int16, H x W)


def _runs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    return [
        layout.run_dir(STUDY, "evaluate", f"{p}/seed{s}") for p in cfg[STUDY]["policies"] for s in cfg[STUDY]["seeds"]
    ]


def _inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    return [layout.run_dir(STUDY, "report"), *_runs(cfg, layout)]


def _predictions(run: Path, cfg: dict[str, Any], layout: Layout) -> Prediction:
    """An ``rstransfer evaluate`` folder: metrics.json (the fine-tuning's train.json inside as
    ``train``) and the scene map ``prediction.npy``."""
    where = run / "metrics.json"
    m, t = read_evaluated(where, ("policy", "seed", "model", "dataset"))
    for key in ("policy", "seed"):
        need(t, key, where, prefix="train.")
    if (t["policy"], t["seed"]) != (m["policy"], m["seed"]):
        raise SubmissionError(
            f"{where}: train.policy/seed {t['policy']}/{t['seed']} differ from policy/seed {m['policy']}/{m['seed']}"
        )
    seed = m["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SubmissionError(f"{where}: seed: expected an integer, got {seed!r}")
    hsi = cfg[STUDY]
    target = hsi["target"]
    if m["dataset"] != target:
        raise SubmissionError(f"{where}: dataset {m['dataset']!r} is not the config's hsi.target {target!r}")
    policy = check_text(m["policy"], "policy", where)
    meta = {
        "entry": check_text(f"{policy} seed {seed}", "entry", where),
        "model": check_text(m["model"], "model", where),
        "details": {
            "policy": policy,
            "seed": seed,
            "source": check_text(hsi["source"], "hsi.source", where),
            "target": check_text(target, "hsi.target", where),
        },
        "cost": train_cost(t, where),
    }
    path = run / MAP_FILE
    scene = load_map(path, "evaluate the run again: rstransfer evaluate --study hsi", np.int16)
    return Prediction(meta=meta, arrays={"map": scene})


# ------------------------------------------------------------------------------ organiser
def _prepared_dir(cfg: dict[str, Any], layout: Layout) -> str:
    return layout.run_dir(STUDY, "prepare", cfg[STUDY]["target"])


def _truth_inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    """The organiser's prepare run folder of the target scene (its prepared.h5 holds labels and split)."""
    return [_prepared_dir(cfg, layout)]


def _truth(cfg: dict[str, Any], layout: Layout) -> Truth:
    """The target scene's TEST pixels (flat index row * W + col) and their 0-based labels; as
    ``public``, the scene's label map holding only the training and validation pixels (ids 1..C,
    0 elsewhere): what participants of a sealed competition train on."""
    from rstransfer.data.prepare import load_prepared
    from rstransfer.data.splits import TEST, TRAIN, VAL

    from .prepare import PREPARED_FILE

    target = cfg[STUDY]["target"]
    prepared = load_prepared(Path(_prepared_dir(cfg, layout)) / PREPARED_FILE)
    h, w = prepared.labels.shape
    rows, cols, y = prepared.pixels(TEST)
    n = int(len(y))
    public = np.zeros((h, w), dtype=np.int16)
    for part in (TRAIN, VAL):
        r, c, lab = prepared.pixels(part)
        public[r, c] = lab + 1
    return Truth(
        meta={
            "benchmark": f"{target}, {prepared.attrs['split']['protocol']} split, {n} test px",
            "shape": [int(h), int(w)],
            "class_names": list(prepared.class_names),
            "dataset": target,
        },
        arrays={
            "index": rows.astype(np.int64) * w + cols.astype(np.int64),
            "label": y.astype(np.int16),
        },
        public={"target_labels": public},
    )


def _score(arrays: dict[str, np.ndarray], truth: Truth) -> dict[str, Any]:
    """OA, AA and Kappa of the map's class ids (1..C) at the test pixels."""
    from rstransfer.core.metrics import confusion_matrix, scores

    extra = sorted(set(arrays) - {"map"})
    if extra:
        raise SubmissionError(f"unexpected array(s) {', '.join(map(repr, extra))}: the task takes 'map' only")
    if "map" not in arrays:
        raise SubmissionError("missing array 'map' (class id 1..C of every target-scene pixel)")
    names = list(truth.meta["class_names"])
    shape = tuple(int(v) for v in truth.meta["shape"])
    scene = check_label_array(arrays.get("map"), "map", shape, 1, len(names))
    index = np.asarray(truth.arrays["index"], dtype=np.int64)
    y_true = np.asarray(truth.arrays["label"], dtype=np.int64)
    y_pred = scene.reshape(-1)[index].astype(np.int64) - 1
    cm = confusion_matrix(y_true, y_pred, len(names))
    s = scores(cm)
    return {
        "scores": {k: s[k] for k in ("OA", "AA", "Kappa")},
        "confusion_matrix": cm.astype(int).tolist(),
        "per_class": dict(zip(names, s["per_class_accuracy"], strict=True)),
    }


TASKS: dict[str, Task] = {
    "hsi": Task(
        label="HSI transfer (HybridSN): target-scene test OA",
        metric="OA",
        columns=(("OA", "OA (%)"), ("AA", "AA (%)"), ("Kappa", "Kappa (%)")),
        entry_label="policy, seed",
        cost_note="training time and GPU-hours of the fine-tuning run (the shared pre-training is not counted)",
        runs=_runs,
        inputs=_inputs,
        predictions=_predictions,
        truth_inputs=_truth_inputs,
        truth=_truth,
        score=_score,
    ),
}
