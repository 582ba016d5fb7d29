"""The study's competition task ``vaihingen``: one entry per experiment, scored over all its
test tiles together (confusion matrices summed). Light (no TensorFlow): the study's
``__init__`` imports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rstransfer.core.paths import Layout
from rstransfer.leaderboard.tasks import SCORE_RANGES, SubmissionError, Task, mtime_date, need, read_metrics, train_cost

from .settings import NAME


def _runs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    """One folder per experiment, holding its evaluated test tiles (area<N>/)."""
    return [layout.run_dir(NAME, "evaluate", e) for e in cfg[NAME]["experiments"]]


def _inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    tiles = cfg[NAME]["tiles"]["test"]
    runs = [layout.run_dir(NAME, "evaluate", f"{e}/area{n}") for e in cfg[NAME]["experiments"] for n in tiles]
    return [layout.run_dir(NAME, "report"), *runs]


def _read(run: Path, cfg: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """An experiment's evaluated tiles (``rstransfer evaluate --study segmentation``) (every test tile of the config), scored
    together: the tiles' confusion matrices are summed, OA/AA/Kappa recomputed from the sum."""
    from rstransfer.core.metrics import scores

    experiment, tiles = run.name, sorted(cfg[NAME]["tiles"]["test"])
    total, cost, model, last, settings = None, None, None, "", {}
    for n in tiles:
        where = run / f"area{n}" / "metrics.json"
        m, t = read_metrics(where, ("experiment", "tile", "tile_split"))
        need(t, "model", where, prefix="train.")
        if (m["experiment"], m["tile"], m["tile_split"]) != (experiment, n, "test"):
            raise SubmissionError(
                f"{where}: experiment/tile/split {m['experiment']}/{m['tile']}/{m['tile_split']} "
                f"is not {experiment}/{n}/test"
            )
        if cost is not None and (train_cost(t), t["model"]) != (cost, model):
            raise SubmissionError(f"{where}: train differs from the other tiles' (one experiment, one training run)")
        cm = m["confusion_matrix"]
        if total is not None and len(cm) != len(total):
            raise SubmissionError(f"{where}: confusion_matrix has {len(cm)} classes, other tiles {len(total)}")
        total = cm if total is None else [[a + b for a, b in zip(r, q)] for r, q in zip(total, cm)]
        cost, model, last = train_cost(t), t["model"], max(last, mtime_date(where))
        settings = {k: t.get(k) for k in ("pretrained", "augment", "policy")}
    assert total is not None and cost is not None  # the schema requires >= 1 test tile
    s = scores(total)
    synthetic = "synthetic " if cfg[NAME]["synthetic"]["enabled"] else ""
    return {
        "benchmark": f"{synthetic}Vaihingen test areas {', '.join(map(str, tiles))} ({sum(map(sum, total))} px)",
        "entry": experiment,
        "model": model,
        "details": {"experiment": experiment, "tiles": tiles, **settings},
        "scores": {k: s[k] for k in SCORE_RANGES},
        "confusion_matrix": total,
        "cost": cost,
        "date": last,
    }


TASKS: dict[str, Task] = {
    # one entry = one experiment, scored over all its test tiles (confusion matrices summed)
    "vaihingen": Task(
        label="ISPRS Vaihingen segmentation (ResNet50-FCN): test-tile OA",
        metric="OA",
        metric_range=(0.0, 1.0),
        entry_label="experiment",
        cost_note="training time and GPU-hours of the experiment's finetune run (not of a run it starts from)",
        enabled=lambda cfg: bool(cfg.get(NAME, {}).get("enabled", False)),
        runs=_runs,
        inputs=_inputs,
        read=_read,
    ),
}
