"""HSI steps prepare, pretrain and finetune (HybridSN on prepared hyperspectral scenes).

``pretrain`` and ``finetune`` differ only in how the model is built (fresh vs. pretrained
weights + a policy); both end in ``core.fit.fit`` and write ``model.keras``, ``history.csv``
and ``train.json`` (with the software and hardware the job ran on: ``environment``) into the
run folder. ``pretrain`` then scores the source model on the source scene's own held-out test
pixels (``evaluate.SOURCE_FILE``), as the paper reports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rstransfer.core import dist as dist_mod
from rstransfer.core.errors import ConfigError, DataFormatError
from rstransfer.core.fit import (
    compile_model,
    fit,
    load_model,
    save_record,
    setup_runtime,
)
from rstransfer.core.policies import Policy, apply_policy, get_policy, transfer_weights
from rstransfer.core.study import StepContext
from rstransfer.data.prepare import Prepared, load_prepared
from rstransfer.data.splits import TRAIN, VAL

from .model import build_hybridsn
from .policies import POLICIES
from .prepare import MODEL_FILE, PREPARED_FILE

HEAD = "dense_3"


def datasets(
    prepared: Prepared, fit_cfg: dict[str, Any], seed: int, dist: dist_mod.Dist, first_epoch: int = 0
) -> dict[str, Any]:
    from rstransfer.data.patches import patch_dataset

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
        prepared.cube, vrows, vcols, vy, prepared.window, per_rank, shard=dist.shard(), repeat=dist.size > 1,
    )
    return {"train": train, "val": val, "steps": steps, "val_steps": val_steps, "n_train": len(y), "n_val": len(vy)}


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """What this job ran on (the paper's Table 3): versions, GPU model as TensorFlow sees it, node."""
    import os
    import platform
    import socket

    import tensorflow as tf

    from rstransfer.core.keras import keras

    gpus = tf.config.list_physical_devices("GPU")
    models = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return {
        "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
        "gpu_model": ", ".join(sorted(set(models))) or "none (CPU only)",
        "gpus_visible": len(gpus),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": f"{keras.__name__} {keras.__version__}",
        "horovod": _version("horovod"),
        "cuda": tf.sysconfig.get_build_info().get("cuda_version", "n/a"),
    }


def fit_and_save(ctx: StepContext, model: Any, prepared: Prepared, fit_cfg: dict[str, Any], seed: int,
                 dist: dist_mod.Dist, extra: dict[str, Any],
                 after_fit: Callable[[Any], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Fit with model selection on validation data; rank 0 writes the run folder (and runs
    ``after_fit(model)``, whose result joins the record)."""
    data = datasets(prepared, fit_cfg, seed, dist)
    record = fit(
        model, lambda first: datasets(prepared, fit_cfg, seed, dist, first_epoch=first), fit_cfg, seed,
        ctx.checkpoint_dir, dist, {"extra": extra, "inputs": ctx.input_digest()},
    )
    record = {**extra, **record, "n_train": data["n_train"], "n_val": data["n_val"], "environment": environment()}
    if dist.is_root:
        model.save(ctx.out / MODEL_FILE)
        if after_fit is not None:
            record.update(after_fit(model))
        save_record(ctx.out, record)
    dist.barrier()
    record.pop("_rows", None)
    return record


def input_shape(prepared: Prepared) -> tuple[int, int, int, int]:
    return (prepared.window, prepared.window, int(prepared.cube.shape[-1]), 1)


def pretrain_step(ctx: StepContext) -> dict[str, Any]:
    hsi = ctx.section
    seed = int(ctx.run["seed"])
    setup_runtime(seed, ctx.cfg["deterministic"], ctx.threads)
    dist = dist_mod.init(ctx.cfg["distribution"]["mode"])
    prepared = load_prepared(Path(ctx.inputs["data"]) / PREPARED_FILE)
    model = build_hybridsn(input_shape(prepared), prepared.n_classes)
    fit_cfg = hsi["train"]["pretrain"]
    compile_model(model, fit_cfg, dist)

    def source_test(trained: Any) -> dict[str, Any]:
        from .evaluate import evaluate_source

        tested = evaluate_source(trained, prepared, hsi["evaluate"]["batch_size"], ctx.out)
        return {"source_test": {k: tested[k] for k in ("OA", "AA", "Kappa", "n_test")}}

    s = fit_and_save(
        ctx, model, prepared, fit_cfg, seed, dist,
        {"step": "pretrain", "dataset": prepared.dataset, "model": hsi["model"], "policy": "pretrain",
         "class_names": list(prepared.class_names)},
        after_fit=source_test,
    )
    src = s.get("source_test")
    s["line"] = f"pretrained: {s['epochs_run']} epochs, {s['train_seconds']:.1f} s" + (
        f"; source test OA {src['OA']:.4f} AA {src['AA']:.4f} Kappa {src['Kappa']:.4f} ({src['n_test']} px)" if src else ""
    )
    return s


def head_copy_allowed(cfg: dict[str, Any], pretrained_classes: list[str] | None, target: Prepared) -> bool:
    """The source head is copied only on request and only when the class names are equal
    (equal class counts alone say nothing about what the classes mean)."""
    return bool(cfg["hsi"]["copy_head"]) and pretrained_classes == list(target.class_names)


def build_finetune_model(
    policy: Policy, shape: tuple[int, ...], n_classes: int, pretrained: Any | None, copy_head: bool = False
) -> tuple[Any, list[str]]:
    """Fresh model for the target; copy pretrained weights unless the policy starts from scratch."""
    model = build_hybridsn(shape, n_classes, inserted_dense=policy.inserted_dense)
    copied: list[str] = []
    if not policy.from_scratch:
        if pretrained is None:
            raise ConfigError(f"policy {policy.name} needs a pretrained model")
        # a head behind an inserted layer reads new features: its old weights never apply
        skip = (HEAD,) if policy.inserted_dense or not copy_head else ()
        copied = transfer_weights(pretrained, model, skip=skip)
    apply_policy(model, policy)
    return model, copied


def finetune_step(ctx: StepContext) -> dict[str, Any]:
    import json

    hsi = ctx.section
    policy = get_policy(POLICIES, ctx.run["policy"], "hsi")
    seed = int(ctx.run["seed"])
    setup_runtime(seed, ctx.cfg["deterministic"], ctx.threads)
    dist = dist_mod.init(ctx.cfg["distribution"]["mode"])
    prepared = load_prepared(Path(ctx.inputs["data"]) / PREPARED_FILE)
    pretrained = pretrained_classes = None
    pre_dir = ctx.inputs.get("pretrained")
    if not policy.from_scratch:
        pretrained = load_model(Path(pre_dir) / MODEL_FILE)
        info = Path(pre_dir) / "train.json"
        pretrained_classes = json.loads(info.read_text()).get("class_names") if info.is_file() else None
        if input_shape(prepared) != tuple(pretrained.input_shape[1:]):
            raise DataFormatError(
                f"{pre_dir}/{MODEL_FILE}: pretrained input {tuple(pretrained.input_shape[1:])} does not match target "
                f"input {input_shape(prepared)} (hsi.prepare.window / hsi.prepare.pca_components must be equal)"
            )
    model, copied = build_finetune_model(
        policy, input_shape(prepared), prepared.n_classes, pretrained,
        copy_head=head_copy_allowed(ctx.cfg, pretrained_classes, prepared),
    )
    fit_cfg = hsi["train"]["finetune"]
    compile_model(model, fit_cfg, dist)
    s = fit_and_save(
        ctx, model, prepared, fit_cfg, seed, dist,
        {"step": "finetune", "dataset": prepared.dataset, "model": hsi["model"], "policy": policy.name,
         "copied_layers": copied, "pretrained": str(pre_dir) if pre_dir else None},
    )
    s["line"] = (f"finetuned {policy.name} seed {seed}: {s['trainable_params']} trainable params, "
                 f"{s['epochs_run']} epochs, {s['train_seconds']:.1f} s")
    return s
