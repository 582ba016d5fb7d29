"""Leaderboard: teams' evaluated runs become immutable submissions, ranked on static boards.

``submit`` (one team, one task) turns each evaluated run of the team's config into
``<dir>/submissions/<team>/<task>/<id>.json``; the id is a hash of the content, so a rerun
with unchanged results writes nothing, and a submission is never overwritten or deleted.
``build`` reads every team's submissions under ``<dir>`` and writes
``leaderboard.{csv,md,html}``: one board per task (and test set), one row per team (its best
submission), and every submission below it as the history. The boards depend on the
submissions only (no build time), so an unchanged input rebuilds byte-identical files.

Tasks are data (``TASKS``): how to find and read a team's runs, the metric ranked by, its
range and its label. A submission is checked on ``submit`` and again on every ``build``;
each rejection is one line (``SubmissionError``) naming the file and the key.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstransfer.core.errors import RSTransferError
from rstransfer.core.io import write_json, write_text
from rstransfer.core.paths import Layout

FORMAT = 1
ID_LENGTH = 16
BOARD_FILES = ("csv", "md", "html")
#: ranges of the scores every submission carries (fractions, not percent)
SCORE_RANGES = {"OA": (0.0, 1.0), "AA": (0.0, 1.0), "Kappa": (-1.0, 1.0)}
#: recomputed scores must match the stored ones to this absolute tolerance
TOLERANCE = 1e-6
DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ID_RE = re.compile(rf"^[0-9a-f]{{{ID_LENGTH}}}$")
#: a spreadsheet reads a cell starting with one of these as a formula
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class SubmissionError(RSTransferError):
    """A submission is incomplete, inconsistent, out of range or would replace another."""


# --------------------------------------------------------------------------------- tasks
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


def _hsi_runs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    return [layout.run_dir("hsi", "evaluate", f"{p}/seed{s}") for p in cfg["hsi"]["policies"] for s in cfg["hsi"]["seeds"]]


def _hsi_inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    return [layout.run_dir("hsi", "report"), *_hsi_runs(cfg, layout)]


def _read_metrics(where: Path, keys: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An evaluate step's metrics.json (its training run's train.json inside as ``train``):
    the keys present, the scores in range and equal to those of its confusion matrix."""
    m = _load_json(where)
    for key in ("OA", "AA", "Kappa", "confusion_matrix", "train", *keys):
        _need(m, key, where)
    t = m["train"]
    if not isinstance(t, dict):
        raise SubmissionError(f"{where}: train: expected an object, got {type(t).__name__}")
    check_cost(t, where, "train.")
    check_scores({k: m[k] for k in SCORE_RANGES}, m["confusion_matrix"], where, "")
    return m, t


def _cost(t: dict[str, Any]) -> dict[str, Any]:
    return {k: t[k] for k in ("train_seconds", "gpu_hours", "trainable_params", "total_params")}


def _hsi_read(run: Path, cfg: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """An ``rstransfer evaluate`` folder (metrics.json with the fine-tuning's train.json inside)."""
    where = run / "metrics.json"
    m, t = _read_metrics(where, ("policy", "seed", "model", "dataset", "split", "n_test"))
    for key in ("policy", "seed"):
        _need(t, key, where, prefix="train.")
    if (t["policy"], t["seed"]) != (m["policy"], m["seed"]):
        raise SubmissionError(
            f"{where}: train.policy/seed {t['policy']}/{t['seed']} differ from policy/seed {m['policy']}/{m['seed']}"
        )
    target = cfg["hsi"]["target"]
    if m["dataset"] != target:
        raise SubmissionError(f"{where}: dataset {m['dataset']!r} is not the config's hsi.target {target!r}")
    return {
        "benchmark": f"{target}, {m['split']} split, {m['n_test']} test px",
        "entry": f"{m['policy']} seed {m['seed']}",
        "model": m["model"],
        "details": {
            "policy": m["policy"],
            "seed": m["seed"],
            "source": cfg["hsi"]["source"],
            "target": target,
            "split": m["split"],
            "n_test": m["n_test"],
        },
        "scores": {k: m[k] for k in SCORE_RANGES},
        "confusion_matrix": m["confusion_matrix"],
        "cost": _cost(t),
        "date": _mtime_date(where),
    }


def _seg_runs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    """One folder per experiment, holding its evaluated test tiles (area<N>/)."""
    return [layout.run_dir("segmentation", "evaluate", e) for e in cfg["segmentation"]["experiments"]]


def _seg_inputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    tiles = cfg["segmentation"]["tiles"]["test"]
    runs = [layout.run_dir("segmentation", "evaluate", f"{e}/area{n}") for e in cfg["segmentation"]["experiments"] for n in tiles]
    return [layout.run_dir("segmentation", "report"), *runs]


def _seg_read(run: Path, cfg: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """An experiment's evaluated tiles (``rstransfer evaluate --study segmentation``) (every test tile of the config), scored
    together: the tiles' confusion matrices are summed, OA/AA/Kappa recomputed from the sum."""
    from rstransfer.core.metrics import scores

    experiment, tiles = run.name, sorted(cfg["segmentation"]["tiles"]["test"])
    total, cost, model, last, settings = None, None, None, "", {}
    for n in tiles:
        where = run / f"area{n}" / "metrics.json"
        m, t = _read_metrics(where, ("experiment", "tile", "tile_split"))
        _need(t, "model", where, prefix="train.")
        if (m["experiment"], m["tile"], m["tile_split"]) != (experiment, n, "test"):
            raise SubmissionError(
                f"{where}: experiment/tile/split {m['experiment']}/{m['tile']}/{m['tile_split']} "
                f"is not {experiment}/{n}/test"
            )
        if cost is not None and (_cost(t), t["model"]) != (cost, model):
            raise SubmissionError(f"{where}: train differs from the other tiles' (one experiment, one training run)")
        cm = m["confusion_matrix"]
        if total is not None and len(cm) != len(total):
            raise SubmissionError(f"{where}: confusion_matrix has {len(cm)} classes, other tiles {len(total)}")
        total = cm if total is None else [[a + b for a, b in zip(r, q)] for r, q in zip(total, cm)]
        cost, model, last = _cost(t), t["model"], max(last, _mtime_date(where))
        settings = {k: t.get(k) for k in ("pretrained", "augment", "policy")}
    assert total is not None and cost is not None  # the schema requires >= 1 test tile
    s = scores(total)
    synthetic = "synthetic " if cfg["segmentation"]["synthetic"]["enabled"] else ""
    return {
        "benchmark": f"{synthetic}Vaihingen test areas {', '.join(map(str, tiles))} ({sum(map(sum, total))} px)",
        "entry": experiment,
        "model": model,
        "details": {"experiment": experiment, "tiles": tiles, **settings},
        "scores": {k: s[k] for k in SCORE_RANGES},
        "confusion_matrix": total,
        "cost": cost,
        "date": last,
    }


TASKS: dict[str, Task] = {
    "hsi": Task(
        label="HSI transfer (HybridSN): target-scene test OA",
        metric="OA",
        metric_range=(0.0, 1.0),
        entry_label="policy, seed",
        cost_note="training time and GPU-hours of the fine-tuning run (the shared pre-training is not counted)",
        enabled=lambda cfg: bool(cfg["hsi"]["enabled"]),
        runs=_hsi_runs,
        inputs=_hsi_inputs,
        read=_hsi_read,
    ),
    # one entry = one experiment, scored over all its test tiles (confusion matrices summed)
    "vaihingen": Task(
        label="ISPRS Vaihingen segmentation (ResNet50-FCN): test-tile OA",
        metric="OA",
        metric_range=(0.0, 1.0),
        entry_label="experiment",
        cost_note="training time and GPU-hours of the experiment's finetune run (not of a run it starts from)",
        enabled=lambda cfg: bool(cfg.get("segmentation", {}).get("enabled", False)),
        runs=_seg_runs,
        inputs=_seg_inputs,
        read=_seg_read,
    ),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise SubmissionError(f"task {name!r}: unknown (tasks: {', '.join(TASKS)})")
    task = TASKS[name]
    if task.pending:
        raise SubmissionError(f"task {name!r}: not available yet ({task.pending})")
    return task


def active_tasks(cfg: dict[str, Any]) -> list[str]:
    """Tasks a team's config submits to: enabled by the config and implemented."""
    return [name for name, task in TASKS.items() if not task.pending and task.enabled(cfg)]


def submit_inputs(cfg: dict[str, Any], layout: Layout, task: str) -> list[str]:
    """Files rule ``submit`` waits for (the task's report and evaluated runs)."""
    inputs = get_task(task).inputs
    return inputs(cfg, layout) if inputs else []


def final_outputs(cfg: dict[str, Any], layout: Layout) -> list[str]:
    """What ``leaderboard:`` adds to the default target: receipts, then the boards."""
    lb = cfg["leaderboard"]
    out = [layout.submit_receipt(t) for t in active_tasks(cfg)] if lb["submit"] else []
    return out + ([layout.leaderboard_file(ext) for ext in BOARD_FILES] if lb["board"] else [])


# ---------------------------------------------------------------------------- validation
def team_pattern() -> str:
    """The schema's pattern for ``team`` (one source of truth)."""
    from rstransfer.core.config import load_schema

    return str(load_schema()["properties"]["team"]["pattern"])


def check_team(team: Any, where: str = "team") -> str:
    pattern = team_pattern()
    if not isinstance(team, str) or not re.fullmatch(pattern, team):
        raise SubmissionError(
            f"{where}: {team!r} is not a valid team name (1-32 of A-Z a-z 0-9 _ -; no '/', '.' or spaces)"
        )
    return team


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SubmissionError(f"{path}: not found (evaluate the run first)")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SubmissionError(f"{path}: top level must be an object")
    return data


def _need(obj: dict[str, Any], key: str, where: Any, prefix: str = "") -> Any:
    if key not in obj:
        raise SubmissionError(f"{where}: missing key {prefix + key!r}")
    return obj[key]


def _number(value: Any, key: str, where: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SubmissionError(f"{where}: {key}: expected a number, got {value!r}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise SubmissionError(f"{where}: {key} = {value!r} is out of range [{lo:g}, {hi:g}]")
    return float(value)


def _count(value: Any, key: str, where: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SubmissionError(f"{where}: {key}: expected a non-negative integer, got {value!r}")
    return value


def _mtime_date(path: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))


def content_id(record: dict[str, Any]) -> str:
    """Hash of everything but ``id`` and ``date``: the same run submitted twice has one id."""
    body = {k: v for k, v in record.items() if k not in ("id", "date")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def check_scores(values: Any, cm: Any, where: Any, prefix: str = "scores.") -> None:
    """OA/AA/Kappa present and in range, and equal to those recomputed from the confusion matrix."""
    from rstransfer.core.metrics import scores

    if not isinstance(values, dict):
        raise SubmissionError(f"{where}: scores: expected an object")
    for key, (lo, hi) in SCORE_RANGES.items():
        _number(_need(values, key, where, prefix), prefix + key, where, lo, hi)
    n = len(cm) if isinstance(cm, list) else 0
    if n == 0 or any(not isinstance(row, list) or len(row) != n for row in cm):
        raise SubmissionError(f"{where}: confusion_matrix: expected a non-empty square matrix (list of rows)")
    for row in cm:
        for v in row:
            _count(v, "confusion_matrix", where)
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
        _number(_need(cost, key, where, prefix), prefix + key, where, 0.0, math.inf)
    trainable = _count(_need(cost, "trainable_params", where, prefix), prefix + "trainable_params", where)
    total = _count(_need(cost, "total_params", where, prefix), prefix + "total_params", where)
    if trainable > total:
        raise SubmissionError(f"{where}: {prefix}trainable_params {trainable} exceeds {prefix}total_params {total}")


def validate_record(rec: dict[str, Any], where: Any) -> dict[str, Any]:
    """Every check a submission passes, on submit and on every build."""
    for key, kind in (
        ("format", int), ("id", str), ("team", str), ("task", str), ("date", str), ("benchmark", str),
        ("entry", str), ("model", str), ("details", dict), ("scores", dict), ("confusion_matrix", list),
        ("cost", dict),
    ):  # fmt: skip
        value = _need(rec, key, where)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise SubmissionError(f"{where}: {key}: expected {kind.__name__}, got {type(value).__name__}")
    if rec["format"] != FORMAT:
        raise SubmissionError(f"{where}: format {rec['format']} is not {FORMAT}")
    check_team(rec["team"], f"{where}: team")
    task = get_task(rec["task"])
    if not DATE_RE.match(rec["date"]):
        raise SubmissionError(f"{where}: date {rec['date']!r} is not YYYY-MM-DDTHH:MM:SSZ")
    check_scores(rec["scores"], rec["confusion_matrix"], where)
    _number(rec["scores"].get(task.metric), f"scores.{task.metric}", where, *task.metric_range)
    check_cost(rec["cost"], where)
    if rec["id"] != content_id(rec):
        raise SubmissionError(f"{where}: id {rec['id']!r} does not match the content ({content_id(rec)}); edited?")
    return rec


# -------------------------------------------------------------------------------- submit
def make_record(team: str, task: str, run: Path, cfg: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """Read one evaluated run into a validated submission record."""
    reader = get_task(task).read
    assert reader is not None  # get_task rejects pending tasks
    rec = {"format": FORMAT, "team": check_team(team), "task": task, **reader(run, cfg, layout)}
    rec["id"] = content_id(rec)
    return validate_record(rec, run)


def submit(
    cfg: dict[str, Any], task: str, layout: Layout, team: str | None = None, runs: list[str] | None = None
) -> dict[str, Any]:
    """Write the team's runs as submissions (new ids only); return the receipt.

    Writes only under ``submissions/<team>/<task>/`` and never replaces or deletes a file.
    """
    team = check_team(cfg["team"] if team is None else team, "team")
    spec = get_task(task)
    assert spec.runs is not None
    run_dirs = [Path(r) for r in (runs if runs is not None else spec.runs(cfg, layout))]
    if not run_dirs:
        raise SubmissionError(f"submit: no evaluated runs for task {task!r}")
    records = [make_record(team, task, run, cfg, layout) for run in run_dirs]  # all valid before any write
    folder = Path(layout.submissions_dir(team, task))
    entries, new = [], 0
    for rec in records:
        path = folder / f"{rec['id']}.json"
        if path.exists():
            old = _load_json(path)
            if content_id(old) != rec["id"] or {**old, "date": rec["date"]} != rec:
                raise SubmissionError(
                    f"{path}: exists with different content; submissions are immutable (move it away if it is broken)"
                )
        else:
            write_json(path, rec)
            new += 1
        entries.append({"id": rec["id"], "entry": rec["entry"], "score": rec["scores"][spec.metric], "file": str(path)})
    receipt = {"team": team, "task": task, "metric": spec.metric, "submissions": entries}
    return {"receipt": receipt, "new": new, "folder": str(folder)}


# ---------------------------------------------------------------------------------- read
def load_submissions(root: Path) -> list[dict[str, Any]]:
    """Every submission under ``root/submissions/<team>/<task>/<id>.json``, each validated.

    A file whose team or task differs from its folders, or whose id differs from its name
    or its content, is rejected. Hidden files (writes in progress) are skipped.
    """
    base = root / "submissions"
    records = []
    if not base.is_dir():
        return records
    for team_dir in sorted(p for p in base.iterdir() if not p.name.startswith(".")):
        check_team(team_dir.name, f"{team_dir}: folder name")
        if not team_dir.is_dir():
            raise SubmissionError(f"{team_dir}: expected a folder per team")
        for task_dir in sorted(p for p in team_dir.iterdir() if not p.name.startswith(".")):
            if task_dir.name not in TASKS or not task_dir.is_dir():
                raise SubmissionError(f"{task_dir}: not a task folder (tasks: {', '.join(TASKS)})")
            for path in sorted(task_dir.glob("*.json")):
                if path.name.startswith("."):
                    continue
                rec = validate_record(_load_json(path), path)
                if rec["team"] != team_dir.name:
                    raise SubmissionError(f"{path}: team {rec['team']!r} differs from its folder {team_dir.name!r}")
                if rec["task"] != task_dir.name:
                    raise SubmissionError(f"{path}: task {rec['task']!r} differs from its folder {task_dir.name!r}")
                if not ID_RE.match(path.stem) or rec["id"] != path.stem:
                    raise SubmissionError(f"{path}: id {rec['id']!r} differs from the file name")
                records.append(rec)
    return records


# -------------------------------------------------------------------------------- boards
@dataclass(frozen=True)
class Board:
    task: str
    benchmark: str
    ranked: list[tuple[int, dict[str, Any]]]  # (rank, the team's best submission)
    history: list[dict[str, Any]]  # every submission, oldest first


def _score(rec: dict[str, Any]) -> float:
    return float(rec["scores"][TASKS[rec["task"]].metric])


def _preference(rec: dict[str, Any]) -> tuple[Any, ...]:
    """Better first: higher metric, then cheaper, then earlier, then team and id."""
    return (-_score(rec), rec["cost"]["train_seconds"], rec["date"], rec["team"], rec["id"])


def boards(records: list[dict[str, Any]]) -> list[Board]:
    """One board per task and test set; within it one row per team, ranked by the metric.

    Equal metric values share a rank (1, 1, 3).
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["task"], rec["benchmark"]), []).append(rec)
    order = {name: i for i, name in enumerate(TASKS)}
    out = []
    for (task, bench), recs in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        best: dict[str, dict[str, Any]] = {}
        for rec in sorted(recs, key=_preference):
            best.setdefault(rec["team"], rec)
        ranked, rank = [], 0
        for i, rec in enumerate(sorted(best.values(), key=_preference)):
            if i == 0 or _score(rec) != _score(ranked[-1][1]):
                rank = i + 1
            ranked.append((rank, rec))
        history = sorted(recs, key=lambda r: (r["date"], r["team"], r["entry"], r["id"]))
        out.append(Board(task, bench, ranked, history))
    return out


CSV_COLUMNS = [
    "task", "benchmark", "rank", "team", "entry", "model", "OA", "AA", "Kappa", "train_seconds", "gpu_hours",
    "trainable_params", "total_params", "date", "id", "best",
]  # fmt: skip


def csv_cell(value: Any) -> Any:
    """Neutralise text a spreadsheet would run as a formula (OWASP: prefix with ')."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def _row(rec: dict[str, Any], rank: int | None, best: bool) -> dict[str, Any]:
    s, c = rec["scores"], rec["cost"]
    return {
        "task": rec["task"], "benchmark": rec["benchmark"], "rank": "" if rank is None else rank,
        "team": rec["team"], "entry": rec["entry"], "model": rec["model"],
        "OA": round(s["OA"], 6), "AA": round(s["AA"], 6), "Kappa": round(s["Kappa"], 6),
        "train_seconds": round(c["train_seconds"], 1), "gpu_hours": round(c["gpu_hours"], 4),
        "trainable_params": c["trainable_params"], "total_params": c["total_params"],
        "date": rec["date"], "id": rec["id"], "best": "yes" if best else "no",
    }  # fmt: skip


def render_csv(bs: list[Board]) -> str:
    """One row per submission: each board's ranked rows first (rank filled), then the rest."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for b in bs:
        best_ids = {rec["id"] for _, rec in b.ranked}
        rows = [_row(rec, rank, True) for rank, rec in b.ranked]
        rows += [_row(rec, None, False) for rec in b.history if rec["id"] not in best_ids]
        for row in rows:
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return buf.getvalue()


def _when(date: str) -> str:
    """2030-01-02T03:04:05Z -> 2030-01-02 03:04 UTC (the CSV keeps the seconds)."""
    return f"{date[:10]} {date[11:16]} UTC"


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _display(rec: dict[str, Any]) -> list[str]:
    s, c = rec["scores"], rec["cost"]
    return [
        rec["team"], rec["entry"], _pct(s["OA"]), _pct(s["AA"]), _pct(s["Kappa"]),
        f"{c['train_seconds']:.1f}", f"{c['gpu_hours']:.4f}", f"{c['trainable_params']:,}",
        _when(rec["date"]),
    ]  # fmt: skip


def _headers(task: Task) -> list[str]:
    return ["team", task.entry_label, "OA (%)", "AA (%)", "Kappa (%)", "training time (s)", "GPU-hours",
            "trainable params", "date"]  # fmt: skip


def _summary(records: list[dict[str, Any]]) -> str:
    teams = len({r["team"] for r in records})
    latest = max((r["date"] for r in records), default="")
    when = f"; latest {_when(latest)}" if latest else ""
    return f"{teams} team(s), {len(records)} submission(s){when}."


def _md_cell(v: Any) -> str:
    text = html.escape(str(v), quote=False).replace("|", "\\|")
    return " ".join(text.split())


def render_md(bs: list[Board], records: list[dict[str, Any]], title: str) -> str:
    lines = [f"# {_md_cell(title)}", "", _summary(records), ""]
    if not bs:
        lines += ["No submissions yet.", ""]
    for b in bs:
        task = TASKS[b.task]
        head = _headers(task)
        lines += [f"## {_md_cell(task.label)}", "", f"Test set: {_md_cell(b.benchmark)}. {_md_cell(_notes(task))}", ""]
        lines += ["| rank | " + " | ".join(head) + " |", "|" + "---|" * (len(head) + 1)]
        lines += ["| " + " | ".join(map(_md_cell, [rank, *_display(rec)])) + " |" for rank, rec in b.ranked]
        lines += ["", "All submissions:", "", "| " + " | ".join(head) + " | id |", "|" + "---|" * (len(head) + 1)]
        lines += ["| " + " | ".join(map(_md_cell, [*_display(rec), rec["id"]])) + " |" for rec in b.history]
        lines.append("")
    return "\n".join(lines)


def _notes(task: Task) -> str:
    return (
        f"Ranked by {task.metric} (higher is better); one row per team, its best submission "
        f"(ties: less training time first). Cost: {task.cost_note}."
    )


CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}.note{max-width:1100px}
table.t{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.92em}table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
table.t td{white-space:nowrap}table.board tr.r1 td{font-weight:600}
table.board td:nth-child(-n+3),table.board th:nth-child(-n+3),table.history td:nth-child(-n+2),table.history th:nth-child(-n+2){text-align:left}
.note{color:#555;font-size:.9em}code{font-size:.9em}"""


def _html_table(table_id: str, cls: str, head: list[str], rows: list[tuple[dict[str, str], list[Any]]]) -> str:
    parts = [f'<table class="t {cls}" id="{html.escape(table_id)}"><thead><tr>']
    parts += [f"<th>{html.escape(h)}</th>" for h in head]
    parts.append("</tr></thead><tbody>")
    for attrs, cells in rows:
        attr = "".join(f' {k}="{html.escape(str(v))}"' for k, v in attrs.items())
        parts.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def render_html(bs: list[Board], records: list[dict[str, Any]], title: str) -> str:
    """A static, self-contained page: inline CSS, no scripts, no links to fetch."""
    t = html.escape(title)
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{t}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{t}</h1>",
        f"<p class=note>{html.escape(_summary(records))} Built from <code>submissions/</code> by "
        "<code>rstransfer leaderboard</code>.</p>",
    ]
    if not bs:
        parts.append("<p>No submissions yet.</p>")
    for i, b in enumerate(bs, 1):
        task = TASKS[b.task]
        head = _headers(task)
        ranked = [
            ({"class": f"r{rank}", "data-rank": rank, "data-team": rec["team"]}, [rank, *_display(rec)])
            for rank, rec in b.ranked
        ]
        best_ids = {rec["id"] for _, rec in b.ranked}
        hist = [
            ({"data-team": rec["team"], "data-id": rec["id"]}, [*_display(rec), "yes" if rec["id"] in best_ids else "", rec["id"]])
            for rec in b.history
        ]
        parts += [
            f'<section id="{html.escape(b.task)}-{i}"><h2>{html.escape(task.label)}</h2>',
            f"<p class=note>Test set: <b>{html.escape(b.benchmark)}</b>. {html.escape(_notes(task))}</p>",
            _html_table(f"board-{b.task}-{i}", "board", ["rank", *head], ranked),
            f"<h3>All submissions ({len(b.history)})</h3>",
            _html_table(f"history-{b.task}-{i}", "history", [*head, "best", "id"], hist),
            "</section>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build(root: Path, out: Path | None = None, title: str = "rstransfer leaderboard") -> dict[str, Any]:
    """Read every submission under ``root`` and write ``leaderboard.{csv,md,html}`` into ``out``."""
    out = root if out is None else out
    records = load_submissions(root)
    bs = boards(records)
    files = {
        "csv": render_csv(bs),
        "md": render_md(bs, records, title),
        "html": render_html(bs, records, title),
    }
    paths = {}
    for ext, text in files.items():
        paths[ext] = out / f"leaderboard.{ext}"
        write_text(paths[ext], text)
    return {"files": paths, "boards": bs, "teams": len({r["team"] for r in records}), "submissions": len(records)}
