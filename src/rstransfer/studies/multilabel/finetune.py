"""Step finetune: one active-learning job = one (strategy, scenario, run).

Round 0 fine-tunes the BYOL encoder + a new sigmoid head on ``active.initial`` random pool
labels (the same for every strategy of a scenario and run); each later round queries
``active.batch`` more labels with the strategy (the oracle is the stored multi-labels) and
fine-tunes again, warm-started from the previous round's weights with a fresh optimizer, until
``active.budget`` labels. Every round also predicts the test and validation images, so the
evaluate step can draw F1-vs-labels curves without a GPU.

Rounds are checkpointed (weights, labelled set, predictions) in the run's hidden checkpoint
folder; within a round ``core.fit.fit`` checkpoints every epoch. A SLURM time limit loses at
most the running epoch. Outputs: ``rounds.csv``, ``labelled.json``, ``probs.npz`` (``test`` and
``val``: (rounds, N, labels) sigmoid outputs), ``model.weights.h5`` (last round), ``train.json``
(with the leaderboard's cost fields: train_seconds and gpu_hours over all rounds, the
classifier's trainable/total params, and ``slurm_job_ids``: every SLURM job that trained a round).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core import dist as dist_mod
from rstransfer.core.checkpoint import current_slurm_job, remove_checkpoint, slurm_job_ids
from rstransfer.core.config import config_digest
from rstransfer.core.fit import compile_model, fit, setup_runtime
from rstransfer.core.io import atomic_path, write_json, write_text
from rstransfer.core.report import read_json
from rstransfer.core.study import StepContext

from .active import Query, select
from .model import build_classifier, feature_model, load_encoder
from .pipeline import inference_stream, labelled_stream
from .prepare import load_prepared

PROBS_FILE = "probs.npz"
NO_SELECTION = "none"


def round_sizes(initial: int, batch: int, budget: int) -> list[int]:
    """Labelled-set size at each round: initial, initial + b, ... up to and including budget."""
    sizes = [min(initial, budget)]
    while sizes[-1] < budget:
        sizes.append(min(sizes[-1] + batch, budget))
    return sizes


def run_seed(run: dict[str, Any]) -> int:
    return 1000 * int(run["scenario"]) + int(run["run"])


def initial_labels(pool: np.ndarray, n: int, scenario: int, rep: int) -> np.ndarray:
    """The random initial set: a function of (scenario, run) only, shared by every strategy."""
    return np.random.default_rng([7, scenario, rep]).choice(pool, size=min(n, len(pool)), replace=False)


def finetune_fit_cfg(ft: dict[str, Any]) -> dict[str, Any]:
    return {
        "epochs": ft["epochs"], "batch_size": ft["batch_size"], "optimizer": ft["optimizer"],
        "learning_rate": ft["learning_rate"], "momentum": ft["momentum"], "warmup_epochs": 0,
        "monitor": NO_SELECTION, "patience": ft["epochs"] + 1,
    }


def lr_schedule(ft: dict[str, Any]) -> Any:
    """Learning rate x ``lr_drop_factor`` from epoch ``lr_drop_epoch`` on (a function of the epoch only)."""
    from rstransfer.core.keras import keras

    base, drop, factor = ft["learning_rate"], ft["lr_drop_epoch"], ft["lr_drop_factor"]
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: base * (factor if epoch >= drop else 1.0))


def reset_optimizer(optimizer: Any) -> None:
    """A fresh optimizer for the round (step count and slots zero) without recompiling, so the
    traced train function of round 0 is reused (a retrace costs seconds per round)."""
    variables = optimizer.variables
    for v in variables() if callable(variables) else variables:
        v.assign(np.zeros(v.shape, dtype=v.dtype.as_numpy_dtype))


def predict(model: Any, images: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """``(h, p)`` for ``images`` (features of the head's input, sigmoid outputs)."""
    h, p = model.predict(inference_stream(images, batch), verbose=0)
    return np.asarray(h, np.float32), np.asarray(p, np.float32)


class RoundState:
    """The finished rounds of one job, committed by rewriting ``state.json`` last."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder, self.fingerprint = folder, fingerprint
        self.rounds: list[dict[str, Any]] = []
        self.labelled: list[int] = []
        self.slurm_job_ids: list[str] = []  # every SLURM job that trained a finished round
        self.test: list[np.ndarray] = []
        self.val: list[np.ndarray] = []
        state = folder / "state.json"
        if state.is_file():
            saved = json.loads(state.read_text())
            if saved.get("fingerprint") == fingerprint:
                self.rounds, self.labelled = saved["rounds"], saved["labelled"]
                self.slurm_job_ids = saved.get("slurm_job_ids", [])
                with np.load(folder / "probs.npz") as z:
                    self.test, self.val = list(z["test"]), list(z["val"])
                return
        shutil.rmtree(folder, ignore_errors=True)

    def save(self, model: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / "model.weights.h5", suffix=".weights.h5") as tmp:
            model.save_weights(str(tmp))
        save_probs(self.folder / "probs.npz", self.test, self.val)
        write_json(self.folder / "state.json",
                   {"fingerprint": self.fingerprint, "rounds": self.rounds, "labelled": self.labelled,
                    "slurm_job_ids": self.slurm_job_ids})


def save_probs(path: Path, test: list[np.ndarray], val: list[np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, test=np.stack(test), val=np.stack(val))


def quick_f1(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float]:
    from rstransfer.core.metrics import multilabel_scores

    s = multilabel_scores(y, p, threshold)
    return s["micro_f1"], s["macro_f1"]


def finetune_step(ctx: StepContext) -> dict[str, Any]:
    section = ctx.section
    al, ft = section["active"], section["finetune"]
    strategy, scenario, rep = ctx.run["strategy"], int(ctx.run["scenario"]), int(ctx.run["run"])
    run = {"strategy": strategy, "scenario": scenario, "run": rep}  # the CLI passes strings
    seed = run_seed(run)
    setup_runtime(seed, ctx.cfg["deterministic"], ctx.threads)
    dist = dist_mod.init("none")  # one process per job: many small jobs run side by side
    prepared = load_prepared(ctx.inputs["data"])
    labels, images = prepared.labels, prepared.scenes.images
    test, val = prepared.split["test"], prepared.split["val"]
    pool = np.asarray(prepared.scenarios[str(scenario)]["pool"], dtype=np.int64)
    record = read_json(Path(ctx.inputs["pretrained"]) / "train.json", "rstransfer pretrain --study multilabel")
    model = build_classifier(load_encoder(ctx.inputs["pretrained"], record), labels.shape[1])
    features = feature_model(model)
    sizes = round_sizes(al["initial"], al["batch"], min(al["budget"], len(pool)))
    fit_cfg = finetune_fit_cfg(ft)
    digest = ctx.input_digest()
    state = RoundState(ctx.checkpoint_dir / "rounds",
                       config_digest({"run": run, "active": al, "finetune": ft, "inputs": digest}))
    if state.rounds:
        model.load_weights(str(state.folder / "model.weights.h5"))
        print(f"resuming after round {len(state.rounds)} of {len(sizes)} ({len(state.labelled)} labels)", flush=True)
    else:
        state.labelled = initial_labels(pool, sizes[0], scenario, rep).tolist()
    compile_model(model, fit_cfg, dist, loss="binary_crossentropy", metrics=[])
    model.optimizer.build(model.trainable_variables)  # slots now, not in the first step: one trace, not two
    for r in range(len(state.rounds), len(sizes)):
        labelled = np.asarray(state.labelled, dtype=np.int64)
        reset_optimizer(model.optimizer)
        round_seed = seed * 1000 + r

        streams: dict[int, dict[str, Any]] = {}  # core.fit asks twice (steps, then the stream)

        def make_data(first_epoch: int, idx: np.ndarray = labelled, s: int = round_seed,
                      cache: dict[int, dict[str, Any]] = streams) -> dict[str, Any]:
            if first_epoch not in cache:
                train, steps = labelled_stream(images[idx], labels[idx], ft["batch_size"], s, first_epoch)
                cache[first_epoch] = {"train": train, "val": None, "steps": steps, "val_steps": None}
            return cache[first_epoch]

        ckpt = ctx.checkpoint_dir / f"round{r:03d}"
        fitted = fit(model, make_data, fit_cfg, round_seed, ckpt, dist,
                     {"state": state.fingerprint, "round": r, "labelled": labelled.tolist()},
                     reseed=False, extra_callbacks=[lr_schedule(ft)])
        t0 = time.perf_counter()
        _, p_test = predict(features, images[test], ft["predict_batch"])
        _, p_val = predict(features, images[val], ft["predict_batch"])
        eval_seconds = time.perf_counter() - t0
        picked: list[int] = []
        query_seconds = 0.0
        if r + 1 < len(sizes):
            t0 = time.perf_counter()
            unlabelled = np.setdiff1d(pool, labelled)
            h, p = predict(features, images[unlabelled], ft["predict_batch"])
            q = Query(p, h, al["threshold"], al["candidates"], round_seed)
            picked = unlabelled[select(strategy, q, sizes[r + 1] - len(labelled))].tolist()
            query_seconds = time.perf_counter() - t0
        micro, macro = quick_f1(labels[test], p_test, al["threshold"])
        state.rounds.append({
            "round": r, "n_labelled": len(labelled), "epochs": fitted["epochs_run"],
            "train_seconds": fitted["train_seconds"], "gpu_hours": fitted["gpu_hours"],
            "seconds_per_epoch": fitted["seconds_per_epoch"],
            "query_seconds": query_seconds, "eval_seconds": eval_seconds, "test_micro_f1": micro, "test_macro_f1": macro,
        })
        state.labelled = state.labelled + picked
        state.slurm_job_ids = slurm_job_ids([], *state.slurm_job_ids, *fitted["slurm_job_ids"])
        state.test.append(p_test)
        state.val.append(p_val)
        state.save(model)
        remove_checkpoint(ckpt)
        print(f"round {r}: {len(labelled)} labels, test micro-F1 {micro:.4f}, macro-F1 {macro:.4f}", flush=True)
    return write_outputs(ctx.out, run, model, state, sizes, record)


def write_outputs(out: Path, run: dict[str, Any], model: Any, state: RoundState, sizes: list[int],
                  pretrained: dict[str, Any]) -> dict[str, Any]:
    from rstransfer.models import count_params

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in state.rounds for k in r)))
    writer.writeheader()
    writer.writerows(state.rounds)
    write_text(out / "rounds.csv", buf.getvalue())
    write_json(out / "labelled.json", {"order": state.labelled[: sizes[-1]], "sizes": sizes})
    save_probs(out / PROBS_FILE, state.test, state.val)
    with atomic_path(out / "model.weights.h5", suffix=".weights.h5") as tmp:
        model.save_weights(str(tmp))
    last = state.rounds[-1]
    summary = {
        "step": "finetune", **run, "rounds": len(state.rounds), "sizes": sizes, "encoder": pretrained["encoder"],
        "train_seconds": sum(r["train_seconds"] for r in state.rounds),
        "query_seconds": sum(r["query_seconds"] for r in state.rounds),
        # the cost a leaderboard entry reports: every round's training (state.json of an older
        # version lacks gpu_hours: 0 then), the classifier's size, the jobs for `sacct`
        "gpu_hours": sum(r.get("gpu_hours", 0.0) for r in state.rounds),
        "trainable_params": count_params(model.trainable_weights), "total_params": count_params(model.weights),
        "slurm_job_ids": slurm_job_ids([], *state.slurm_job_ids, current_slurm_job()),
        "final_test_micro_f1": last["test_micro_f1"], "final_test_macro_f1": last["test_macro_f1"],
    }
    write_json(out / "train.json", summary)
    shutil.rmtree(state.folder, ignore_errors=True)
    return {**summary, "line": f"{run['strategy']} scenario {run['scenario']} run {run['run']}: {len(sizes)} rounds to "
                               f"{sizes[-1]} labels, test micro/macro-F1 {last['test_micro_f1']:.4f}/{last['test_macro_f1']:.4f}"}
