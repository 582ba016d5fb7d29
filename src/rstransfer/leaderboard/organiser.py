"""The organiser's side of a competition: who is in which team, the hidden ground truth, the
team folders, the append-only ledger of receipt times and the build lock.

Everything here fails the build with one ``ConfigError`` line: it is the organiser's own
configuration. Whatever a participant wrote is judged in ``build`` and, if bad, quarantined.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rstransfer.core.errors import ConfigError

from .tasks import Truth, is_team_name

LEDGER = "ledger.jsonl"
LOCK = ".leaderboard.lock"


# ---------------------------------------------------------------------------------- teams
@dataclass(frozen=True)
class Team:
    name: str
    uids: frozenset[int]  # users allowed to submit for the team
    gid: int | None  # the team's Unix group (its folder's group), if any


def _uid(user: str, where: str) -> int:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ConfigError(f"{where}: no such user {user!r}") from None


def load_teams(path: str) -> dict[str, Team] | None:
    """The organiser's teams file (team -> ``users`` and/or ``group``); None for "" (one user
    runs every team: the build's user, as in ``make demo``)."""
    if not path:
        return None
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"leaderboard.teams: {p}: cannot read: {' '.join(str(exc).split())[:120]}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"leaderboard.teams: {p}: expected a mapping team -> {{users: [...], group: name}}")
    teams = {}
    for name, spec in data.items():
        where = f"{p}: {name}"
        if not is_team_name(name):
            raise ConfigError(f"{p}: {name!r} is not a valid team name (1-32 of A-Z a-z 0-9 _ -)")
        if not isinstance(spec, dict) or not set(spec) <= {"users", "group"} or not spec:
            raise ConfigError(f"{where}: expected users: [names] and/or group: name")
        users = spec.get("users", [])
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ConfigError(f"{where}.users: expected a list of user names")
        uids = {_uid(u, f"{where}.users") for u in users}
        gid = None
        if "group" in spec:
            try:
                g = grp.getgrnam(str(spec["group"]))
            except KeyError:
                raise ConfigError(f"{where}.group: no such group {spec['group']!r}") from None
            gid = g.gr_gid
            uids |= {_uid(u, f"{where}.group") for u in g.gr_mem}
            uids |= {u.pw_uid for u in pwd.getpwall() if u.pw_gid == gid}
        teams[name] = Team(name, frozenset(uids), gid)
    return teams


def members(team: str, teams: dict[str, Team] | None) -> frozenset[int] | None:
    """uids allowed to submit for ``team``; None if the team is not in the teams file."""
    if teams is None:
        return frozenset({os.geteuid()})
    return teams[team].uids if team in teams else None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def setup(root: Path, teams: dict[str, Team] | None) -> list[str]:
    """Create ``submissions/`` (only the organiser writes it) and one folder per team: the team's
    group, setgid (files keep the group), sticky (members cannot delete each other's files),
    nothing for others. Returns what it did, a line each."""
    done = []
    base = root / "submissions"
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    done.append(f"{base}: mode 0755 (only the organiser creates team folders)")
    for team in (teams or {}).values():
        folder = base / team.name
        if folder.is_symlink():
            raise ConfigError(f"{folder}: a symbolic link; remove it")
        folder.mkdir(exist_ok=True)
        if team.gid is not None:
            os.chown(folder, -1, team.gid)
            os.chmod(folder, 0o3770)
            done.append(f"{folder}: group {grp.getgrgid(team.gid).gr_name}, mode 3770")
        elif len(team.uids) == 1:
            os.chown(folder, next(iter(team.uids)), -1)
            os.chmod(folder, 0o1700)
            done.append(f"{folder}: owner {user_name(next(iter(team.uids)))}, mode 1700")
        else:
            raise ConfigError(f"leaderboard.teams: {team.name}: several users need a group for a shared folder")
    ledger = root / LEDGER
    ledger.touch(exist_ok=True)
    os.chmod(ledger, 0o644)
    return done


# ---------------------------------------------------------------------------- ground truth
def write_truth(folder: Path, task: str, truth: Truth) -> Path:
    """``<folder>/<task>.npz`` (meta as JSON), readable by the organiser only."""
    from .submission import encode

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / f"{task}.npz"
    tmp = folder / f".{task}.npz.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(encode(truth.meta, truth.arrays))
    os.replace(tmp, path)
    return path


def write_public(folder: Path, truths: dict[str, Truth]) -> list[Path]:
    """What teams of a sealed competition may have (``Truth.public``): ``<task>_<name>.npy``,
    readable by all."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for task, truth in truths.items():
        for name, arr in truth.public.items():
            path = folder / f"{task}_{name}.npy"
            np.save(path, arr, allow_pickle=False)
            path.chmod(0o644)
            paths.append(path)
    return paths


def read_truths(folder: str) -> dict[str, Truth]:
    """Every task's hidden labels; refuses a folder other users can read or enter."""
    p = Path(folder)
    if not p.is_dir():
        raise ConfigError(f"leaderboard.ground_truth: {p}: not found (run `rstransfer ground-truth` first)")
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o007:
        raise ConfigError(f"leaderboard.ground_truth: {p}: open to other users (mode {mode:04o}); chmod o-rwx {p}")
    truths = {}
    for path in sorted(p.glob("*.npz")):
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
        truths[path.stem] = Truth(meta, arrays)
    if not truths:
        raise ConfigError(f"leaderboard.ground_truth: {p}: holds no task's labels")
    return truths


# ---------------------------------------------------------------------------- ledger, lock
@contextlib.contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """One build at a time per leaderboard folder (a second waits)."""
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Ledger:
    """``ledger.jsonl``: one line per submission file the organiser's build first saw (its
    digest and the time), appended, never rewritten. The boards' dates come from here."""

    def __init__(self, root: Path) -> None:
        self.path = root / LEDGER
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_file()):
            raise ConfigError(f"{self.path}: not a regular file")
        if self.path.exists():
            st = self.path.stat()
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                raise ConfigError(
                    f"{self.path}: must belong to the organiser ({user_name(os.geteuid())}) and be writable by nobody else"
                )
        self.seen: dict[str, str] = {}
        for n, line in enumerate(self.path.read_text().splitlines() if self.path.exists() else [], 1):
            try:
                entry = json.loads(line)
                self.seen.setdefault(entry["sha256"], entry["first_seen"])
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"{self.path}:{n}: not a ledger line") from None
        self._new: list[dict[str, Any]] = []

    def first_seen(self, digest: str, file: str, now: str) -> str:
        if digest not in self.seen:
            self.seen[digest] = now
            self._new.append({"sha256": digest, "file": file, "first_seen": now})
        return self.seen[digest]

    def append(self) -> None:
        if not self._new:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "a") as f:
            f.write("".join(json.dumps(e, sort_keys=True) + "\n" for e in self._new))
            f.flush()
            os.fsync(f.fileno())
        self._new = []


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
