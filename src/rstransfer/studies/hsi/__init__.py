"""HybridSN hyperspectral transfer (Roy et al., GRSL 2020; the fine-tuning paper's eight policies).

prepare (source and target scene: split under a buffer, scaling + PCA fitted on training
pixels) -> pretrain (HybridSN on the source, then scored on the source's own test pixels) ->
finetune x policies x seeds (on the target) -> evaluate (test pixels, scene map) -> report
(Table 3/4/5 layouts, leakage figures, timing, accuracy and loss curves, maps).

One ``hsi.prepare.pca_components`` serves both scenes on purpose: HybridSN's ``conv2d_1`` reads
(components - 12) x 32 channels, so a source reduced to 30 components and a target reduced to 15
(the HybridSN paper's per-dataset choice) give kernels of different shapes, and every policy
that freezes ``conv2d_1`` (Network_2/3/4) would freeze a random layer. ``finetune`` refuses
such a pair; config/paper_ip_to_urban.yaml says what it uses instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rstransfer.core.errors import ConfigError
from rstransfer.core.study import Step, Study, lazy
from rstransfer.studies import register

from . import board
from .policies import POLICIES

NAME = "hsi"


def _hybridsn() -> Any:
    from .model import build_hybridsn

    return build_hybridsn((25, 25, 30, 1), 16)


def check(cfg: dict[str, Any]) -> None:
    hsi, datasets = cfg[NAME], cfg.get("datasets", {})
    for key in ("source", "target"):
        if hsi[key] not in datasets:
            raise ConfigError(f"hsi.{key}: unknown dataset {hsi[key]!r} (declared under datasets: {sorted(datasets)})")
    prep = hsi["prepare"]
    if prep["window"] % 2 == 0:
        raise ConfigError(f"hsi.prepare.window: must be odd, got {prep['window']}")
    if prep["pca_components"] < 13:
        raise ConfigError(
            f"hsi.prepare.pca_components: HybridSN's 3-D kernels need >= 13 components, got {prep['pca_components']}"
        )


def _policy_table(shape: dict[str, int]) -> tuple[str, list[dict[str, Any]]]:
    from rstransfer.core.policies import policy_table

    from .model import build_hybridsn

    w, b, c = shape.get("window", 25), shape.get("bands", 30), shape.get("classes", 16)
    rows = policy_table(POLICIES, lambda p: build_hybridsn((w, w, b, 1), c, inserted_dense=p.inserted_dense))
    return f"hybridsn: input {w}x{w}x{b}x1, {c} classes", rows


def _datasets(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"dataset": d} for d in dict.fromkeys([cfg[NAME]["source"], cfg[NAME]["target"]])]


def _dataset_files(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    """The declared scene's files (none for the synthetic scenes): a changed file reruns prepare."""
    from rstransfer.data.readers import dataset_files, load_dataset

    entry = cfg["datasets"].get(run["dataset"])
    if entry is None:
        return {}
    root = Path(cfg.get("data_root", "."))
    files = dataset_files(run["dataset"], entry, root)
    if not all(p.exists() for p in files):
        load_dataset(run["dataset"], entry, root)  # the reader's own one-line error: dataset, path, file, config key
    return {"scene": [str(p) for p in files]}


def _policy_runs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"policy": p, "seed": s} for p in cfg[NAME]["policies"] for s in cfg[NAME]["seeds"]]


def _prepared(cfg: dict[str, Any], layout: Any, which: str) -> str:
    return layout.run_dir(NAME, "prepare", cfg[NAME][which])


def _pretrain_dir(cfg: dict[str, Any], layout: Any) -> str:
    return layout.run_dir(NAME, "pretrain", f"seed{cfg[NAME]['pretrain_seed']}")


def _finetune_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    inputs = {"data": _prepared(cfg, layout, "target")}
    if not POLICIES[run["policy"]].from_scratch:
        inputs["pretrained"] = _pretrain_dir(cfg, layout)
    return inputs


def _run_path(run: dict[str, Any]) -> str:
    return f"{run['policy']}/seed{run['seed']}"


STUDY = register(
    Study(
        name=NAME,
        title="HybridSN hyperspectral transfer (eight fine-tuning policies)",
        schema=yaml.safe_load((Path(__file__).with_name("schema.yaml")).read_text()),
        policies=lambda cfg: list(POLICIES),
        check=check,
        enabled=lambda cfg: cfg[NAME]["enabled"],
        models={"hybridsn": _hybridsn},
        policy_table=_policy_table,
        leaderboard=board.TASKS,
        steps={
            "prepare": Step(
                lazy(f"{__name__}.prepare", "prepare_step"), runs=_datasets, pattern="{dataset}", inputs=_dataset_files,
                params=lambda cfg, run: {"prepare": cfg[NAME]["prepare"], "dataset": cfg["datasets"][run["dataset"]]},
                help="split, scale + PCA (fitted on training pixels), write prepared.h5",
            ),
            "pretrain": Step(
                lazy(f"{__name__}.train", "pretrain_step"), runs=lambda cfg: [{"seed": cfg[NAME]["pretrain_seed"]}], pattern="seed{seed}",
                inputs=lambda cfg, run, layout: {"data": _prepared(cfg, layout, "source")},
                params=lambda cfg, run: cfg[NAME]["train"]["pretrain"], kind="gpu", training=True,
                help="train HybridSN from scratch on hsi.source",
            ),
            "finetune": Step(
                lazy(f"{__name__}.train", "finetune_step"), runs=_policy_runs, pattern="{policy}/seed{seed}", inputs=_finetune_inputs,
                params=lambda cfg, run: {"fit": cfg[NAME]["train"]["finetune"], "copy_head": cfg[NAME]["copy_head"]},
                kind="gpu", training=True, help="fine-tune on hsi.target under one policy and seed",
            ),
            "evaluate": Step(
                lazy(f"{__name__}.evaluate", "evaluate_step"), runs=_policy_runs, pattern="{policy}/seed{seed}",
                inputs=lambda cfg, run, layout: {
                    "data": _prepared(cfg, layout, "target"),
                    "run": layout.run_dir(NAME, "finetune", _run_path(run)),
                },
                params=lambda cfg, run: cfg[NAME]["evaluate"], kind="gpu",
                help="test-pixel metrics, confusion matrix and scene map",
            ),
            "report": Step(
                lazy(f"{__name__}.report", "report_step"),
                inputs=lambda cfg, run, layout: {
                    "runs": [layout.run_dir(NAME, "evaluate", _run_path(r)) for r in _policy_runs(cfg)],
                    "pretrain": _pretrain_dir(cfg, layout),
                },
                params=lambda cfg, run: cfg[NAME]["report"],
                help="Table 3/4/5 layouts, leakage, source model, timing, curves, maps, confusion matrices",
            ),
        },
    )
)
