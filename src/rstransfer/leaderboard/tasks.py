"""Competition tasks: the :class:`Task` record a study's ``board.py`` fills in, the task table
(built from the study registry), what the workflow asks of it, and the checks shared by the
tasks' functions (each rejection is one ``SubmissionError`` line).

A task has two sides. The participant's side (``runs``, ``inputs``, ``predictions``) turns a
team's evaluated run into a :class:`Prediction`: *predictions*, never scores. The organiser's
side (``truth_inputs``, ``truth``, ``score``) exports the hidden labels once
(:class:`Truth`, kept in a folder participants cannot read) and scores every prediction
against them when the boards are built.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import RSTransferError
from rstransfer.core.paths import Layout

#: the free-text fields participants fill in (entry, model, details): shown on the boards, so
#: plain words only (no markup characters, no control characters); renderers escape as well
TEXT_RE = re.compile(r"^[A-Za-z0-9 _.,:;=+%#/-]{0,120}$")


class SubmissionError(RSTransferError):
    """A submission is unreadable, incomplete, inconsistent, forged or out of range."""


@dataclass
class Prediction:
    """What a participant submits for one entry: JSON-able ``meta`` and numeric ``arrays``.

    ``meta`` holds ``entry`` and ``model`` (text), ``details`` (text/number values) and ``cost``
    (``train_seconds``, ``gpu_hours``, ``trainable_params``, ``total_params``, ``slurm_job_ids``:
    what the participant reports; the organiser verifies the time with SLURM accounting).
    """

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


@dataclass
class Truth:
    """The organiser's hidden labels of one task: ``meta`` (``benchmark``, the test set's name on
    the board, plus whatever ``score`` needs) and ``arrays``; ``public``: what participants may be
    given for a sealed competition (the labels without the test set), if the task has any."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    public: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """One competition task: where a team's runs are, what it submits, how the organiser scores it."""

    label: str
    metric: str  # key of ``score``'s scores; higher is better
    columns: tuple[tuple[str, str], ...]  # (score key, header), shown as percent on the boards
    entry_label: str  # what one submission is (a policy and seed, an experiment)
    cost_note: str  # what the training time and GPU-hours cover
    runs: Callable[[dict[str, Any], Layout], list[str]]  # participant: evaluated run folders
    inputs: Callable[[dict[str, Any], Layout], list[str]]  # participant: files rule submit waits for
    predictions: Callable[[Path, dict[str, Any], Layout], Prediction]  # participant: run folder -> Prediction
    truth_inputs: Callable[[dict[str, Any], Layout], list[str]]  # organiser: files rule ground_truth waits for
    truth: Callable[[dict[str, Any], Layout], Truth]  # organiser: the hidden labels
    score: Callable[[dict[str, np.ndarray], Truth], dict[str, Any]]  # -> {"scores": {...}, "confusion_matrix": ...}


# ------------------------------------------------------------------------ the task table
def all_tasks() -> dict[str, Task]:
    """Every registered study's tasks, in the order of the studies' names (a stable board
    order whichever study package was imported first)."""
    from rstransfer.studies import load_all  # the studies import this module

    studies = sorted(load_all().values(), key=lambda s: s.name)
    return {key: task for study in studies for key, task in study.leaderboard.items()}


def get_task(name: str) -> Task:
    tasks = all_tasks()
    if name not in tasks:
        raise SubmissionError(f"task {name!r}: unknown (tasks: {', '.join(tasks)})")
    return tasks[name]


def active_tasks(cfg: dict[str, Any]) -> list[str]:
    """Tasks a config takes part in: those of its enabled studies."""
    from rstransfer.studies import load_all

    enabled = {key for study in load_all().values() if study.is_enabled(cfg) for key in study.leaderboard}
    return [name for name in all_tasks() if name in enabled]


def submit_inputs(cfg: dict[str, Any], layout: Layout, task: str) -> list[str]:
    """Files rule ``submit`` waits for (the task's report and evaluated runs)."""
    return get_task(task).inputs(cfg, layout)


def truth_inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    """Files rule ``ground_truth`` waits for (the organiser's prepared data of every task)."""
    return [p for t in active_tasks(cfg) for p in get_task(t).truth_inputs(cfg, layout)]


def final_outputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    """What ``leaderboard:`` adds to the default target: receipts, then the boards."""
    lb = cfg["leaderboard"]
    out = [layout.submit_receipt(t) for t in active_tasks(cfg)] if lb["submit"] else []
    return out + ([layout.board_dir()] if lb["board"] else [])


# --------------------------------------------------------------------------------- checks
@functools.cache
def _team_re() -> re.Pattern[str]:
    """The config schema's pattern for ``team``: one source of truth for every team name."""
    from rstransfer.core.config import load_schema

    return re.compile(str(load_schema()["properties"]["team"]["pattern"]))


def is_team_name(name: Any) -> bool:
    return isinstance(name, str) and _team_re().fullmatch(name) is not None


def load_json(path: Path, hint: str = "evaluate the run first") -> dict[str, Any]:
    if not path.is_file():
        raise SubmissionError(f"{path}: not found ({hint})")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SubmissionError(f"{path}: top level must be an object")
    return data


def need(obj: dict[str, Any], key: str, where: Any, prefix: str = "") -> Any:
    if key not in obj:
        raise SubmissionError(f"{where}: missing key {prefix + key!r}")
    return obj[key]


def check_number(value: Any, key: str, where: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SubmissionError(f"{where}: {key}: expected a number, got {value!r}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise SubmissionError(f"{where}: {key} = {value!r} is out of range [{lo:g}, {hi:g}]")
    return float(value)


def check_count(value: Any, key: str, where: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SubmissionError(f"{where}: {key}: expected a non-negative integer, got {value!r}")
    return value


def check_text(value: Any, key: str, where: Any) -> str:
    if not isinstance(value, str) or not TEXT_RE.match(value):
        raise SubmissionError(
            f"{where}: {key}: {str(value)[:60]!r} is not plain text (letters, digits, space and _.,:;=+%#/- only)"
        )
    return value


def check_label_array(arr: Any, name: str, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """An integer array of ``shape`` with every value in [lo, hi] (a predicted label map)."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iu":
        raise SubmissionError(f"{name}: expected an integer array, got {getattr(arr, 'dtype', type(arr).__name__)}")
    if arr.shape != tuple(shape):
        raise SubmissionError(f"{name}: shape {'x'.join(map(str, arr.shape))}, the test set needs {'x'.join(map(str, shape))}")
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise SubmissionError(f"{name}: values {int(arr.min())}..{int(arr.max())} outside the classes {lo}..{hi}")
    return arr


def read_evaluated(where: Path, keys: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An evaluate step's metrics.json and the training record inside it (``train``), with ``keys``."""
    m = load_json(where)
    for key in (*keys, "train"):
        need(m, key, where)
    if not isinstance(m["train"], dict):
        raise SubmissionError(f"{where}: train: expected an object, got {type(m['train']).__name__}")
    return m, m["train"]


def load_map(path: Path, hint: str, dtype: type[np.integer]) -> np.ndarray:
    """A 2-D integer label map from a ``.npy`` file (no pickles) as ``dtype``; one line naming
    the file otherwise."""
    if not path.is_file():
        raise SubmissionError(f"{path}: not found ({hint})")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise SubmissionError(f"{path}: not a readable .npy array: {' '.join(str(exc).split())[:200]}") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iu" or arr.ndim != 2:
        raise SubmissionError(
            f"{path}: expected a 2-D integer label map, got {getattr(arr, 'dtype', type(arr).__name__)} "
            f"of shape {getattr(arr, 'shape', '?')}"
        )
    cast = arr.astype(dtype)
    if not np.array_equal(cast, arr):
        raise SubmissionError(f"{path}: class ids {int(arr.min())}..{int(arr.max())} do not fit {np.dtype(dtype).name}")
    return cast


def train_cost(t: dict[str, Any], where: Any = "train.json") -> dict[str, Any]:
    """A prediction's self-reported ``cost`` from its training run's train.json."""
    run = t.get("run", {}) if isinstance(t.get("run"), dict) else {}
    ids = t.get("slurm_job_ids") or [run.get("slurm_job_id", "local")]
    return {
        "train_seconds": check_number(need(t, "train_seconds", where), "train_seconds", where, 0.0, math.inf),
        "gpu_hours": check_number(need(t, "gpu_hours", where), "gpu_hours", where, 0.0, math.inf),
        "trainable_params": check_count(need(t, "trainable_params", where), "trainable_params", where),
        "total_params": check_count(need(t, "total_params", where), "total_params", where),
        "slurm_job_ids": [str(j) for j in ids if str(j) not in ("", "local")],
    }
