"""Step evaluate: multi-label scores of every round of one AL job, from its stored test
predictions (no TensorFlow, no GPU).

Per round: micro-F1, macro-F1 (mean over labels present in the test set), sample-F1, mAP
(macro average precision over labels present) and per-label F1, at ``active.threshold``; the
validation set's micro/macro-F1 beside them. Writes ``metrics.json`` and ``curve.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import DataFormatError
from rstransfer.core.io import atomic_path, write_json
from rstransfer.core.report import read_json
from rstransfer.core.study import StepContext

from rstransfer.core.metrics import multilabel_scores

from .prepare import SCENES_FILE


def load_labels(folder: str | Path) -> dict[str, Any]:
    """Labels, label names, image names and split of a prepare run, without reading the images."""
    path = Path(folder) / SCENES_FILE
    if not path.is_file():
        raise DataFormatError(f"{path}: missing; run `rstransfer prepare --study multilabel` first")
    with np.load(path) as z:
        return {"labels": z["multilabels"], "label_names": z["label_names"].tolist(), "test": z["test"], "val": z["val"],
                "names": z["names"].astype(str)}


def evaluate_step(ctx: StepContext) -> dict[str, Any]:
    data = load_labels(ctx.inputs["data"])
    run_dir = Path(ctx.inputs["run"])
    job = read_json(run_dir / "train.json", "rstransfer finetune --study multilabel")
    probs_path = run_dir / "probs.npz"
    if not probs_path.is_file():
        raise DataFormatError(f"{probs_path}: missing; rerun `rstransfer finetune --study multilabel`")
    with np.load(probs_path) as z:
        test, val = z["test"], z["val"]
    y_test, y_val = data["labels"][data["test"]], data["labels"][data["val"]]
    if test.shape[1:] != y_test.shape or val.shape[1:] != y_val.shape:
        raise DataFormatError(f"{probs_path}: predictions {test.shape[1:]} do not match the test labels {y_test.shape}")
    threshold = ctx.section["active"]["threshold"]
    rounds = []
    for r, n in enumerate(job["sizes"][: len(test)]):
        s = multilabel_scores(y_test, test[r], threshold)
        v = multilabel_scores(y_val, val[r], threshold)
        rounds.append({"round": r, "n_labelled": n, **s, "val_micro_f1": v["micro_f1"], "val_macro_f1": v["macro_f1"]})
    metrics = {**{k: ctx.run[k] for k in ("strategy", "scenario", "run")}, "threshold": threshold,
               "label_names": data["label_names"], "rounds": rounds}
    write_json(ctx.out / "metrics.json", metrics)
    import pandas as pd

    flat = pd.DataFrame([{k: v for k, v in r.items() if k not in ("per_label_f1", "support")} for r in rounds])
    with atomic_path(ctx.out / "curve.csv") as tmp:
        flat.to_csv(tmp, index=False)
    last = rounds[-1]
    return {**metrics, "line": f"{ctx.run['strategy']} scenario {ctx.run['scenario']} run {ctx.run['run']}: "
                               f"{last['n_labelled']} labels, micro-F1 {last['micro_f1']:.4f}, macro-F1 "
                               f"{last['macro_f1']:.4f}, mAP {last['mAP']:.4f}"}
