"""HSI prepare step: read a declared scene, split it, fit scaling + PCA on training pixels only,
and write ``prepared.h5`` (no TensorFlow here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rstransfer.core.errors import ConfigError
from rstransfer.core.study import StepContext

PREPARED_FILE = "prepared.h5"  # the prepare run folder's file
MODEL_FILE = "model.keras"  # the pretrain and finetune run folders' model (here: no TensorFlow import)


def prepare_step(ctx: StepContext) -> dict[str, Any]:
    from rstransfer.data.prepare import prepare_scene
    from rstransfer.data.readers import load_dataset

    key = ctx.run["dataset"]
    cfg = ctx.cfg
    if key not in cfg["datasets"]:
        raise ConfigError(f"hsi: unknown dataset {key!r} (declared under datasets: {sorted(cfg['datasets'])})")
    scene = load_dataset(key, cfg["datasets"][key], Path(cfg.get("data_root", ".")))
    summary = prepare_scene(scene, cfg, ctx.out / PREPARED_FILE, origin=key)
    leak = summary["leakage"]
    return {
        **summary,
        "line": f"prepared {key}: {summary['shape']}; split {summary['split']['protocol']}, leakage "
        f"{leak['test_pixels_with_train_in_window']}/{leak['test_pixels']} test px",
    }
