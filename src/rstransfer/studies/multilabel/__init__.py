"""Multi-label scene classification with self-supervised pre-training and active learning
(Möllenbrok & Demir, IGARSS 2023: "Active learning guided fine-tuning for enhancing
self-supervised based multi-label classification of remote sensing images").

prepare (UC Merced + 17 multi-labels, or the generated set: resize, 25/25/50 split, imbalance
scenarios) -> pretrain (BYOL on the pool, DenseNet121) -> finetune x strategies x scenarios x
runs (active-learning rounds) -> evaluate (F1 per round) -> report (curves, F1 at N labels,
label efficiency, minority-label F1, macro-F1 gains).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rstransfer.core.errors import ConfigError
from rstransfer.core.study import Step, Study, lazy
from rstransfer.studies import register

from . import board

NAME = "multilabel"
STRATEGY_NAMES = ("random", "mge", "mge_clustering")  # = active.STRATEGIES (a test checks)
JOB = "{strategy}/scenario{scenario}/run{run}"


def check(cfg: dict[str, Any]) -> None:
    section = cfg[NAME]
    al, sc = section["active"], section["scenarios"]
    if al["budget"] < al["initial"]:
        raise ConfigError(f"multilabel.active.budget: {al['budget']} is below active.initial ({al['initial']})")
    if "mge_clustering" in al["strategies"] and al["candidates"] <= al["batch"]:
        raise ConfigError(f"multilabel.active.candidates: must exceed active.batch ({al['batch']}) for mge_clustering")
    for k in sc["run"]:
        if k > len(sc["remove_per_class"]):
            raise ConfigError(f"multilabel.scenarios.run: scenario {k} has no entry in scenarios.remove_per_class")
    if sc["remove_per_class"][0] != 0:
        raise ConfigError("multilabel.scenarios.remove_per_class: the first entry (scenario 1, the pool as is) must be 0")


def _downloads(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """UCMerced_LandUse.zip into data_root (it unpacks to UCMerced_LandUse/Images, the default
    ``images``). The 17 labels (LandUse_Multilabeled.txt, Chaudhuri et al.) are a separate file."""
    archive = cfg[NAME]["archive"]
    return [{"key": f"{NAME}.archive", "url": archive["url"], "sha256": archive["sha256"],
             "dest": cfg.get("data_root", "."), "extract": True}]  # fmt: skip


def jobs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    section = cfg[NAME]
    return [
        {"strategy": s, "scenario": k, "run": r}
        for k in section["scenarios"]["run"] for s in section["active"]["strategies"]
        for r in range(section["active"]["runs"])
    ]


def _prepared(layout: Any) -> str:
    return layout.run_dir(NAME, "prepare")


def _prepare_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    from .prepare import data_paths

    return data_paths(cfg)


def _prepare_params(cfg: dict[str, Any], run: dict[str, Any]) -> Any:
    s = cfg[NAME]
    return {k: s[k] for k in ("dataset", "synthetic", "image_size", "split", "scenarios")}


def _job_path(run: dict[str, Any]) -> str:
    return JOB.format(**run)


def _classifier() -> Any:
    from .model import reference_classifier

    return reference_classifier()


def _byol_online() -> Any:
    from .model import reference_byol_online

    return reference_byol_online()


STUDY = register(
    Study(
        name=NAME,
        title="Multi-label UC Merced: BYOL pre-training + active-learning-guided fine-tuning (DenseNet121)",
        schema=yaml.safe_load(Path(__file__).with_name("schema.yaml").read_text()),
        policies=lambda cfg: list(cfg[NAME]["active"]["strategies"]),
        check=check,
        enabled=lambda cfg: bool(cfg.get(NAME, {}).get("enabled", False)),
        models={"densenet121_multilabel": _classifier, "byol_online": _byol_online},
        leaderboard=board.TASKS,
        downloads=_downloads,
        steps={
            "prepare": Step(
                lazy(f"{__name__}.prepare", "prepare_step"), inputs=_prepare_inputs, params=_prepare_params,
                help="read UC Merced (or generate the demo set), resize, split 25/25/50, build the scenarios",
            ),
            "pretrain": Step(
                lazy(f"{__name__}.pretrain", "pretrain_step"),
                inputs=lambda cfg, run, layout: {"data": _prepared(layout)},
                params=lambda cfg, run: {"byol": cfg[NAME]["byol"], "backbone": cfg[NAME]["backbone"]},
                kind="gpu", training=True, help="BYOL on the pool images (no labels)",
            ),
            "finetune": Step(
                lazy(f"{__name__}.finetune", "finetune_step"), runs=jobs, pattern=JOB,
                inputs=lambda cfg, run, layout: {"data": _prepared(layout),
                                                 "pretrained": layout.run_dir(NAME, "pretrain")},
                params=lambda cfg, run: {"active": cfg[NAME]["active"], "finetune": cfg[NAME]["finetune"]},
                kind="gpu", help="active-learning rounds of one strategy x scenario x run",
            ),
            "evaluate": Step(
                lazy(f"{__name__}.evaluate", "evaluate_step"), runs=jobs, pattern=JOB,
                inputs=lambda cfg, run, layout: {"data": _prepared(layout),
                                                 "run": layout.run_dir(NAME, "finetune", _job_path(run))},
                params=lambda cfg, run: {"threshold": cfg[NAME]["active"]["threshold"]},
                help="micro/macro/sample F1, mAP and per-label F1 of every round",
            ),
            "report": Step(
                lazy(f"{__name__}.report", "report_step"),
                inputs=lambda cfg, run, layout: {
                    "runs": [layout.run_dir(NAME, "evaluate", _job_path(r)) for r in jobs(cfg)],
                    "data": _prepared(layout),
                    "pretrain": layout.run_dir(NAME, "pretrain"),
                },
                params=lambda cfg, run: cfg[NAME]["report"],
                help="F1 vs labels per scenario, F1 at N labels, label efficiency, minority F1, gains",
            ),
        },
    )
)
