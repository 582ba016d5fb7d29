"""Semantic segmentation of ISPRS Vaihingen tiles with a ResNet50-FCN (the tutorial's study).

prepare (synthetic tile set when it is the data; train/val tiles cut into patch files) ->
finetune x experiments (starting weights none / imagenet / run:<experiment>, augmentation,
policy) -> evaluate (each experiment on each whole test tile) -> report. There is no pretrain
step of our own: the backbone starts from ImageNet (a local Keras file) or from another
experiment's run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rstransfer.core.study import Step, Study, lazy
from rstransfer.studies import register

from . import board
from .policies import POLICIES
from .settings import (
    NAME,
    check_segmentation,
    evaluate_runs,
    is_synthetic,
    pretrained_input,
    tile_files,
)


def _prepared(layout: Any) -> str:
    return layout.run_dir(NAME, "prepare")


def _prepare_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    tiles = cfg[NAME]["tiles"]
    return {"tiles": tile_files(cfg, tiles["train"] + tiles["val"])}


def _finetune_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    return {"data": _prepared(layout), **pretrained_input(cfg, run["experiment"], layout)}


def _evaluate_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    inputs = {"run": layout.run_dir(NAME, "finetune", run["experiment"])}
    if is_synthetic(cfg):
        inputs["prepared"] = _prepared(layout)  # the synthetic tiles live there
    else:
        inputs["tiles"] = tile_files(cfg, [int(run["tile"])])
    return inputs


def _fcn() -> Any:
    from .model import build_resnet50_fcn

    return build_resnet50_fcn((256, 256, 3), 6)


def _policy_table(shape: dict[str, int]) -> tuple[str, list[dict[str, Any]]]:
    from rstransfer.core.policies import policy_table

    from .model import build_resnet50_fcn

    w, b, c = shape.get("window", 256), shape.get("bands", 3), shape.get("classes", 6)
    return f"resnet50_fcn: input {w}x{w}x{b}, {c} classes", policy_table(POLICIES, lambda p: build_resnet50_fcn((w, w, b), c))


def _settings(cfg: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: cfg[NAME][k] for k in keys}


STUDY = register(
    Study(
        name=NAME,
        title="ResNet50-FCN segmentation of ISPRS Vaihingen",
        schema=yaml.safe_load(Path(__file__).with_name("schema.yaml").read_text()),
        policies=lambda cfg: list(POLICIES),
        check=check_segmentation,
        models={"resnet50_fcn": _fcn},
        policy_table=_policy_table,
        leaderboard=board.TASKS,
        steps={
            "prepare": Step(
                lazy(f"{__name__}.train", "prepare_step"), inputs=_prepare_inputs,
                params=lambda cfg, run: _settings(cfg, "tiles", "patch_size", "overlap", "dsm", "synthetic"),
                help="(synthetic tiles,) cut train/val tiles into patch files",
            ),
            "finetune": Step(
                lazy(f"{__name__}.train", "finetune_step"),
                runs=lambda cfg: [{"experiment": e} for e in cfg[NAME]["experiments"]],
                pattern="{experiment}", inputs=_finetune_inputs,
                params=lambda cfg, run: {"train": cfg[NAME]["train"], "experiment": cfg[NAME]["experiments"][run["experiment"]]},
                kind="gpu", training=True, help="train the ResNet50-FCN for one experiment",
            ),
            "evaluate": Step(
                lazy(f"{__name__}.evaluate", "evaluate_step"), runs=evaluate_runs, pattern="{experiment}/area{tile}",
                inputs=_evaluate_inputs, params=lambda cfg, run: cfg[NAME]["evaluate"], kind="gpu",
                help="predict and score one whole test tile",
            ),
            "report": Step(
                lazy(f"{__name__}.report", "report_step"),
                inputs=lambda cfg, run, layout: {
                    "runs": [layout.run_dir(NAME, "evaluate", f"{r['experiment']}/area{r['tile']}") for r in evaluate_runs(cfg)]
                },
                help="tile OA, per-class tables, timing, prediction images",
            ),
        },
    )
)
