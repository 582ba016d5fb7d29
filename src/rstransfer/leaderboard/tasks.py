"""Competition tasks: the :class:`Task` record a study's ``board.py`` fills in, the task table
(built from the study registry), what the workflow asks of it, and the checks shared by the
tasks' readers and the submissions (each rejection is one ``SubmissionError`` line naming
the file and the key).

A study ranks its runs by registering ``Study(leaderboard={key: Task(...)})``; the task keys
are the folder names under ``submissions/<team>/`` and the receipts' names.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstransfer.core.errors import RSTransferError
from rstransfer.core.paths import Layout

BOARD_FILES = ("csv", "md", "html")
#: ranges of the scores every submission carries (fractions, not percent)
SCORE_RANGES = {"OA": (0.0, 1.0), "AA": (0.0, 1.0), "Kappa": (-1.0, 1.0)}
#: recomputed scores must match the stored ones to this absolute tolerance
TOLERANCE = 1e-6


class SubmissionError(RSTransferError):
    """A submission is incomplete, inconsistent, out of range or would replace another."""


@dataclass(frozen=True)
class Task:
    """One competition task: where a team's runs are, how one reads, what ranks them."""

    label: str
    metric: str  # key of the submission's ``scores``; higher is better
    metric_range: tuple[float, float]
    entry_label: str  # what one submission is (a policy and seed, an experiment)
    cost_note: str  # what the training time and GPU-hours cover
    enabled: Callable[[dict[str, Any]], bool]
    runs: Callable[[dict[str, Any], Layout], list[str]] | None = None  # evaluated run folders
    inputs: Callable[[dict[str, Any], Layout], list[str]] | None = None  # files rule submit waits for
    read: Callable[[Path, dict[str, Any], Layout], dict[str, Any]] | None = None  # run folder -> record fields
    pending: str = ""  # non-empty: not implemented yet, and why


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
    task = tasks[name]
    if task.pending:
        raise SubmissionError(f"task {name!r}: not available yet ({task.pending})")
    return task


def active_tasks(cfg: dict[str, Any]) -> list[str]:
    """Tasks a team's config submits to: enabled by the config and implemented."""
    return [name for name, task in all_tasks().items() if not task.pending and task.enabled(cfg)]


def submit_inputs(cfg: dict[str, Any], layout: Layout, task: str) -> list[str]:
    """Files rule ``submit`` waits for (the task's report and evaluated runs)."""
    inputs = get_task(task).inputs
    return inputs(cfg, layout) if inputs else []


def final_outputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    """What ``leaderboard:`` adds to the default target: receipts, then the boards."""
    lb = cfg["leaderboard"]
    out = [layout.submit_receipt(t) for t in active_tasks(cfg)] if lb["submit"] else []
    return out + ([layout.leaderboard_file(ext) for ext in BOARD_FILES] if lb["board"] else [])


# --------------------------------------------------------------------------------- checks
def load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SubmissionError(f"{path}: not found (evaluate the run first)")
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


def mtime_date(path: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))


def check_scores(values: Any, cm: Any, where: Any, prefix: str = "scores.") -> None:
    """OA/AA/Kappa present and in range, and equal to those recomputed from the confusion matrix."""
    from rstransfer.core.metrics import scores

    if not isinstance(values, dict):
        raise SubmissionError(f"{where}: scores: expected an object")
    for key, (lo, hi) in SCORE_RANGES.items():
        check_number(need(values, key, where, prefix), prefix + key, where, lo, hi)
    n = len(cm) if isinstance(cm, list) else 0
    if n == 0 or any(not isinstance(row, list) or len(row) != n for row in cm):
        raise SubmissionError(f"{where}: confusion_matrix: expected a non-empty square matrix (list of rows)")
    for row in cm:
        for v in row:
            check_count(v, "confusion_matrix", where)
    if sum(map(sum, cm)) == 0:
        raise SubmissionError(f"{where}: confusion_matrix: no test samples")
    recomputed = scores(cm)
    for key in SCORE_RANGES:
        if abs(recomputed[key] - values[key]) > TOLERANCE:
            raise SubmissionError(
                f"{where}: {prefix}{key} = {values[key]!r} does not match the confusion matrix ({recomputed[key]!r})"
            )


def check_cost(cost: dict[str, Any], where: Any, prefix: str = "cost.") -> None:
    """Training seconds and GPU-hours non-negative, trainable <= total parameters."""
    for key in ("train_seconds", "gpu_hours"):
        check_number(need(cost, key, where, prefix), prefix + key, where, 0.0, math.inf)
    trainable = check_count(need(cost, "trainable_params", where, prefix), prefix + "trainable_params", where)
    total = check_count(need(cost, "total_params", where, prefix), prefix + "total_params", where)
    if trainable > total:
        raise SubmissionError(f"{where}: {prefix}trainable_params {trainable} exceeds {prefix}total_params {total}")


# ------------------------------------------------------------- helpers of the tasks' readers
def read_metrics(where: Path, keys: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An evaluate step's metrics.json (its training run's train.json inside as ``train``):
    the keys present, the scores in range and equal to those of its confusion matrix."""
    m = load_json(where)
    for key in ("OA", "AA", "Kappa", "confusion_matrix", "train", *keys):
        need(m, key, where)
    t = m["train"]
    if not isinstance(t, dict):
        raise SubmissionError(f"{where}: train: expected an object, got {type(t).__name__}")
    check_cost(t, where, "train.")
    check_scores({k: m[k] for k in SCORE_RANGES}, m["confusion_matrix"], where, "")
    return m, t


def train_cost(t: dict[str, Any]) -> dict[str, Any]:
    """A submission's ``cost``: the training run's time, GPU-hours and parameter counts."""
    return {k: t[k] for k in ("train_seconds", "gpu_hours", "trainable_params", "total_params")}
