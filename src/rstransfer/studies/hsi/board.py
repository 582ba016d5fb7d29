"""The study's competition task ``hsi``: one entry per evaluated policy and seed, ranked by
the target scene's test OA. Light (no TensorFlow): the study's ``__init__`` imports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rstransfer.core.paths import Layout
from rstransfer.leaderboard.tasks import SCORE_RANGES, SubmissionError, Task, mtime_date, need, read_metrics, train_cost

STUDY = "hsi"  # the study's name (rstransfer.studies.hsi.NAME; that module imports this one)


def _runs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    return [
        layout.run_dir(STUDY, "evaluate", f"{p}/seed{s}") for p in cfg[STUDY]["policies"] for s in cfg[STUDY]["seeds"]
    ]


def _inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    return [layout.run_dir(STUDY, "report"), *_runs(cfg, layout)]


def _read(run: Path, cfg: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """An ``rstransfer evaluate`` folder (metrics.json with the fine-tuning's train.json inside)."""
    where = run / "metrics.json"
    m, t = read_metrics(where, ("policy", "seed", "model", "dataset", "split", "n_test"))
    for key in ("policy", "seed"):
        need(t, key, where, prefix="train.")
    if (t["policy"], t["seed"]) != (m["policy"], m["seed"]):
        raise SubmissionError(
            f"{where}: train.policy/seed {t['policy']}/{t['seed']} differ from policy/seed {m['policy']}/{m['seed']}"
        )
    target = cfg[STUDY]["target"]
    if m["dataset"] != target:
        raise SubmissionError(f"{where}: dataset {m['dataset']!r} is not the config's hsi.target {target!r}")
    return {
        "benchmark": f"{target}, {m['split']} split, {m['n_test']} test px",
        "entry": f"{m['policy']} seed {m['seed']}",
        "model": m["model"],
        "details": {
            "policy": m["policy"],
            "seed": m["seed"],
            "source": cfg[STUDY]["source"],
            "target": target,
            "split": m["split"],
            "n_test": m["n_test"],
        },
        "scores": {k: m[k] for k in SCORE_RANGES},
        "confusion_matrix": m["confusion_matrix"],
        "cost": train_cost(t),
        "date": mtime_date(where),
    }


TASKS: dict[str, Task] = {
    "hsi": Task(
        label="HSI transfer (HybridSN): target-scene test OA",
        metric="OA",
        metric_range=(0.0, 1.0),
        entry_label="policy, seed",
        cost_note="training time and GPU-hours of the fine-tuning run (the shared pre-training is not counted)",
        enabled=lambda cfg: bool(cfg[STUDY]["enabled"]),
        runs=_runs,
        inputs=_inputs,
        read=_read,
    ),
}
