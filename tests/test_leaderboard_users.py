"""A competition on a shared cluster, with real Unix users: the organiser (root) sets up the
team folders from a teams file (groups), two participants of two teams submit with their own
uids, and each attack of one team on the other is refused by the file system or quarantined
by the organiser's build while both valid submissions stay ranked.

The users and groups are created here and removed afterwards (CI runs as root); without root
the module skips, which CI (RSTRANSFER_NO_SKIP=1) turns into a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import cli_env
from rstransfer.leaderboard.tasks import all_tasks
from test_leaderboard import Team, organise, rejected

USERS = {"rstx_alice": "rstx_wg01", "rstx_bob": "rstx_wg02"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates Unix users: needs root (CI runs as root)")


@pytest.fixture(scope="module")
def users() -> Iterator[dict[str, pwd.struct_passwd]]:
    for user, group in USERS.items():
        subprocess.run(["groupadd", "-f", group], check=True)
        if subprocess.run(["id", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "-M", "-N", "-g", group, "-s", "/bin/sh", user], check=True)
    yield {u: pwd.getpwnam(u) for u in USERS}
    for user, group in USERS.items():
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.fixture
def arena(users: dict[str, pwd.struct_passwd]) -> Iterator[Path]:
    """A folder every user can traverse (pytest's tmp_path is root-only)."""
    root = Path(tempfile.mkdtemp(prefix="rstx-arena-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def as_user(user: pwd.struct_passwd, *argv: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
    def drop() -> None:
        os.setgroups([user.pw_gid])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        os.umask(0o022)

    env = {**cli_env(), "HOME": str(cwd)}
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, preexec_fn=drop, capture_output=True, text=True, timeout=300)


#: the system interpreter: the participants' actions need no access to the checkout
SYSTEM_PYTHON = "/usr/bin/python3"


def python_as(user: pwd.struct_passwd, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return as_user(user, SYSTEM_PYTHON, "-c", code, cwd=cwd)


def setup_competition(arena: Path) -> dict[str, Any]:
    """Teams file with two groups, ``rstransfer leaderboard --setup`` as the organiser, the hidden labels."""
    teams_file = arena / "teams.yaml"
    teams_file.write_text(yaml.safe_dump({"WG01": {"group": "rstx_wg01"}, "WG02": {"group": "rstx_wg02"}}))
    made = {}
    for name in ("WG01", "WG02"):
        team = Team(arena, name, {("Network_2", 0): {"correct": 40 if name == "WG01" else 45}})
        team.settings["leaderboard"]["teams"] = str(teams_file)
        made[name] = team
    organiser = made["WG01"].config_file(arena / "organiser.yaml")
    r = subprocess.run([sys.executable, "-m", "rstransfer.cli", "leaderboard", "--config", str(organiser), "--setup"],
                       cwd=arena, env=cli_env(), capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    organise(arena)
    return {"teams": made, "organiser": organiser}


def submit_as(user: pwd.struct_passwd, team: Team, arena: Path, folder: str | None = None) -> subprocess.CompletedProcess[str]:
    """The team's predictions, written by ``user`` into the team folder (``folder``: another team's)."""
    from rstransfer.leaderboard import submission

    staging = arena / "staging" / team.name
    staging.mkdir(parents=True, exist_ok=True)
    pred = all_tasks()["hsi"].predictions(team.run_dir("Network_2", 0), team.cfg, team.layout)
    meta = {"format": submission.FORMAT, "team": team.name, "task": "hsi", **pred.meta}
    path, _ = submission.write_new(staging, meta, pred.arrays)
    os.chmod(path, 0o644)
    target = arena / "board" / "submissions" / (folder or team.name) / path.name
    code = (f"import os; fd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640); "
            f"os.write(fd, open({str(path)!r}, 'rb').read())")  # fmt: skip
    return python_as(user, code, arena)
def organiser_build(arena: Path, organiser: Path) -> dict[str, Any]:
    from rstransfer.leaderboard import build

    lb = yaml.safe_load(organiser.read_text())["leaderboard"]
    settings = {"teams": lb["teams"], "sacct": "false", "max_submission_mb": 1}
    return build.build(arena / "board", settings, str(arena / "organiser" / "gt"), "Tutorial")


def test_team_folders_belong_to_the_teams_groups_and_nobody_else(users: dict[str, Any], arena: Path) -> None:
    setup_competition(arena)
    subs = arena / "board" / "submissions"
    assert oct(subs.stat().st_mode & 0o7777) == "0o755" and subs.stat().st_uid == 0
    for team, group in (("WG01", "rstx_wg01"), ("WG02", "rstx_wg02")):
        st = (subs / team).stat()
        assert oct(st.st_mode & 0o7777) == "0o3770" and st.st_gid == users[{"WG01": "rstx_alice", "WG02": "rstx_bob"}[team]].pw_gid


def test_two_teams_submit_and_neither_can_touch_the_other(users: dict[str, Any], arena: Path) -> None:
    comp = setup_competition(arena)
    alice, bob = users["rstx_alice"], users["rstx_bob"]
    assert submit_as(alice, comp["teams"]["WG01"], arena).returncode == 0
    r = submit_as(bob, comp["teams"]["WG02"], arena)
    assert r.returncode == 0, r.stderr
    subs = arena / "board" / "submissions"
    (alice_file,) = list((subs / "WG01").glob("hsi.*.npz"))
    assert alice_file.stat().st_gid == alice.pw_gid  # setgid folder: the team's group
    assert alice_file.stat().st_uid == alice.pw_uid and alice_file.stat().st_mode & 0o007 == 0

    # bob: submit as WG01, overwrite or delete alice's file, read it, or found a team folder first
    r = submit_as(bob, comp["teams"]["WG02"], arena, folder="WG01")
    assert r.returncode != 0 and "PermissionError" in r.stderr
    for code in (f"open({str(alice_file)!r}, 'wb')", f"import os; os.unlink({str(alice_file)!r})",
                 f"open({str(alice_file)!r}, 'rb').read()", f"import os; os.mkdir({str(subs / 'WG03')!r})",
                 f"open({str(subs / 'WG01' / 'hsi.0000000000000000.npz')!r}, 'wb')"):  # fmt: skip
        r = python_as(bob, code, arena)
        assert r.returncode != 0 and "PermissionError" in r.stderr, code
    assert alice_file.exists()

    # a file of bob's inside WG01's folder (e.g. copied there by an admin slip) is not WG01's
    planted = subs / "WG01" / "hsi.1111111111111111.npz"
    shutil.copy(next((subs / "WG02").glob("hsi.*.npz")), planted)
    os.chown(planted, bob.pw_uid, -1)
    result = organiser_build(arena, comp["organiser"])
    assert rejected(result) == {"WG01/hsi.1111111111111111.npz": "owned by rstx_bob, who is not a member of team WG01"}
    (board,) = result["boards"]
    assert [(rank, rec["team"], rec["owner"]) for rank, rec in board.ranked] == [(1, "WG02", "rstx_bob"), (2, "WG01", "rstx_alice")]


def test_a_teammate_cannot_delete_a_teammates_file(users: dict[str, Any], arena: Path) -> None:
    comp = setup_competition(arena)
    subprocess.run(["useradd", "-M", "-N", "-g", "rstx_wg01", "rstx_carol"], check=True)
    try:
        carol = pwd.getpwnam("rstx_carol")
        assert submit_as(users["rstx_alice"], comp["teams"]["WG01"], arena).returncode == 0
        (alice_file,) = list((arena / "board" / "submissions" / "WG01").glob("hsi.*.npz"))
        r = python_as(carol, f"import os; os.unlink({str(alice_file)!r})", arena)
        assert r.returncode != 0 and "PermissionError" in r.stderr  # the sticky bit
        r = python_as(carol, f"open({str(alice_file.parent / 'x.txt')!r}, 'w').write('mine')", arena)
        assert r.returncode == 0, r.stderr  # but may add her own files
        result = organiser_build(arena, comp["organiser"])
        assert "not a submission file" in rejected(result)["WG01/x.txt"]
    finally:
        subprocess.run(["userdel", "rstx_carol"], capture_output=True)


