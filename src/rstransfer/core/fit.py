"""The one training loop every study uses: runtime set-up, optimizer, callbacks, resumable fit
and the training record (``train.json``).

``fit(...)`` = Horovod callbacks + stop-on-signal + per-epoch reseed + recorder (model
selection and early stopping on validation data) + per-epoch checkpoint, resumed from a
checkpoint whose fingerprint matches (settings + content digest of every input), then the
best weights restored. Studies build the model and the data streams; nothing else.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rstransfer.core import checkpoint
from rstransfer.core.config import config_digest
from rstransfer.core.errors import DataFormatError
from rstransfer.core.runinfo import gpu_hours, run_metadata

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

    from rstransfer.core.keras import keras

    threads = threads or env_threads()
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
        except RuntimeError:  # TensorFlow already ran an op in this process (tests): keep its pools
            pass
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def env_threads() -> int | None:
    value = os.environ.get("RSTRANSFER_THREADS")
    return int(value) if value else None


def make_optimizer(fit_cfg: dict[str, Any], lr_scale: float = 1.0) -> Any:
    from rstransfer.core.keras import keras

    cls = getattr(keras.optimizers, OPTIMIZERS[fit_cfg.get("optimizer", "adam")])
    kwargs: dict[str, Any] = {"learning_rate": fit_cfg["learning_rate"] * lr_scale}
    if fit_cfg.get("momentum") and fit_cfg.get("optimizer") in ("sgd", "rmsprop"):
        kwargs["momentum"] = fit_cfg["momentum"]
    if fit_cfg.get("clipnorm"):
        kwargs["clipnorm"] = fit_cfg["clipnorm"]
    return cls(**kwargs)


def compile_model(
    model: Any, fit_cfg: dict[str, Any], dist: Any, loss: Any = "sparse_categorical_crossentropy",
    metrics: list[Any] | None = None,
) -> Any:
    """(Re)compile after any change of ``trainable``; LR scaled by the number of ranks."""
    optimizer = dist.wrap_optimizer(make_optimizer(fit_cfg, lr_scale=dist.size))
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"] if metrics is None else metrics)
    return model


def make_callbacks(
    fit_cfg: dict[str, Any], dist: Any, steps_per_epoch: int, seed: int, ckpt: Path, fingerprint: str,
    reseed: bool = True, extra: list[Any] | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """The one place callbacks are assembled. Order matters: Horovod's first (broadcast,
    metric averaging, warm-up), then stop-on-signal, per-epoch reseeding, the recorder
    (model selection and early stopping on validation data), ``extra`` (e.g. an LR schedule,
    whose state the checkpoint carries) and the checkpointer."""
    parts = checkpoint.make_callbacks(
        monitor=fit_cfg["monitor"], patience=fit_cfg["patience"], seed=seed, ckpt=ckpt,
        fingerprint=fingerprint, dist=dist, stateful=extra or [],
    )
    callbacks = dist.callbacks(
        warmup_epochs=min(fit_cfg.get("warmup_epochs", 0), fit_cfg["epochs"]) if dist.size > 1 else 0,
        initial_lr=fit_cfg["learning_rate"] * dist.size,
        steps_per_epoch=steps_per_epoch,
    )
    callbacks += [parts["stopper"]] + ([parts["reseed"]] if reseed else []) + [parts["recorder"]]
    callbacks += list(extra or []) + [parts["checkpointer"]]
    return callbacks, parts


def fit(
    model: Any,
    make_data: Callable[[int], dict[str, Any]],
    fit_cfg: dict[str, Any],
    seed: int,
    ckpt: Path,
    dist: Any,
    fingerprint_of: dict[str, Any],
    reseed: bool = True,
    extra_callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Resumable fit with model selection on validation data; returns the training record.

    ``make_data(first_epoch)`` -> ``{"train", "val", "steps", "val_steps"}``;
    ``fingerprint_of`` holds everything the checkpoint must match (settings, input digest).
    """
    from rstransfer.models import count_params

    fingerprint = config_digest({**fingerprint_of, "fit": fit_cfg, "seed": seed, "size": dist.size})
    steps = make_data(0)["steps"]
    callbacks, parts = make_callbacks(
        fit_cfg, dist, steps, seed, ckpt, fingerprint, reseed=reseed, extra=extra_callbacks
    )
    wall = checkpoint.resumable_fit(model, callbacks, parts, ckpt, fingerprint, fit_cfg, dist, make_data)
    meta = run_metadata(dist.size)
    return {
        "seed": seed,
        **checkpoint.fit_record(parts["recorder"], wall, fit_cfg),
        "trainable_params": count_params(model.trainable_weights),
        "total_params": count_params(model.weights),
        "batch_size": fit_cfg["batch_size"],
        "world_size": dist.size,
        "gpu_hours": gpu_hours(meta, wall),
        "run": meta,
        # every job that trained an epoch of this fit (one per resume), for `sacct`
        "slurm_job_ids": checkpoint.slurm_job_ids(parts["recorder"].rows, checkpoint.current_slurm_job()),
        "_rows": parts["recorder"].rows,
    }


def history_csv(rows: list[dict[str, Any]]) -> str:
    """Per-epoch history; the columns are those the epochs logged (loss, metrics, val_*), then
    seconds (the rows' SLURM job ids go to train.json's ``slurm_job_ids`` instead)."""
    keys = ["epoch"]
    for row in rows:
        keys += [k for k in row if k not in keys and k not in ("seconds", checkpoint.SLURM_JOB_KEY)]
    keys.append("seconds")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in keys})
    return buf.getvalue()


def save_record(out: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``history.csv`` and ``train.json`` into a (staging) run folder; return the record."""
    from rstransfer.core.io import write_json, write_text

    rows = record.pop("_rows", [])
    write_text(out / "history.csv", history_csv(rows))
    write_json(out / "train.json", record)
    return record


def load_model(path: str | Path) -> Any:
    from rstransfer.core.keras import keras

    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: model file missing")
    return keras.models.load_model(path, compile=False)
