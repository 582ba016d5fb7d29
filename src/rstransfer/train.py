"""Training: compile, callbacks, fit, and the files a training step declares.

``pretrain`` and ``finetune`` both end in ``fit_and_save``; the only difference is how the
model is built (fresh vs. pretrained weights + a policy).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any


from . import checkpoint
from . import dist as dist_mod
from .config import config_digest
from .data.prepare import Prepared, load_prepared
from .data.splits import TRAIN, VAL
from .errors import DataFormatError
from .io import atomic_path, write_json, write_text
from .policies import Policy, apply_policy, get_policy, transfer_weights
from .runinfo import gpu_hours, run_metadata

OPTIMIZERS = {
    "adam": "Adam",
    "sgd": "SGD",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "adamax": "Adamax",
}


def setup_runtime(seed: int, deterministic: bool, threads: int | None) -> None:
    """Seeds and thread pools; must run before TensorFlow executes any op."""
    import tensorflow as tf

    from ._keras import keras

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_optimizer(fit_cfg: dict[str, Any], lr_scale: float = 1.0) -> Any:
    from ._keras import keras

    cls = getattr(keras.optimizers, OPTIMIZERS[fit_cfg["optimizer"]])
    return cls(learning_rate=fit_cfg["learning_rate"] * lr_scale)


def compile_model(model: Any, fit_cfg: dict[str, Any], dist: dist_mod.Dist) -> Any:
    """(Re)compile after any change of ``trainable``; LR scaled by the number of ranks."""
    optimizer = dist.wrap_optimizer(make_optimizer(fit_cfg, lr_scale=dist.size))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def make_callbacks(
    fit_cfg: dict[str, Any], dist: dist_mod.Dist, steps_per_epoch: int, seed: int, ckpt: Path, fingerprint: str
) -> tuple[list[Any], dict[str, Any]]:
    """The one place callbacks are assembled. Order matters: Horovod's first (broadcast,
    metric averaging, warm-up), then stop-on-signal, per-epoch reseeding, the recorder
    (model selection and early stopping on validation data) and the checkpointer."""
    parts = checkpoint.make_callbacks(
        monitor=fit_cfg["monitor"], patience=fit_cfg["patience"], seed=seed, ckpt=ckpt,
        fingerprint=fingerprint, dist=dist,
    )
    callbacks = dist.callbacks(
        warmup_epochs=min(fit_cfg["warmup_epochs"], fit_cfg["epochs"]) if dist.size > 1 else 0,
        initial_lr=fit_cfg["learning_rate"] * dist.size,
        steps_per_epoch=steps_per_epoch,
    )
    callbacks += [parts["stopper"], parts["reseed"], parts["recorder"], parts["checkpointer"]]
    return callbacks, parts


def datasets(
    prepared: Prepared, fit_cfg: dict[str, Any], seed: int, dist: dist_mod.Dist, first_epoch: int = 0
) -> dict[str, Any]:
    from .data.patches import patch_dataset

    rows, cols, y = prepared.pixels(TRAIN)
    vrows, vcols, vy = prepared.pixels(VAL)
    if len(y) == 0 or len(vy) == 0:
        raise DataFormatError(f"{prepared.dataset}: no training or validation pixels in the prepared split")
    # Horovod convention: batch_size is per rank; the global batch is batch_size x ranks and
    # the learning rate is scaled by ranks (compile_model), with warm-up (dist.callbacks).
    per_rank = fit_cfg["batch_size"]
    steps = math.ceil(len(y) / (per_rank * dist.size))
    train = patch_dataset(
        prepared.cube, rows, cols, y, prepared.window, per_rank,
        shuffle=fit_cfg["shuffle"], seed=seed, shard=dist.shard(), steps_per_epoch=steps, first_epoch=first_epoch,
    )
    # every rank must run the same number of validation steps (allreduced metrics)
    val_steps = math.ceil(len(vy) / (per_rank * dist.size))
    val = patch_dataset(
        prepared.cube, vrows, vcols, vy, prepared.window, per_rank,
        shard=dist.shard(), repeat=dist.size > 1,
    )
    return {"train": train, "val": val, "steps": steps, "val_steps": val_steps, "n_train": len(y), "n_val": len(vy)}


def fit_and_save(
    model: Any,
    prepared: Prepared,
    fit_cfg: dict[str, Any],
    seed: int,
    out_dir: Path,
    dist: dist_mod.Dist,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Fit with model selection on validation data; rank 0 writes model.keras, history.csv
    and train.json (atomically, by rename)."""
    from .models import count_params

    ckpt = checkpoint.checkpoint_dir(out_dir)
    fingerprint = config_digest({"fit": fit_cfg, "seed": seed, "extra": extra, "size": dist.size})
    data = datasets(prepared, fit_cfg, seed, dist)  # sizes and steps; streams are rebuilt per resume
    callbacks, parts = make_callbacks(fit_cfg, dist, data["steps"], seed, ckpt, fingerprint)
    recorder = parts["recorder"]
    wall = checkpoint.resumable_fit(
        model, callbacks, parts, ckpt, fingerprint, fit_cfg, dist,
        lambda first_epoch: datasets(prepared, fit_cfg, seed, dist, first_epoch=first_epoch),
    )
    meta = run_metadata(dist.size)
    summary = {
        **extra,
        "seed": seed,
        **checkpoint.fit_record(recorder, wall, fit_cfg),
        "trainable_params": count_params(model.trainable_weights),
        "total_params": count_params(model.weights),
        "n_train": data["n_train"],
        "n_val": data["n_val"],
        "batch_size": fit_cfg["batch_size"],
        "world_size": dist.size,
        "gpu_hours": gpu_hours(meta, wall),
        "run": meta,
    }
    if dist.is_root:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / "model.keras") as tmp:
            model.save(tmp)
        write_text(out_dir / "history.csv", history_csv(recorder.rows))
        write_json(out_dir / "train.json", summary)
        checkpoint.remove_checkpoint(ckpt)
    dist.barrier()
    return {**summary, "is_root": dist.is_root}  # is_root: only rank 0 reports (not saved)


def history_csv(rows: list[dict[str, float]]) -> str:
    keys = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in keys})
    return buf.getvalue()


def input_shape(prepared: Prepared) -> tuple[int, int, int, int]:
    return (prepared.window, prepared.window, int(prepared.cube.shape[-1]), 1)


def load_model(path: str | Path) -> Any:
    from ._keras import keras

    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: model file missing")
    return keras.models.load_model(path, compile=False)


def pretrain(cfg: dict[str, Any], prepared_path: Path, out_dir: Path, threads: int | None = None) -> dict[str, Any]:
    from .models import get_model

    seed = cfg["hsi"]["pretrain_seed"]
    setup_runtime(seed, cfg["train"]["deterministic"], threads)
    dist = dist_mod.init(cfg["distribution"]["mode"])
    prepared = load_prepared(prepared_path)
    model = get_model(cfg["hsi"]["model"])(input_shape(prepared), prepared.n_classes)
    compile_model(model, cfg["train"]["pretrain"], dist)
    return fit_and_save(
        model, prepared, cfg["train"]["pretrain"], seed, out_dir, dist,
        {"step": "pretrain", "dataset": prepared.dataset, "model": cfg["hsi"]["model"], "policy": "pretrain"},
    )


def build_finetune_model(
    model_name: str, policy: Policy, shape: tuple[int, ...], n_classes: int, pretrained: Any | None
) -> tuple[Any, list[str]]:
    """Fresh model for the target; copy pretrained weights unless the policy starts from scratch."""
    from .models import get_model

    model = get_model(model_name)(shape, n_classes, inserted_dense=policy.inserted_dense)
    copied: list[str] = []
    if not policy.from_scratch:
        if pretrained is None:
            raise ValueError(f"policy {policy.name} needs a pretrained model")
        # a head behind an inserted layer reads new features: its old weights do not apply
        copied = transfer_weights(pretrained, model, skip=("dense_3",) if policy.inserted_dense else ())
    apply_policy(model, policy)
    return model, copied


def finetune(
    cfg: dict[str, Any],
    prepared_path: Path,
    pretrained_path: Path | None,
    policy_name: str,
    seed: int,
    out_dir: Path,
    threads: int | None = None,
) -> dict[str, Any]:
    policy = get_policy(policy_name)
    setup_runtime(seed, cfg["train"]["deterministic"], threads)
    dist = dist_mod.init(cfg["distribution"]["mode"])
    prepared = load_prepared(prepared_path)
    pretrained = None if policy.from_scratch else load_model(pretrained_path)  # type: ignore[arg-type]
    if pretrained is not None and input_shape(prepared) != tuple(pretrained.input_shape[1:]):
        raise DataFormatError(
            f"{pretrained_path}: pretrained input {tuple(pretrained.input_shape[1:])} does not match "
            f"target input {input_shape(prepared)} (prepare.window / prepare.pca_components must be equal)"
        )
    model, copied = build_finetune_model(cfg["hsi"]["model"], policy, input_shape(prepared), prepared.n_classes, pretrained)
    compile_model(model, cfg["train"]["finetune"], dist)
    return fit_and_save(
        model, prepared, cfg["train"]["finetune"], seed, out_dir, dist,
        {
            "step": "finetune",
            "dataset": prepared.dataset,
            "model": cfg["hsi"]["model"],
            "policy": policy.name,
            "copied_layers": copied,
            "pretrained": str(pretrained_path) if pretrained_path else None,
        },
    )


def env_threads() -> int | None:
    value = os.environ.get("RSTRANSFER_THREADS")
    return int(value) if value else None
