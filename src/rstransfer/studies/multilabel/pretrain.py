"""Step pretrain: BYOL on the pool images of scenario 1 (no labels), resumable, Horovod-ready.

Writes ``encoder.weights.h5`` (the online encoder), ``train.json`` (the training record plus
``"encoder"``: the kwargs of ``rstransfer.models.densenet.build_densenet_encoder`` that rebuild
it, and ``"preprocess"``: how its inputs are scaled) and ``history.csv``. Another step rebuilds the
encoder with ``build_densenet_encoder(**record["encoder"])`` and loads the weights file.

No model selection: BYOL has no validation signal, so the last epoch's weights are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rstransfer.core import dist as dist_mod
from rstransfer.core.fit import compile_model, fit, save_record, setup_runtime
from rstransfer.core.study import StepContext
from rstransfer.models.densenet import build_densenet_encoder, encoder_kwargs

from .model import ENCODER_FILE
from .prepare import load_prepared

NO_SELECTION = "none"  # a monitor no epoch logs: the recorder keeps no "best" weights
PREPROCESS = "x / 255, then ImageNet mean/std per channel (rstransfer.models.densenet.preprocess)"


def encoder_spec(cfg: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(the encoder's builder kwargs without weights, the ImageNet file to start from or None)."""
    section = cfg["multilabel"]
    size = section["image_size"]
    weights = section["backbone"]["weights"]
    init = str(Path(cfg.get("data_root", ".")) / weights) if weights else None
    return encoder_kwargs((size, size, 3), None, section["backbone"]["blocks"], "avg", "encoder"), init


def byol_fit_cfg(byol: dict[str, Any]) -> dict[str, Any]:
    return {
        "epochs": byol["epochs"], "batch_size": byol["batch_size"], "optimizer": byol["optimizer"],
        "learning_rate": byol["learning_rate"], "warmup_epochs": byol["warmup_epochs"],
        "monitor": NO_SELECTION, "patience": byol["epochs"] + 1,
    }


def pretrain_step(ctx: StepContext) -> dict[str, Any]:
    from .byol import build_byol
    from .pipeline import byol_stream, steps_per_epoch

    byol = ctx.section["byol"]
    setup_runtime(byol["seed"], ctx.cfg["deterministic"], ctx.threads)
    dist = dist_mod.init(ctx.cfg["distribution"]["mode"])
    prepared = load_prepared(ctx.inputs["data"])
    images = prepared.scenes.images[prepared.split["pool"]]
    kwargs, init = encoder_spec(ctx.cfg)
    fit_cfg = byol_fit_cfg(byol)
    steps = steps_per_epoch(len(images), byol["batch_size"], dist.size)
    model = build_byol(lambda name: build_densenet_encoder(**{**kwargs, "weights": init, "name": name}),
                       byol["hidden"], byol["dim"], byol["tau_base"], byol["epochs"] * steps)
    compile_model(model, fit_cfg, dist, loss=None, metrics=[])
    model.optimizer.build(model.trainable_variables)  # slots now, not in the first step: one trace, not two

    streams: dict[int, dict[str, Any]] = {}  # core.fit asks twice (steps, then the stream)

    def make_data(first_epoch: int) -> dict[str, Any]:
        if first_epoch not in streams:
            train, n_steps = byol_stream(images, byol["batch_size"], byol["seed"], first_epoch, dist.shard(),
                                         tuple(byol["crop_area"]))
            streams[first_epoch] = {"train": train, "val": None, "steps": n_steps, "val_steps": None}
        return streams[first_epoch]

    record = fit(model, make_data, fit_cfg, byol["seed"], ctx.checkpoint_dir, dist,
                 {"byol": byol, "encoder": kwargs, "init": init, "inputs": ctx.input_digest()}, reseed=False)
    record.pop("best_" + NO_SELECTION, None)
    rows = record.get("_rows") or []
    record["first_loss"] = rows[0]["loss"] if rows else None
    record["final_loss"] = rows[-1]["loss"] if rows else None
    record.update({
        "step": "pretrain", "method": "byol", "encoder": kwargs, "init": init or "random",
        "preprocess": PREPROCESS, "n_images": len(images), "steps_per_epoch": steps,
        "final_tau": float(model.tau()), "byol": byol,
    })
    if dist.is_root:
        model.encoder.save_weights(str(ctx.out / ENCODER_FILE))
        save_record(ctx.out, record)
    dist.barrier()
    record.pop("_rows", None)
    loss = record.get("final_loss")
    return {**record, "line": f"BYOL: {record['epochs_run']} epochs on {len(images)} pool images, "
                              f"{record['train_seconds']:.1f} s" + (f", loss {loss:.3f}" if loss is not None else "")}
