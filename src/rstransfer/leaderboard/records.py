"""Submissions: a team's evaluated run read into a validated record, written once under
``<dir>/submissions/<team>/<task>/<id>.json`` (the id is a hash of the content, so a rerun
with unchanged results writes nothing, and a file is never overwritten or deleted), and
every team's records read back, validated again, for the boards."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from rstransfer.core.io import write_json
from rstransfer.core.paths import Layout

from .tasks import (
    SubmissionError,
    all_tasks,
    check_cost,
    check_number,
    check_scores,
    get_task,
    load_json,
    need,
)

FORMAT = 1
ID_LENGTH = 16
DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ID_RE = re.compile(rf"^[0-9a-f]{{{ID_LENGTH}}}$")


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


def content_id(record: dict[str, Any]) -> str:
    """Hash of everything but ``id`` and ``date``: the same run submitted twice has one id."""
    body = {k: v for k, v in record.items() if k not in ("id", "date")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def validate_record(rec: dict[str, Any], where: Any) -> dict[str, Any]:
    """Every check a submission passes, on submit and on every build."""
    for key, kind in (
        ("format", int), ("id", str), ("team", str), ("task", str), ("date", str), ("benchmark", str),
        ("entry", str), ("model", str), ("details", dict), ("scores", dict), ("confusion_matrix", list),
        ("cost", dict),
    ):  # fmt: skip
        value = need(rec, key, where)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise SubmissionError(f"{where}: {key}: expected {kind.__name__}, got {type(value).__name__}")
    if rec["format"] != FORMAT:
        raise SubmissionError(f"{where}: format {rec['format']} is not {FORMAT}")
    check_team(rec["team"], f"{where}: team")
    task = get_task(rec["task"])
    if not DATE_RE.match(rec["date"]):
        raise SubmissionError(f"{where}: date {rec['date']!r} is not YYYY-MM-DDTHH:MM:SSZ")
    check_scores(rec["scores"], rec["confusion_matrix"], where)
    check_number(rec["scores"].get(task.metric), f"scores.{task.metric}", where, *task.metric_range)
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
            old = load_json(path)
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
    tasks = all_tasks()
    for team_dir in sorted(p for p in base.iterdir() if not p.name.startswith(".")):
        check_team(team_dir.name, f"{team_dir}: folder name")
        if not team_dir.is_dir():
            raise SubmissionError(f"{team_dir}: expected a folder per team")
        for task_dir in sorted(p for p in team_dir.iterdir() if not p.name.startswith(".")):
            if task_dir.name not in tasks or not task_dir.is_dir():
                raise SubmissionError(f"{task_dir}: not a task folder (tasks: {', '.join(tasks)})")
            for path in sorted(task_dir.glob("*.json")):
                if path.name.startswith("."):
                    continue
                rec = validate_record(load_json(path), path)
                if rec["team"] != team_dir.name:
                    raise SubmissionError(f"{path}: team {rec['team']!r} differs from its folder {team_dir.name!r}")
                if rec["task"] != task_dir.name:
                    raise SubmissionError(f"{path}: task {rec['task']!r} differs from its folder {task_dir.name!r}")
                if not ID_RE.match(path.stem) or rec["id"] != path.stem:
                    raise SubmissionError(f"{path}: id {rec['id']!r} differs from the file name")
                records.append(rec)
    return records
