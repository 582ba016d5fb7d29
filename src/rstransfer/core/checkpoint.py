"""Resumable training: per-epoch checkpoints, clean stop on SLURM's time-limit signals.

A training step checkpoints after every epoch (model, optimizer, epoch, the recorder's
history/best weights; rank 0 writes). On SIGUSR1 (``#SBATCH --signal=USR1@<s>``) or SIGTERM
(SLURM's time limit) it finishes the current batch, keeps the last complete epoch's
checkpoint and exits with ``EXIT_RESUMABLE``. The next run (Snakemake rerun or ``scontrol
requeue``) resumes from it. Because each epoch's data order and dropout masks depend only on
(seed, epoch) (``EpochReseed``, ``patch_dataset(steps_per_epoch=...)``), the resumed run ends
bit-identical to an uninterrupted one on the same machine.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import RSTransferError
from rstransfer.core.io import write_json, write_text

EXIT_RESUMABLE = 75  # EX_TEMPFAIL: "try again"; the checkpoint makes the retry cheap
SLURM_JOB_KEY = "slurm_job"  # the recorder rows' SLURM job id ("" outside SLURM); not a history.csv column


def current_slurm_job() -> str:
    """The SLURM job this process runs in ("" outside SLURM)."""
    return os.environ.get("SLURM_JOB_ID", "")


def slurm_job_ids(rows: list[dict[str, Any]], *more: str) -> list[str]:
    """The SLURM jobs that trained ``rows`` (epochs of a fit, over its resumes) plus ``more``:
    unique, non-empty, in numeric order (what ``sacct -j`` is asked about)."""
    ids = {str(r.get(SLURM_JOB_KEY) or "") for r in rows} | {str(m or "") for m in more}
    ids -= {"", "local"}
    return sorted(ids, key=lambda j: (0, int(j), j) if j.isdigit() else (1, 0, j))


class TrainingInterrupted(RSTransferError):
    """Training stopped on a signal after checkpointing; rerun to resume."""


def checkpoint_dir(out_dir: Path) -> Path:
    """Hidden sibling of the run folder: not a declared output, so Snakemake keeps it."""
    return out_dir.parent / f".{out_dir.name}.checkpoint"


def make_callbacks(
    *,
    monitor: str,
    patience: int,
    seed: int,
    ckpt: Path,
    fingerprint: str,
    dist: Any,
    stateful: list[Any] | None = None,
) -> dict[str, Any]:
    """Build the stop-on-signal, reseed, recorder and checkpoint callbacks (in that order).

    ``stateful``: further callbacks (e.g. ReduceLROnPlateau) whose plain attributes (counters,
    best value) the checkpoint carries, so a resumed run continues them exactly."""
    import tensorflow as tf

    from rstransfer.core.keras import keras

    class StopOnSignal(keras.callbacks.Callback):
        """SIGUSR1/SIGTERM -> stop after the current batch (all ranks agree)."""

        def __init__(self) -> None:
            super().__init__()
            self.flag = False
            self.interrupted = False
            self.signal_name = ""
            self._old: dict[int, Any] = {}

        def _handler(self, signum: int, frame: Any) -> None:
            self.flag = True
            self.signal_name = signal.Signals(signum).name

        def on_train_begin(self, logs: dict | None = None) -> None:
            for sig in (signal.SIGUSR1, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if dist.any(self.flag):
                self.interrupted = True
                self.model.stop_training = True

        def on_train_end(self, logs: dict | None = None) -> None:
            for sig, old in self._old.items():
                signal.signal(sig, old)

    stopper = StopOnSignal()

    class EpochReseed(keras.callbacks.Callback):
        """Dropout masks of epoch e depend on (seed, e) only: reseed and retrace per epoch."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            tf.random.set_seed(seed * 100_003 + epoch)
            self.model.train_function = self.model.make_train_function(force=True)

    class Recorder(keras.callbacks.Callback):
        """History, epoch times, best-on-validation weights and early stopping, as plain
        state that a checkpoint can carry (Keras' EarlyStopping state would be lost)."""

        def __init__(self) -> None:
            super().__init__()
            self.monitor = monitor
            self.mode_max = monitor.endswith("accuracy")
            self.best = -math.inf if self.mode_max else math.inf
            self.best_epoch = -1
            self.best_weights: list[np.ndarray] | None = None
            self.rows: list[dict[str, Any]] = []  # numbers, plus "slurm_job" (str)
            self.resumed_from = 0
            self.saved_callbacks: list[dict[str, Any]] = []
            self._t0 = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if stopper.interrupted:  # a partial epoch: the checkpoint keeps the last full one
                return
            logs = dict(logs or {})
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items() if k != "lr"}}
            row["seconds"] = time.perf_counter() - self._t0
            row[SLURM_JOB_KEY] = current_slurm_job()  # a resumed fit spans several jobs: each epoch says which
            self.rows.append(row)
            value = logs.get(self.monitor)
            if value is not None and (value > self.best if self.mode_max else value < self.best):
                self.best, self.best_epoch = float(value), epoch + 1
                self.best_weights = self.model.get_weights()
            if self.best_epoch > 0 and epoch + 1 - self.best_epoch >= patience:
                self.model.stop_training = True

        def state(self) -> dict[str, Any]:
            return {
                "rows": self.rows, "best": self.best, "best_epoch": self.best_epoch,
                "callbacks": [callback_state(cb) for cb in stateful or []],
            }

        def load_state(self, state: dict[str, Any], best_weights: list[np.ndarray] | None) -> None:
            self.rows = state["rows"]
            self.best = state["best"]
            self.best_epoch = state["best_epoch"]
            self.saved_callbacks = state.get("callbacks", [])
            self.best_weights = best_weights
            self.resumed_from = len(self.rows)

        def restore_callbacks(self) -> None:
            """Put the saved counters back into ``stateful``. Runs from the checkpointer's
            on_train_begin, i.e. after theirs: ReduceLROnPlateau resets wait/best there."""
            for cb, saved in zip(stateful or [], self.saved_callbacks, strict=False):
                for key, value in saved.items():
                    setattr(cb, key, value)

    recorder = Recorder()

    class Checkpointer(keras.callbacks.Callback):
        """Last in the callback list: restores the stateful callbacks after they reset."""

        def on_train_begin(self, logs: dict | None = None) -> None:
            recorder.restore_callbacks()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if stopper.interrupted:
                return
            if dist.is_root:
                save_checkpoint(ckpt, self.model, epoch + 1, recorder, fingerprint)
            dist.barrier()

    return {"stopper": stopper, "reseed": EpochReseed(), "recorder": recorder, "checkpointer": Checkpointer()}


def callback_state(cb: Any) -> dict[str, Any]:
    """A callback's plain attributes (numbers, strings, flags): its counters and best value."""
    out = {}
    for key, value in vars(cb).items():
        if isinstance(value, np.generic):
            value = value.item()
        # verbose stays per rank (only rank 0 prints)
        if isinstance(value, bool | int | float | str) and not key.startswith("_") and key != "verbose":
            out[key] = value
    return out


def resumable_fit(
    model: Any,
    callbacks: list[Any],
    parts: dict[str, Any],
    ckpt: Path,
    fingerprint: str,
    fit_cfg: dict[str, Any],
    dist: Any,
    make_data: Any,
) -> float:
    """Restore a matching checkpoint, fit the remaining epochs, restore the best weights.

    ``make_data(first_epoch)`` returns ``{"train", "val", "steps", "val_steps"}`` (the training
    stream starts at ``first_epoch``). Returns the wall seconds of all epochs, including the
    ones done before a resume. Raises TrainingInterrupted after a stop signal.
    """
    recorder, stopper = parts["recorder"], parts["stopper"]
    first_epoch = load_checkpoint(ckpt, model, recorder, fingerprint)
    if first_epoch and dist.is_root:
        print(f"resuming from {ckpt} after epoch {first_epoch}", flush=True)
    data = make_data(first_epoch)
    t0 = time.perf_counter()
    early_stopped = first_epoch and recorder.best_epoch > 0 and first_epoch - recorder.best_epoch >= fit_cfg["patience"]
    if first_epoch < fit_cfg["epochs"] and not early_stopped:
        model.fit(
            data["train"],
            epochs=fit_cfg["epochs"],
            initial_epoch=first_epoch,
            steps_per_epoch=data["steps"],
            validation_data=data["val"],
            validation_steps=data["val_steps"] if dist.size > 1 else None,
            callbacks=callbacks,
            verbose=2 if dist.is_root else 0,
        )
    if stopper.interrupted:
        raise TrainingInterrupted(
            f"{stopper.signal_name or 'signal'} received: stopped after {len(recorder.rows)} complete epoch(s); "
            f"checkpoint in {ckpt}; rerun the same step to resume"
        )
    if recorder.best_weights is not None:
        model.set_weights(recorder.best_weights)
    return time.perf_counter() - t0 + sum(r["seconds"] for r in recorder.rows[: recorder.resumed_from])


def fit_record(recorder: Any, wall: float, fit_cfg: dict[str, Any]) -> dict[str, Any]:
    """The timing and model-selection fields every training summary (train.json) carries."""
    epoch_seconds = [r["seconds"] for r in recorder.rows]
    return {
        "train_seconds": wall,
        "epochs_run": len(recorder.rows),
        "resumed_after_epoch": recorder.resumed_from,
        "best_epoch": recorder.best_epoch,
        "best_" + fit_cfg["monitor"]: recorder.best,
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else 0.0,
    }


def save_checkpoint(ckpt: Path, model: Any, epochs_done: int, recorder: Any, fingerprint: str) -> None:
    """Write epoch-<n>/ completely, then point ``latest`` at it (atomic rename), then prune."""
    import tensorflow as tf

    ckpt.mkdir(parents=True, exist_ok=True)
    target = ckpt / f"epoch-{epochs_done:05d}"
    if target.exists():
        shutil.rmtree(target)
    tmp = ckpt / f".tmp-{target.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(str(tmp / "tf"))
    if recorder.best_weights is not None:
        np.savez(tmp / "best_weights.npz", *recorder.best_weights)
    write_json(tmp / "state.json", {"epochs_done": epochs_done, "fingerprint": fingerprint, **recorder.state()})
    tmp.rename(target)
    write_text(ckpt / "latest", target.name + "\n")
    for old in ckpt.glob("epoch-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(ckpt: Path, model: Any, recorder: Any, fingerprint: str) -> int:
    """Restore model, optimizer and recorder; return the number of completed epochs (0 = none).

    A checkpoint written for other settings (fingerprint mismatch) is ignored, not mixed in.
    """
    import tensorflow as tf

    latest = ckpt / "latest"
    if not latest.exists():
        return 0
    folder = ckpt / latest.read_text().strip()
    state = json.loads((folder / "state.json").read_text())
    if state["fingerprint"] != fingerprint:
        return 0
    model.optimizer.build(model.trainable_variables)
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).read(str(folder / "tf")).assert_existing_objects_matched()
    best = None
    if (folder / "best_weights.npz").exists():
        with np.load(folder / "best_weights.npz") as z:
            best = [z[f"arr_{i}"] for i in range(len(z.files))]
    recorder.load_state(state, best)
    return int(state["epochs_done"])


def remove_checkpoint(ckpt: Path) -> None:
    shutil.rmtree(ckpt, ignore_errors=True)
