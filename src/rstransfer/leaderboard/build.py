"""The organiser's build: every file under ``submissions/`` judged on its own (read safely,
owner in the team, metadata valid, predictions scored against the hidden labels, cost
verified with SLURM accounting, receipt time from the ledger). A bad file is quarantined
with its reason; the boards are built from the valid ones; only the organiser's own
configuration (teams file, ground truth, ledger) can fail the build."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstransfer.core.study import publish

from . import accounting, organiser, submission
from .tasks import SubmissionError, all_tasks, is_team_name
from .organiser import Ledger, Team, members, user_name


@dataclass(frozen=True)
class Rejected:
    file: str  # relative to submissions/
    reason: str


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_unpacked: int
    sacct: str


def limits(lb: dict[str, Any]) -> Limits:
    mb = lb["max_submission_mb"]
    return Limits(int(mb * 2**20), int(8 * mb * 2**20), lb["sacct"])


def _verified_cost(cost: dict[str, Any], allowed: frozenset[int], command: str) -> dict[str, Any]:
    """Cost from ``sacct`` when the run names jobs and accounting answers; else self-reported."""
    ids = cost["slurm_job_ids"]
    jobs = accounting.query(ids, command)
    if jobs is None:
        return {**cost, "source": "self-reported"}
    seconds = gpu_hours = 0.0
    users = {user_name(u) for u in allowed}
    for j in ids:
        if j not in jobs:
            raise SubmissionError(f"SLURM job {j} is not in the accounting records")
        job = jobs[j]
        if job.user not in users:
            raise SubmissionError(f"SLURM job {j} ran as user {job.user!r}, not a member of the team")
        seconds += job.seconds
        gpu_hours += job.seconds * job.gpus / 3600
    return {**cost, "train_seconds": seconds, "gpu_hours": gpu_hours, "source": "sacct"}


def judge(path: Path, team: str, allowed: frozenset[int], truths: dict[str, Any], lim: Limits) -> dict[str, Any]:
    """One file -> a scored record, or SubmissionError with the reason."""
    m = submission.NAME_RE.match(path.name)
    if not m:
        raise SubmissionError("not a submission file (<task>.<id>.npz holding predictions; scores are never accepted)")
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode) and st.st_uid not in allowed:
        raise SubmissionError(f"owned by {user_name(st.st_uid)}, who is not a member of team {team}")
    meta, arrays = submission.read(path, lim.max_bytes, lim.max_unpacked)
    if meta["team"] != team:
        raise SubmissionError(f"team {meta['team']!r} differs from its folder {team!r}")
    if meta["task"] != m["task"]:
        raise SubmissionError(f"task {meta['task']!r} differs from the file name")
    if submission.content_id(meta, arrays) != m["id"]:
        raise SubmissionError("content does not match the id in its name (edited after submitting?)")
    tasks = all_tasks()
    if meta["task"] not in tasks or meta["task"] not in truths:
        raise SubmissionError(f"task {meta['task']!r} is not part of this competition")
    result = tasks[meta["task"]].score(arrays, truths[meta["task"]])
    return {
        "team": team, "task": meta["task"], "id": m["id"], "entry": meta["entry"], "model": meta["model"],
        "details": meta["details"], "benchmark": truths[meta["task"]].meta["benchmark"],
        "scores": result["scores"], "per_class": result.get("per_class", {}),
        "confusion_matrix": result.get("confusion_matrix"), "owner": user_name(st.st_uid),
        "cost": _verified_cost(meta["cost"], allowed, lim.sacct),
    }  # fmt: skip


def _digest(path: Path, limit: int) -> str:
    """sha256 of a regular file (its first ``limit`` bytes: an oversized file is not read whole);
    anything else is named by its path."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return f"path:{path}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return f"path:{path}"
        h, left = hashlib.sha256(), limit
        while left > 0 and (chunk := os.read(fd, min(left, 2**20))):
            h.update(chunk)
            left -= len(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def printable(name: str) -> str:
    """A file name as text the boards can hold (bytes that are not UTF-8 shown as U+FFFD)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def collect(root: Path, teams: dict[str, Team] | None, truths: dict[str, Any], lim: Limits, ledger: Ledger,
            now: str) -> tuple[list[dict[str, Any]], list[Rejected]]:  # fmt: skip
    records: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    base = root / "submissions"
    if not base.is_dir():
        return records, rejected
    for team_dir in sorted(base.iterdir()):
        rel = name = printable(team_dir.name)
        if name.startswith("."):
            continue
        allowed = members(name, teams) if is_team_name(name) else None
        reason = None
        st = os.lstat(team_dir)
        if stat.S_ISLNK(st.st_mode):
            reason = "team folder is a symbolic link (refused)"
        elif not stat.S_ISDIR(st.st_mode):
            reason = "not a team folder"
        elif allowed is None:
            reason = "not a team of this competition (teams file)"
        elif st.st_mode & 0o002:
            reason = "team folder is writable by other users (the organiser's set-up gives it mode 3770)"
        if reason:
            rejected.append(Rejected(rel, reason))
            continue
        assert allowed is not None
        for path in sorted(team_dir.iterdir()):
            if path.name.startswith("."):  # a write in progress
                continue
            file = f"{name}/{printable(path.name)}"
            try:
                rec = judge(path, name, allowed, truths, lim)
            except SubmissionError as exc:
                rejected.append(Rejected(file, str(exc)))
                ledger.first_seen(_digest(path, lim.max_bytes), file, now)
                continue
            except OSError as exc:
                rejected.append(Rejected(file, f"unreadable: {exc.strerror or exc}"))
                continue
            rec["date"] = ledger.first_seen(_digest(path, lim.max_bytes), file, now)
            rec["file"] = file
            records.append(rec)
    return records, rejected


def build(root: Path, lb: dict[str, Any], ground_truth: str, title: str) -> dict[str, Any]:
    """Judge every submission under ``root`` and publish ``board/leaderboard.{csv,md,html}`` together."""
    from .render import boards, render_all

    teams = organiser.load_teams(lb["teams"])
    truths = organiser.read_truths(ground_truth)
    lim = limits(lb)
    with organiser.build_lock(root):
        ledger = Ledger(root)
        now = organiser.utc_now()
        records, rejected = collect(root, teams, truths, lim, ledger, now)
        bs = boards(records)
        files = render_all(bs, records, rejected, title)
        staging = root / f".board.{os.getpid()}.staging"
        staging.mkdir(parents=True, exist_ok=True)
        for ext, text in files.items():
            (staging / f"leaderboard.{ext}").write_text(text)
        os.chmod(staging, 0o755)
        ledger.append()  # receipt times are recorded before the boards that show them
        publish(staging, root / "board")
    return {"boards": bs, "records": records, "rejected": rejected, "dir": root / "board",
            "teams": len({r["team"] for r in records})}
