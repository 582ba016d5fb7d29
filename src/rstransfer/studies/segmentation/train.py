"""Segmentation steps prepare (tiles -> patch files) and finetune (one ResNet50-FCN experiment).

The FCN weights are saved alone (``weights.h5``, layer names kept) rather than as
``model.keras``: tf_keras reads a 95 MB ``.keras`` archive's weights through the zip stream and
needs about 3 minutes for it (measured: 173 s), while rebuilding the FCN and loading
``weights.h5`` takes about 3 s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rstransfer.core.errors import ConfigError, DataFormatError
from rstransfer.core.study import StepContext

from . import patches as vp
from .data import SPLIT_FILES
from .settings import (
    MODEL_NAME,
    NAME,
    RUN_PREFIX,
    TILES_DIR,
    WEIGHTS_FILE,
    all_tiles,
    experiment_settings,
    is_synthetic,
    tile_source,
)


def prepare_step(ctx: StepContext) -> dict[str, Any]:
    """Write the synthetic tile set first when it is the data, then cut train/val patches."""
    from .synthetic import write_synthetic_tiles

    seg = ctx.section
    if is_synthetic(ctx.cfg):
        syn = seg["synthetic"]
        write_synthetic_tiles(ctx.out / TILES_DIR, all_tiles(ctx.cfg), syn["height"], syn["width"], syn["seed"])
    source = tile_source(ctx.cfg, ctx.out)
    outs = {split: ctx.out / SPLIT_FILES[split] for split in ("train", "val")}
    s = vp.prepare_vaihingen(ctx.cfg, outs, source)
    sp = s["splits"]
    s["line"] = (f"prepared Vaihingen: {sp['train']['patches']} train / {sp['val']['patches']} val patches of "
                 f"{s['patch_size']} px (stride {s['stride']}, {s['channels']} channels)")
    return s


def _load_splits(data_dir: Path, dist: Any) -> tuple[vp.PatchSet, vp.PatchSet]:
    """This rank's shard of the train and val patches (sharded before any shuffling)."""
    train = vp.load_patches(data_dir / SPLIT_FILES["train"], dist.shard())
    val = vp.load_patches(data_dir / SPLIT_FILES["val"], dist.shard())
    if len(train) == 0 or len(val) == 0:
        raise DataFormatError(f"{data_dir}: no training or validation patches")
    if train.input_shape != val.input_shape:
        raise DataFormatError(f"{data_dir}: train patches {train.input_shape} but val patches {val.input_shape}")
    return train, val


def _weights_file(spec: str, pretrained_input: str | None) -> Path | None:
    """none -> None; run:<experiment> -> that run's weights.h5; imagenet or a path -> the file."""
    from .model import resolve_weights

    if spec.lower() == "none":
        return None
    if spec.startswith(RUN_PREFIX):
        return Path(pretrained_input or "") / WEIGHTS_FILE
    return resolve_weights(spec)


def finetune_step(ctx: StepContext) -> dict[str, Any]:
    """Train one experiment (starting weights, augmentation, policy from segmentation.experiments).

    ``core.fit.fit`` with ReduceLROnPlateau (its counters are checkpointed too). The per-epoch
    reseed is off: it retraces the train function every epoch (about 20 s for ResNet50 on a
    CPU) and the FCN has no dropout; data order and augmentation depend on (seed, epoch)
    through ``patch_dataset`` instead.
    """
    from rstransfer.core import dist as dist_mod
    from rstransfer.core.fit import compile_model, fit, save_record, setup_runtime
    from rstransfer.core.keras import keras
    from rstransfer.core.policies import apply_policy, get_policy

    from .model import build_resnet50_fcn
    from .policies import POLICIES

    seg = ctx.section
    experiment = ctx.run["experiment"]
    settings = experiment_settings(ctx.cfg, experiment)
    pol = get_policy(POLICIES, settings["policy"], NAME)
    weights_file = _weights_file(str(settings["pretrained"]), ctx.inputs.get("pretrained"))  # fail before data
    fit_cfg, seed = seg["train"], seg["seed"]
    setup_runtime(seed, ctx.cfg["deterministic"], ctx.threads)
    dist = dist_mod.init(ctx.cfg["distribution"]["mode"])
    train, val = _load_splits(Path(ctx.inputs["data"]), dist)
    shape = train.input_shape
    if weights_file is not None and shape[-1] != 3:
        raise ConfigError(
            f"segmentation.experiments.{experiment}.pretrained: pretrained ResNet50 weights have 3 input "
            f"channels, the patches have {shape[-1]} (segmentation.dsm: true); use pretrained: none"
        )
    model = build_resnet50_fcn(shape, len(train.class_names), weights_file, bn_momentum=fit_cfg["bn_momentum"])
    apply_policy(model, pol)
    compile_model(model, fit_cfg, dist)
    per_rank = fit_cfg["batch_size"]  # Horovod: per rank; every rank runs the same number of steps
    steps = max(1, math.ceil(len(train) / per_rank))
    val_steps = max(1, math.ceil(len(val) / per_rank))

    def make_data(first_epoch: int) -> dict[str, Any]:
        return {
            "train": vp.patch_dataset(
                train, per_rank, augment=settings["augment"], shuffle=fit_cfg["shuffle"], seed=seed,
                steps_per_epoch=steps, first_epoch=first_epoch,
            ),
            "val": vp.patch_dataset(val, per_rank, repeat=dist.size > 1),
            "steps": steps,
            "val_steps": val_steps,
        }

    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor=fit_cfg["monitor"], factor=fit_cfg["reduce_lr_factor"], patience=fit_cfg["reduce_lr_patience"],
        min_lr=fit_cfg["min_lr"], verbose=1 if dist.is_root else 0,
    )
    record = fit(
        model, make_data, fit_cfg, seed, ctx.checkpoint_dir, dist,
        {"settings": settings, "shape": shape, "inputs": ctx.input_digest()},
        reseed=False, extra_callbacks=[plateau],
    )
    epoch_seconds = [r["seconds"] for r in record["_rows"]]
    record = {
        "step": "finetune", "experiment": experiment, "model": MODEL_NAME,
        "pretrained": settings["pretrained"], "pretrained_file": None if weights_file is None else str(weights_file),
        "augment": bool(settings["augment"]), "policy": pol.name, "input_shape": list(shape),
        "class_names": list(train.class_names), **record,
        # patches seen per second over all ranks (epoch time includes validation)
        "samples_per_second": steps * per_rank * dist.size * len(epoch_seconds) / sum(epoch_seconds)
        if epoch_seconds else 0.0,
        "n_train": len(train) * dist.size, "n_val": len(val) * dist.size,
    }
    if dist.is_root:
        model.save_weights(str(ctx.out / WEIGHTS_FILE), save_format="h5")
        save_record(ctx.out, record)
    dist.barrier()
    record.pop("_rows", None)
    record["line"] = (f"trained {experiment} (pretrained {record['pretrained']}, augment {record['augment']}, "
                      f"{pol.name}): {record['trainable_params']:,} trainable params, {record['epochs_run']} epochs, "
                      f"{record['train_seconds']:.1f} s")
    return record
