"""The participant's side: a team's evaluated runs become prediction files in its folder
``<dir>/submissions/<team>/<task>.<id>.npz`` (``submission``), created once, never replaced.
No score leaves the team: the organiser's build scores the predictions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rstransfer.core.paths import Layout

from . import submission
from .tasks import SubmissionError, get_task, is_team_name


def check_team(team: Any, where: str = "team") -> str:
    if not is_team_name(team):
        raise SubmissionError(
            f"{where}: {team!r} is not a valid team name (1-32 of A-Z a-z 0-9 _ -; no '/', '.' or spaces)"
        )
    return team


def team_folder(layout: Layout, team: str) -> Path:
    """The team's folder, as the organiser set it up; created (owner only) where nobody did
    (one user running every team, as in ``make demo``). A link is refused."""
    folder = Path(layout.submissions_dir(team))
    if folder.is_symlink():
        raise SubmissionError(f"{folder}: a symbolic link (refused); ask the organiser to set the folder up")
    if not folder.exists():
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=0o700)
        except OSError as exc:
            raise SubmissionError(
                f"{folder}: cannot create it ({exc.strerror}); the organiser sets team folders up "
                "(rstransfer leaderboard --setup)"
            ) from None
    if not os.access(folder, os.W_OK):
        raise SubmissionError(f"{folder}: not writable by you (is your user in the team's group?)")
    return folder


def submit(
    cfg: dict[str, Any], task: str, layout: Layout, team: str | None = None, runs: list[str] | None = None
) -> dict[str, Any]:
    """Write the team's runs as prediction files (new ids only); return the receipt."""
    team = check_team(cfg["team"] if team is None else team, "team")
    spec = get_task(task)
    run_dirs = [Path(r) for r in (runs if runs is not None else spec.runs(cfg, layout))]
    if not run_dirs:
        raise SubmissionError(f"submit: no evaluated runs for task {task!r}")
    preds = [spec.predictions(run, cfg, layout) for run in run_dirs]  # all valid before any write
    metas = []
    for run, pred in zip(run_dirs, preds, strict=True):
        meta = {"format": submission.FORMAT, "team": team, "task": task, **pred.meta}
        submission.validate_meta(meta, run)
        metas.append(meta)
    folder = team_folder(layout, team)
    entries, new = [], 0
    for meta, pred in zip(metas, preds, strict=True):
        path, created = submission.write_new(folder, meta, pred.arrays)
        new += created
        entries.append({"id": path.name.split(".")[1], "entry": meta["entry"], "file": str(path)})
    receipt = {"team": team, "task": task, "submissions": entries,
               "note": "predictions only: the organiser's leaderboard build scores them"}  # fmt: skip
    return {"receipt": receipt, "new": new, "folder": str(folder)}
