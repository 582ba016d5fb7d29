"""Pretrained features + SVM / random forest: the baseline every transfer study is measured against.

prepare (scene images, resized once) -> pretrain = feature extraction (one HDF5 cache per
extractor and dataset; GPU job) -> finetune x classifiers (validation search per seed; CPU job)
-> evaluate (test rows, prediction time) -> report (method x accuracy x fit / inference time,
linear probe per pretrained backbone, feature-space figure).

Run folders: ``prepare/{dataset}``, ``pretrain/{dataset}/{extractor}``,
``finetune|evaluate/{dataset}/{task}/{extractor}/{classifier}``. The pixel-wise dataset ``hsi``
reads the HSI study's prepared target scene and pretrained HybridSN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rstransfer.core.errors import ConfigError
from rstransfer.core.paths import Layout
from rstransfer.core.study import Step, Study, lazy
from rstransfer.studies import register

from .classifiers import PROBE
from .extract import EXTRACTORS

NAME = "features"
PIXEL = "hsi"
SCENE_DATASETS = ("ucmerced", "synthetic")


def domain(dataset: str) -> str:
    """``pixel`` for the HSI scene, ``scene`` for image sets."""
    return "pixel" if dataset == PIXEL else "scene"


def _tasks(cfg: dict[str, Any], dataset: str) -> list[str]:
    return ["single"] if domain(dataset) == "pixel" else list(cfg[NAME]["tasks"])


def extract_runs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    s = cfg[NAME]
    return [{"dataset": d, "extractor": e} for d in s["datasets"] for e in s["extractors"]
            if EXTRACTORS[e].domain == domain(d)]


def classifier_runs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (dataset, task, extractor, classifier); pretrained backbones and the random floor always
    get the linear probe."""
    runs = []
    for r in extract_runs(cfg):
        names = list(cfg[NAME]["classifiers"])
        if EXTRACTORS[r["extractor"]].probe and PROBE not in names:
            names.append(PROBE)
        runs += [{**r, "task": t, "classifier": c} for t in _tasks(cfg, r["dataset"]) for c in names]
    return runs


def _classifier_path(run: dict[str, Any]) -> str:
    return f"{run['dataset']}/{run['task']}/{run['extractor']}/{run['classifier']}"


def _prepare_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    if run["dataset"] != "ucmerced":
        return {}
    u = cfg[NAME]["ucmerced"]
    root = Path(cfg["data_root"])
    inputs = {"image_dir": str(Path(u["images"]) if Path(u["images"]).is_absolute() else root / u["images"])}
    if "multi" in cfg[NAME]["tasks"]:
        inputs["labels"] = str(Path(u["labels"]) if Path(u["labels"]).is_absolute() else root / u["labels"])
    return inputs


def _pretrain_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    d, e = run["dataset"], run["extractor"]
    if domain(d) == "pixel":
        inputs = {"data": layout.run_dir("hsi", "prepare", cfg["hsi"]["target"])}
        if e == "hybridsn":
            inputs["model"] = layout.run_dir("hsi", "pretrain", f"seed{cfg['hsi']['pretrain_seed']}")
        return inputs
    inputs = {"images": layout.run_dir(NAME, "prepare", d)}
    if e == "byol":
        inputs["byol"] = layout.run_dir("multilabel", "pretrain")
    if e == "imagenet" and Path(cfg[NAME]["imagenet_weights"]).is_file():
        inputs["weights"] = cfg[NAME]["imagenet_weights"]
    return inputs


def pretrain_params(cfg: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    s = cfg[NAME]
    keys = EXTRACTORS[run["extractor"]].keys + ("batch_size",)
    extra = {"target": cfg["hsi"]["target"]} if domain(run["dataset"]) == "pixel" else {}
    return {"extractor": run["extractor"], **{k: s[k] for k in keys}, **extra}


def _finetune_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    return {"features": layout.run_dir(NAME, "pretrain", f"{run['dataset']}/{run['extractor']}")}


def _evaluate_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    return {**_finetune_inputs(cfg, run, layout), "run": layout.run_dir(NAME, "finetune", _classifier_path(run))}


def _finetune_params(cfg: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    s = cfg[NAME]
    split = s["split"] if domain(run["dataset"]) == "scene" else "hsi"
    return {"grid": s["grids"][run["classifier"]], "seeds": s["seeds"], "split": split}


def hsi_policy_runs(cfg: dict[str, Any], layout: Any) -> list[str]:
    """The HSI study's evaluate folders (fine-tuning policies), when it runs beside this study."""
    from rstransfer.studies import STUDIES

    hsi = STUDIES.get("hsi")
    if PIXEL not in cfg[NAME]["datasets"] or hsi is None or not hsi.is_enabled(cfg):
        return []
    step = hsi.steps["evaluate"]
    return [layout.run_dir("hsi", "evaluate", step.run_path(r)) for r in hsi.runs(cfg, "evaluate")]


def _report_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    inputs = {
        "runs": [layout.run_dir(NAME, "evaluate", _classifier_path(r)) for r in classifier_runs(cfg)],
        "features": [layout.run_dir(NAME, "pretrain", f"{r['dataset']}/{r['extractor']}") for r in extract_runs(cfg)],
    }
    policies = hsi_policy_runs(cfg, layout)
    if policies:
        inputs["policies"] = policies
    return inputs


def check(cfg: dict[str, Any]) -> None:
    """Cross-key checks: split fractions, the ImageNet file, the studies this one reads."""
    s = cfg[NAME]
    if s["split"]["train"] + s["split"]["val"] + s["split"]["test"] > 1 + 1e-9:
        raise ConfigError(f"features.split: train + val + test must be <= 1, got {s['split']}")
    scene = [d for d in s["datasets"] if domain(d) == "scene"]
    if scene and "imagenet" in s["extractors"] and not Path(s["imagenet_weights"]).is_file():
        raise ConfigError(
            f"features.imagenet_weights: {s['imagenet_weights']} not found (the local Keras file "
            "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5; nothing is downloaded) - or drop imagenet "
            "from features.extractors"
        )
    layout = Layout.from_config(cfg)
    needs = [(PIXEL in s["datasets"], "hsi", "prepare", "features.datasets: hsi"),
             (bool(scene) and "byol" in s["extractors"], "multilabel", "pretrain", "features.extractors: byol")]
    for needed, study, step, key in needs:
        if needed and not cfg.get(study, {}).get("enabled") and not Path(layout.run_dir(study, step)).exists():
            raise ConfigError(f"{key} reads the {study} study's {step} output: enable it ({study}.enabled: true) "
                              f"or run `rstransfer {step} --study {study}` first")


register(
    Study(
        name=NAME,
        title="Pretrained features + SVM / random forest (baseline)",
        schema=yaml.safe_load(Path(__file__).with_name("schema.yaml").read_text()),
        policies=lambda cfg: list(cfg[NAME]["classifiers"]),
        check=check,
        steps={
            "prepare": Step(
                lazy(f"{__name__}.steps", "prepare_step"),
                runs=lambda cfg: [{"dataset": d} for d in cfg[NAME]["datasets"] if d in SCENE_DATASETS],
                pattern="{dataset}", inputs=_prepare_inputs,
                params=lambda cfg, run: {"dataset": run["dataset"], "image_size": cfg[NAME]["image_size"],
                                         "tasks": cfg[NAME]["tasks"], **{run["dataset"]: cfg[NAME].get(run["dataset"])}},
                help="read (or generate) the scene images once, resized to features.image_size",
            ),
            "pretrain": Step(
                lazy(f"{__name__}.steps", "pretrain_step"), runs=extract_runs, pattern="{dataset}/{extractor}",
                inputs=_pretrain_inputs, params=pretrain_params, kind="gpu",
                help="extract one feature cache (features.h5) per extractor and dataset",
            ),
            "finetune": Step(
                lazy(f"{__name__}.steps", "finetune_step"), runs=classifier_runs,
                pattern="{dataset}/{task}/{extractor}/{classifier}", inputs=_finetune_inputs,
                params=_finetune_params, help="validation search of one classifier, once per seed",
            ),
            "evaluate": Step(
                lazy(f"{__name__}.steps", "evaluate_step"), runs=classifier_runs,
                pattern="{dataset}/{task}/{extractor}/{classifier}", inputs=_evaluate_inputs,
                help="test-row scores and prediction time per seed",
            ),
            "report": Step(
                lazy(f"{__name__}.report", "report_step"), inputs=_report_inputs,
                params=lambda cfg, run: {"projection": cfg[NAME]["projection"], "points": cfg[NAME]["figure_points"]},
                help="method x accuracy x time table, linear probes, feature-space figure",
            ),
        },
    )
)
