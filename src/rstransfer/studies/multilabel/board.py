"""The study's competition task ``multilabel``: one entry per active-learning job (strategy,
scenario, run), ranked by the test set's macro-F1 at the label budget (Möllenbrok & Demir:
what a fixed number of labels buys).

The participant submits the test images' predicted multi-labels of the job's round at
``multilabel.active.budget`` labels (sigmoid outputs of ``probs.npz`` at
``active.threshold``); the organiser scores them against the prepared test labels.
Light (no TensorFlow): the study's ``__init__`` imports it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.paths import Layout
from rstransfer.leaderboard.tasks import (
    Prediction,
    SubmissionError,
    Task,
    Truth,
    check_text,
    load_json,
    need,
    train_cost,
)

STUDY = "multilabel"  # the study's name (rstransfer.studies.multilabel.NAME; that module imports this one)
PROBS_FILE = "probs.npz"  # = finetune.PROBS_FILE
JOB_RE = re.compile(r"^(?P<strategy>[a-z_]+)/scenario(?P<scenario>\d+)/run(?P<run>\d+)$")
ARRAYS = ("labels", "names")
DENSENET121 = [6, 12, 24, 16]


def _job_path(job: dict[str, Any]) -> str:
    from . import JOB

    return JOB.format(**job)


def _jobs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    from . import jobs

    return jobs(cfg)


def _budget(cfg: dict[str, Any]) -> int:
    return int(cfg[STUDY]["active"]["budget"])


def _runs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    return [layout.run_dir(STUDY, "evaluate", _job_path(j)) for j in _jobs(cfg)]


def _inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    return [layout.run_dir(STUDY, "report"), *_runs(cfg, layout)]


def _test_set(folder: Path) -> dict[str, Any]:
    """Test image names, their 0/1 labels and the label names of a prepare run (images not read)."""
    from rstransfer.core.errors import DataFormatError

    from .evaluate import load_labels

    try:
        data = load_labels(folder)
    except (DataFormatError, OSError, ValueError, KeyError) as exc:
        raise SubmissionError(f"{folder}: not a prepared scene set: {exc}") from exc
    test = np.asarray(data["test"], dtype=np.int64)
    return {"names": data["names"][test], "labels": (np.asarray(data["labels"])[test] > 0).astype(np.uint8),
            "label_names": [str(n) for n in data["label_names"]]}  # fmt: skip


def _job_of(run: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """(strategy, scenario, run) of an evaluate folder ``.../<strategy>/scenario<k>/run<r>``: a job of the config."""
    m = JOB_RE.match("/".join(run.parts[-3:]))
    if not m:
        raise SubmissionError(f"{run}: not an evaluated job folder (<strategy>/scenario<k>/run<r>)")
    job = {"strategy": m["strategy"], "scenario": int(m["scenario"]), "run": int(m["run"])}
    if job not in _jobs(cfg):
        raise SubmissionError(f"{run}: {_job_path(job)} is not a job of the config (multilabel.active, multilabel.scenarios)")
    return job


def _model_name(train: dict[str, Any]) -> str:
    encoder = train.get("encoder") if isinstance(train.get("encoder"), dict) else {}
    blocks = encoder.get("blocks")
    net = "DenseNet121" if blocks == DENSENET121 else "DenseNet " + "-".join(map(str, blocks or ["?"]))
    return f"{net} BYOL + sigmoid head"


def _predictions(run: Path, cfg: dict[str, Any], layout: Layout) -> Prediction:
    """The job's test multi-labels at the budget round, from its finetune folder (probs.npz,
    train.json) and the prepare folder (test image names)."""
    run = Path(run)
    job = _job_of(run, cfg)
    load_json(run / "metrics.json")  # the job was evaluated (what the workflow's submit waits for)
    folder = Path(layout.run_dir(STUDY, "finetune", _job_path(job)))
    where = folder / "train.json"
    t = load_json(where, "run `rstransfer finetune --study multilabel` first")
    for key in ("strategy", "scenario", "run"):
        if str(need(t, key, where)) != str(job[key]):
            raise SubmissionError(f"{where}: {key} {t[key]!r} is not the job's {job[key]!r}")
    sizes = need(t, "sizes", where)
    budget = _budget(cfg)
    if not isinstance(sizes, list) or budget not in sizes:
        raise SubmissionError(
            f"{where}: no round at the budget of {budget} labels (sizes {sizes}); "
            f"rerun finetune with multilabel.active.budget {budget}"
        )
    r = sizes.index(budget)
    probs_path = folder / PROBS_FILE
    if not probs_path.is_file():
        raise SubmissionError(f"{probs_path}: not found (rerun `rstransfer finetune --study multilabel`)")
    with np.load(probs_path) as z:
        test = z["test"]
    data = _test_set(Path(layout.run_dir(STUDY, "prepare")))
    n, n_labels = data["labels"].shape
    if test.ndim != 3 or test.shape[0] <= r or test.shape[1:] != (n, n_labels):
        raise SubmissionError(
            f"{probs_path}: test predictions {'x'.join(map(str, test.shape))} lack round {r} of "
            f"{n} test images x {n_labels} labels"
        )
    labels = (test[r] >= cfg[STUDY]["active"]["threshold"]).astype(np.uint8)
    entry = check_text(f"{job['strategy']} scenario {job['scenario']} run {job['run']}", "entry", where)
    model = check_text(_model_name(t), "model", where)
    return Prediction(
        meta={
            "entry": entry,
            "model": model,
            "details": {
                "strategy": check_text(job["strategy"], "strategy", where),
                "scenario": job["scenario"],
                "run": job["run"],
                "n_labelled": budget,
            },
            "cost": train_cost(t, where),
        },
        arrays={"names": data["names"].astype("U"), "labels": labels},
    )


def _truth_inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    return [layout.run_dir(STUDY, "prepare")]


def _truth(cfg: dict[str, Any], layout: Layout) -> Truth:
    data = _test_set(Path(layout.run_dir(STUDY, "prepare")))
    budget = _budget(cfg)
    dataset = "generated" if cfg[STUDY]["dataset"] == "synthetic" else "UC Merced"
    return Truth(
        meta={
            "benchmark": f"{dataset} multi-label test set, {len(data['names'])} images, at {budget} labels",
            "budget": budget,
            "label_names": data["label_names"],
        },
        arrays={"names": data["names"].astype("U"), "labels": data["labels"]},
    )


def _score(arrays: dict[str, np.ndarray], truth: Truth) -> dict[str, Any]:
    """Micro/macro/sample F1 of the submitted 0/1 labels, rows matched to the test images by name."""
    from rstransfer.core.metrics import multilabel_scores

    if set(arrays) != set(ARRAYS):
        raise SubmissionError(f"arrays: expected exactly {', '.join(ARRAYS)}, got {', '.join(sorted(arrays)) or 'none'}")
    names, labels = arrays["names"], arrays["labels"]
    true_names = [str(n) for n in truth.arrays["names"].tolist()]
    y = np.asarray(truth.arrays["labels"])
    label_names = list(truth.meta["label_names"])
    if not isinstance(names, np.ndarray) or names.dtype.kind != "U" or names.ndim != 1:
        raise SubmissionError(f"names: expected a 1-D text array, got {getattr(names, 'dtype', type(names).__name__)}")
    got = names.tolist()
    if len(set(got)) != len(got):
        raise SubmissionError(f"names: {len(got) - len(set(got))} duplicated image name(s)")
    missing, extra = set(true_names) - set(got), set(got) - set(true_names)
    if missing or extra:
        raise SubmissionError(
            f"names: {len(missing)} test image(s) missing, {len(extra)} not in the test set "
            f"(e.g. {sorted(missing or extra)[0][:40]!r})"
        )
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "biu":
        raise SubmissionError(f"labels: expected a 0/1 integer or boolean array, got {getattr(labels, 'dtype', type(labels).__name__)}")
    shape = (len(true_names), len(label_names))
    if labels.shape != shape:
        raise SubmissionError(f"labels: shape {'x'.join(map(str, labels.shape))}, the test set needs {'x'.join(map(str, shape))}")
    if labels.size and not np.isin(labels, (0, 1)).all():
        bad = labels[~np.isin(labels, (0, 1))]
        raise SubmissionError(f"labels: values must be 0 or 1, found {int(bad.flat[0])}")
    row = {name: i for i, name in enumerate(got)}
    pred = labels[[row[name] for name in true_names]].astype(float)
    s = multilabel_scores(y, pred, 0.5)
    return {
        "scores": {k: s[k] for k in ("macro_f1", "micro_f1", "sample_f1")},
        "confusion_matrix": None,
        "per_class": dict(zip(label_names, s["per_label_f1"], strict=True)),
    }


TASKS: dict[str, Task] = {
    "multilabel": Task(
        label="Multi-label UC Merced (DenseNet121, BYOL + active learning): macro-F1 at the label budget",
        metric="macro_f1",
        columns=(("macro_f1", "macro-F1 (%)"), ("micro_f1", "micro-F1 (%)"), ("sample_f1", "sample-F1 (%)")),
        entry_label="strategy, scenario, run",
        cost_note="training time and GPU-hours of the job's active-learning rounds (BYOL pre-training not counted)",
        runs=_runs,
        inputs=_inputs,
        predictions=_predictions,
        truth_inputs=_truth_inputs,
        truth=_truth,
        score=_score,
    ),
}
