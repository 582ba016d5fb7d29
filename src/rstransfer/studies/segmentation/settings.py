"""Segmentation settings and the study's DAG helpers (no TensorFlow): config checks, tiles,
experiments and where each run's inputs are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rstransfer.core.errors import ConfigError

from . import data as vh

NAME = "segmentation"
MODEL_NAME = "resnet50_fcn"
WEIGHTS_FILE = "weights.h5"
RUN_PREFIX = "run:"
TILES_DIR = "tiles"  # synthetic tile set inside the prepare folder
EXPERIMENT_DEFAULTS: dict[str, Any] = {"pretrained": "none", "augment": True, "policy": "fcn_all"}


def check_segmentation(cfg: dict[str, Any]) -> None:
    """Cross-key checks of the ``segmentation`` section that the schema cannot express."""
    experiments = cfg[NAME]["experiments"]
    check_tiles(cfg)
    for name, exp in experiments.items():
        spec = str(exp["pretrained"])
        if spec.startswith(RUN_PREFIX):
            other = spec[len(RUN_PREFIX):]
            if other not in experiments or other == name:
                raise ConfigError(
                    f"segmentation.experiments.{name}.pretrained: {spec!r} must name another experiment "
                    f"(declared: {sorted(experiments)})"
                )
    for name in experiments:  # run: references must not form a cycle
        seen, cur = {name}, name
        while str(experiments[cur]["pretrained"]).startswith(RUN_PREFIX):
            cur = str(experiments[cur]["pretrained"])[len(RUN_PREFIX):]
            if cur in seen:
                raise ConfigError(f"segmentation.experiments.{name}.pretrained: run: references form a cycle")
            seen.add(cur)


def check_tiles(cfg: dict[str, Any]) -> dict[str, list[int]]:
    """The configured split; tile numbers may appear in one split only."""
    tiles = {k: list(v) for k, v in cfg[NAME]["tiles"].items()}
    seen: dict[int, str] = {}
    for split, numbers in tiles.items():
        for n in numbers:
            if n in seen:
                raise ConfigError(f"segmentation.tiles: tile {n} is in both {seen[n]} and {split}")
            seen[n] = split
    return tiles


def all_tiles(cfg: dict[str, Any]) -> list[int]:
    return sorted({n for split in cfg[NAME]["tiles"].values() for n in split})


def is_synthetic(cfg: dict[str, Any]) -> bool:
    return bool(cfg[NAME]["synthetic"]["enabled"])


def tile_source(cfg: dict[str, Any], prepare_dir: str | Path | None) -> vh.TileSource:
    """The tiles: the user's folders, or the synthetic set inside the prepare folder."""
    root = Path(prepare_dir) / TILES_DIR if is_synthetic(cfg) and prepare_dir is not None else None
    return vh.TileSource.from_config(cfg, synthetic_root=root)


def tile_files(cfg: dict[str, Any], tiles: list[int]) -> list[str]:
    """The user's tile files that a run reads ([] for the synthetic set, made by prepare)."""
    if is_synthetic(cfg):
        return []
    source = vh.TileSource.from_config(cfg)
    for n in tiles:  # a missing tile is named with its split and the config key, before any job runs
        source.check_exists([int(n)], tile_split(cfg, int(n)))
    return [str(p) for n in tiles for p in source.paths(int(n)).values()]


def experiment_settings(cfg: dict[str, Any], name: str | None) -> dict[str, Any]:
    experiments = cfg[NAME]["experiments"]
    if name is None:
        return dict(EXPERIMENT_DEFAULTS)
    if name not in experiments:
        raise ConfigError(f"--run: unknown experiment {name!r} (segmentation.experiments: {sorted(experiments)})")
    return {**EXPERIMENT_DEFAULTS, **experiments[name]}


def pretrained_input(cfg: dict[str, Any], experiment: str, layout: Any) -> dict[str, str]:
    """``run:<experiment>`` -> that run's folder; a weights path -> the file; none/imagenet -> {}
    (a missing local ImageNet file is reported by the model builder with where to put it)."""
    spec = str(experiment_settings(cfg, experiment)["pretrained"])
    if spec.startswith(RUN_PREFIX):
        return {"pretrained": layout.run_dir(NAME, "finetune", spec[len(RUN_PREFIX):])}
    if spec.lower() in ("none", "imagenet"):
        return {}
    return {"pretrained": spec}


def tile_split(cfg: dict[str, Any], tile: int) -> str:
    return next((s for s, tiles in cfg[NAME]["tiles"].items() if tile in tiles), "none")


def evaluate_runs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    seg = cfg[NAME]
    return [{"experiment": e, "tile": t} for e in seg["experiments"] for t in seg["tiles"]["test"]]
