"""Leaderboard, participant and organiser: teams submit predictions (fake-but-valid HSI runs in
the real ``rstransfer evaluate`` format: metrics.json + prediction.npy), the organiser scores
them against hidden labels, and every attack of a tutorial competition is quarantined while
the valid submissions are still ranked. The attacks that need two Unix users are in
test_leaderboard_users.py.

Everything is written under ``tmp_path``: each team's results in ``teams/<team>/``, the
shared leaderboard folder in ``board/``, the organiser's ground truth in ``organiser/gt``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import cli_env, run_cli_in, tiny_settings
from rstransfer.core.config import validate
from rstransfer.core.paths import Layout
from rstransfer.leaderboard import build as lbuild
from rstransfer.leaderboard import submission
from rstransfer.leaderboard.organiser import Ledger, write_truth
from rstransfer.leaderboard.records import submit
from rstransfer.leaderboard.render import Board, csv_cell, md_text, render_all
from rstransfer.leaderboard.tasks import SubmissionError, Truth, active_tasks, all_tasks

CLASSES = ["Asphalt", "Meadow", "Wheat", "Metal roof"]
SHAPE = (20, 20)
N_TEST = 200  # test pixels 0..199 of the 20 x 20 scene, label = index % 4: 50 per class


# ------------------------------------------------------------------------------ helpers
def hsi_truth() -> Truth:
    index = np.arange(N_TEST, dtype=np.int64)
    return Truth(
        {"benchmark": f"synthetic_target, disjoint split, {N_TEST} test px", "shape": list(SHAPE),
         "class_names": CLASSES, "dataset": "synthetic_target"},
        {"index": index, "label": (index % 4).astype(np.int16)},
    )  # fmt: skip


def predicted_map(correct: int) -> np.ndarray:
    """Class ids 1..4: ``correct`` of the 50 test pixels of each class right, the rest the next class."""
    labels = np.arange(SHAPE[0] * SHAPE[1]) % 4
    rank_in_class = np.arange(SHAPE[0] * SHAPE[1]) // 4
    pred = np.where(rank_in_class < correct, labels, (labels + 1) % 4)
    return (pred + 1).astype(np.int16).reshape(SHAPE)


def confusion(correct: int) -> list[list[int]]:
    """4 classes x 50 test pixels: ``correct`` right per class, the rest the next class."""
    cm = np.zeros((4, 4), dtype=int)
    for i in range(4):
        cm[i, i], cm[i, (i + 1) % 4] = correct, 50 - correct
    return cm.tolist()


def fake_run(folder: Path, policy: str, seed: int, correct: int, train_seconds: float = 3.0,
             job_ids: list[str] | None = None) -> None:  # fmt: skip
    """An hsi evaluate run folder as ``rstransfer evaluate`` writes it: metrics.json (the
    fine-tuning's train.json inside) and prediction.npy (the scene map)."""
    from rstransfer.core.metrics import scores

    folder.mkdir(parents=True, exist_ok=True)
    cm = confusion(correct)
    s = scores(np.asarray(cm))
    history = [{"epoch": str(e), "loss": str(1.0 / e), "accuracy": str(0.5 + 0.1 * e), "val_loss": str(1.1 / e),
                "val_accuracy": str(0.45 + 0.1 * e), "seconds": "0.3"} for e in (1, 2, 3)]  # fmt: skip
    run = {"cuda_visible_devices": "local", "hostname": "vm", "n_gpus": 0, "slurm_job_id": (job_ids or ["local"])[-1],
           "slurm_job_name": "local", "slurm_nodelist": "local", "slurm_ntasks": "local",
           "slurm_partition": "local", "world_size": 1}  # fmt: skip
    train = {
        "batch_size": 64, "best_epoch": 3, "best_val_loss": 0.36, "copied_layers": ["conv3d_1"],
        "dataset": "synthetic_target", "epochs_run": 3, "gpu_hours": 0.0, "model": "hybridsn", "n_train": 400,
        "n_val": 60, "policy": policy, "pretrained": None if policy == "Original" else "pretrain/model.keras",
        "run": run, "seconds_per_epoch": train_seconds / 3, "seed": seed, "step": "finetune",
        "total_params": 518772, "train_seconds": train_seconds, "trainable_params": 516, "world_size": 1,
        **({"slurm_job_ids": job_ids} if job_ids else {}),
    }  # fmt: skip
    metrics = {
        "AA": s["AA"], "Kappa": s["Kappa"], "OA": s["OA"], "class_names": CLASSES, "confusion_matrix": cm,
        "dataset": "synthetic_target", "history": history,
        "leakage": {"mean_train_pixels_per_test_window": 0.0, "test_pixels": N_TEST,
                    "test_pixels_with_train_in_window": 0, "val_pixels_with_train_in_window": 0, "window": 9},
        "map_pixels_per_second": 9000.0, "map_seconds": 1.0, "model": "hybridsn", "n_test": N_TEST,
        "per_class_accuracy": s["per_class_accuracy"], "policy": policy, "seed": seed, "split": "disjoint",
        "support": s["support"], "train": train,
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    np.save(folder / "prediction.npy", predicted_map(correct))


class Team:
    """One workgroup: validated config, layout, fake evaluated runs."""

    def __init__(self, root: Path, name: str, runs: dict[tuple[str, int], dict[str, Any]]) -> None:
        self.name, self.root = name, root
        policies = list(dict.fromkeys(p for p, _ in runs))
        self.settings = tiny_settings(
            root / "teams" / name / "results",
            {"team": name, "hsi": {"policies": policies, "seeds": sorted({s for _, s in runs})},
             "leaderboard": {"dir": str(root / "board"), "ground_truth": str(root / "organiser" / "gt")}},
        )  # fmt: skip
        self.cfg = validate(self.settings)
        self.layout = Layout.from_config(self.cfg)
        for (policy, seed), kwargs in runs.items():
            fake_run(self.run_dir(policy, seed), policy, seed, **kwargs)

    def run_dir(self, policy: str, seed: int) -> Path:
        return Path(self.layout.run_dir("hsi", "evaluate", f"{policy}/seed{seed}"))

    def submit(self, **kwargs: Any) -> dict[str, Any]:
        return submit(self.cfg, "hsi", self.layout, **kwargs)

    def config_file(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.settings))
        return path


def three_teams(root: Path) -> dict[str, Team]:
    """WG01 best 45/50 (and a worse run), WG02 48/50, WG03 42/50: ranks WG02, WG01, WG03."""
    return {
        "WG01": Team(root, "WG01", {("Network_2", 0): {"correct": 38}, ("Network_6", 0): {"correct": 45}}),
        "WG02": Team(root, "WG02", {("Original", 0): {"correct": 48, "train_seconds": 9.0}}),
        "WG03": Team(root, "WG03", {("Network_2", 0): {"correct": 42}}),
    }


def organise(root: Path) -> Path:
    """The organiser's hidden labels (mode 0700), as `rstransfer ground-truth` writes them."""
    gt = root / "organiser" / "gt"
    write_truth(gt, "hsi", hsi_truth())
    return gt


def lb_settings(**over: Any) -> dict[str, Any]:
    return {"teams": "", "sacct": "false", "max_submission_mb": 1, **over}


def build(root: Path, **over: Any) -> dict[str, Any]:
    board = root / "board"
    board.mkdir(parents=True, exist_ok=True)
    return lbuild.build(board, lb_settings(**over), str(root / "organiser" / "gt"), "Tutorial board")


def rejected(result: dict[str, Any]) -> dict[str, str]:
    return {r.file: r.reason for r in result["rejected"]}


def ranking(result: dict[str, Any]) -> list[tuple[int, str, float]]:
    (b,) = result["boards"]
    return [(rank, rec["team"], round(rec["scores"]["OA"], 4)) for rank, rec in b.ranked]


class Cli:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture
def teams(tmp_path: Path) -> dict[str, Team]:
    t = three_teams(tmp_path)
    for team in t.values():
        team.submit()
    organise(tmp_path)
    return t


def team_files(root: Path, team: str) -> list[Path]:
    return sorted((root / "board" / "submissions" / team).glob("hsi.*.npz"))


# ------------------------------------------------------------------ scoring by the organiser
def test_the_organiser_scores_predictions_and_ranks_one_row_per_team(teams: dict[str, Team], tmp_path: Path) -> None:
    result = build(tmp_path)
    assert ranking(result) == [(1, "WG02", 0.96), (2, "WG01", 0.9), (3, "WG03", 0.84)]
    (b,) = result["boards"]
    assert len(b.history) == 4 and result["rejected"] == []
    best = b.ranked[1][1]
    assert best["entry"] == "Network_6 seed 0" and best["confusion_matrix"][0][:2] == [45, 5]
    assert best["cost"]["source"] == "self-reported"  # no accounting for a local run
    rows = read_csv(tmp_path / "board" / "board" / "leaderboard.csv")
    assert [(r["rank"], r["team"], r["OA"]) for r in rows[:3]] == [("1", "WG02", "0.96"), ("2", "WG01", "0.9"), ("3", "WG03", "0.84")]
    md = (tmp_path / "board" / "board" / "leaderboard.md").read_text()
    assert "Scored by the organiser on hidden labels" in md and "## Rejected submissions" in md


def test_a_submission_holds_predictions_and_no_scores(teams: dict[str, Team], tmp_path: Path) -> None:
    (path,) = team_files(tmp_path, "WG03")
    meta, arrays = submission.read(path, 2**20, 2**23)
    assert set(arrays) == {"map"} and arrays["map"].shape == SHAPE
    flat = json.dumps(meta)
    assert "OA" not in flat and "confusion" not in flat and "Kappa" not in flat


def test_a_forged_perfect_confusion_matrix_is_rejected_and_the_board_still_built(teams: dict[str, Team], tmp_path: Path) -> None:
    """The old attack: a hand-written self-scored entry (perfect matrix, row sums kept, id recomputed)."""
    forged = {"format": 1, "team": "WG03", "task": "hsi", "entry": "Network_2 seed 0",
              "scores": {"OA": 1.0, "AA": 1.0, "Kappa": 1.0}, "confusion_matrix": [[50, 0], [0, 50]]}  # fmt: skip
    folder = tmp_path / "board" / "submissions" / "WG03"
    (folder / "hsi.0123456789abcdef.npz").write_text(json.dumps(forged))
    (folder / "perfect.json").write_text(json.dumps(forged))
    result = build(tmp_path)
    assert ranking(result)[-1] == (3, "WG03", 0.84)
    reasons = rejected(result)
    assert "not a readable .npz archive" in reasons["WG03/hsi.0123456789abcdef.npz"]
    assert "scores are never accepted" in reasons["WG03/perfect.json"]


def test_a_perfect_map_only_scores_perfectly_against_the_hidden_labels(tmp_path: Path) -> None:
    team = Team(tmp_path, "WG09", {("Original", 0): {"correct": 50}})
    team.submit()
    organise(tmp_path)
    assert ranking(build(tmp_path)) == [(1, "WG09", 1.0)]
    # the same map against other hidden labels: the participant's own view counts for nothing
    gt = tmp_path / "organiser" / "gt"
    truth = hsi_truth()
    truth.arrays["label"] = (truth.arrays["label"] + 2) % 4
    write_truth(gt, "hsi", truth)
    assert ranking(build(tmp_path)) == [(1, "WG09", 0.0)]


@pytest.mark.parametrize(
    "arrays, reason",
    [
        ({"map": np.zeros((3, 3), np.int16)}, "shape 3x3"),
        ({"map": np.full(SHAPE, 7, np.int16)}, "outside the classes"),
        ({"map": np.ones(SHAPE, np.float32)}, "integer array"),
        ({"map": predicted_map(50), "extra": np.zeros(2)}, "extra"),
        ({}, "map"),
    ],
)
def test_malformed_predictions_are_quarantined(teams: dict[str, Team], tmp_path: Path, arrays: dict[str, Any], reason: str) -> None:
    meta = {"format": 2, "team": "WG03", "task": "hsi", "entry": "hand made", "model": "none", "details": {},
            "cost": {"train_seconds": 1.0, "gpu_hours": 0.0, "trainable_params": 0, "total_params": 0, "slurm_job_ids": []}}  # fmt: skip
    path, new = submission.write_new(tmp_path / "board" / "submissions" / "WG03", meta, arrays)
    assert new
    result = build(tmp_path)
    assert reason in rejected(result)[f"WG03/{path.name}"]
    assert [t for _, t, _ in ranking(result)] == ["WG02", "WG01", "WG03"]


def test_an_edited_file_is_rejected(teams: dict[str, Team], tmp_path: Path) -> None:
    (path,) = team_files(tmp_path, "WG03")
    meta, arrays = submission.read(path, 2**20, 2**23)
    arrays["map"] = predicted_map(50)  # better predictions, old id
    path.write_bytes(submission.encode(meta, arrays))
    result = build(tmp_path)
    assert "does not match the id" in rejected(result)[f"WG03/{path.name}"]
    assert [t for _, t, _ in ranking(result)] == ["WG02", "WG01"]


def test_a_team_field_differing_from_its_folder_is_rejected(teams: dict[str, Team], tmp_path: Path) -> None:
    """Submitting as another team by writing into one's own folder."""
    meta = {"format": 2, "team": "WG02", "task": "hsi", "entry": "x", "model": "m", "details": {},
            "cost": {"train_seconds": 1.0, "gpu_hours": 0.0, "trainable_params": 0, "total_params": 0, "slurm_job_ids": []}}  # fmt: skip
    path, _ = submission.write_new(tmp_path / "board" / "submissions" / "WG03", meta, {"map": predicted_map(50)})
    assert "differs from its folder" in rejected(build(tmp_path))[f"WG03/{path.name}"]


def test_rerun_writes_nothing_new_and_submissions_are_never_replaced(teams: dict[str, Team], tmp_path: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in team_files(tmp_path, "WG01")}
    assert teams["WG01"].submit()["new"] == 0
    assert {p: p.stat().st_mtime_ns for p in team_files(tmp_path, "WG01")} == before
    fake_run(teams["WG01"].run_dir("Network_2", 0), "Network_2", 0, correct=49)
    assert teams["WG01"].submit()["new"] == 1  # a changed run is a new file; the old one stays
    assert len(team_files(tmp_path, "WG01")) == 3
    assert ranking(build(tmp_path))[0] == (1, "WG01", 0.98)


# ------------------------------------------------------------------ receipt time, ledger
def test_dates_come_from_the_ledger_not_the_file_mtime(teams: dict[str, Team], tmp_path: Path) -> None:
    first = build(tmp_path)
    dates = {r["id"]: r["date"] for r in first["records"]}
    for p in team_files(tmp_path, "WG02"):
        os.utime(p, (978307200, 978307200))  # touch -d 2001-01-01
    second = build(tmp_path)
    assert {r["id"]: r["date"] for r in second["records"]} == dates
    assert all(not d.startswith("2001") for d in dates.values())


def test_the_ledger_is_only_appended(teams: dict[str, Team], tmp_path: Path) -> None:
    ledger = tmp_path / "board" / "ledger.jsonl"
    build(tmp_path)
    before = ledger.read_bytes()
    assert len(before.splitlines()) == 4
    fake_run(teams["WG03"].run_dir("Network_2", 0), "Network_2", 0, correct=30)
    teams["WG03"].submit()
    build(tmp_path)
    after = ledger.read_bytes()
    assert after.startswith(before) and len(after.splitlines()) == 5


def test_two_builds_at_once_are_harmless(teams: dict[str, Team], tmp_path: Path) -> None:
    config = teams["WG01"].config_file(tmp_path / "organiser.yaml")
    procs = [
        subprocess.Popen([sys.executable, "-m", "rstransfer.cli", "leaderboard", "--config", str(config)],
                         cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    lines = (tmp_path / "board" / "ledger.jsonl").read_text().splitlines()
    digests = [json.loads(line)["sha256"] for line in lines]
    assert len(digests) == len(set(digests)) == 4
    html_text = (tmp_path / "board" / "board" / "leaderboard.html").read_text()
    assert html_text.endswith("</html>\n") and "WG02" in html_text
    assert not list((tmp_path / "board").glob(".board*"))


# ----------------------------------------------------------- quarantine, never block
def test_unreadable_odd_and_oversized_files_are_quarantined(teams: dict[str, Team], tmp_path: Path) -> None:
    subs = tmp_path / "board" / "submissions"
    (subs / "WG01" / "hsi.aaaaaaaaaaaaaaaa.npz").write_bytes(b"\x00garbage")
    big = subs / "WG01" / "hsi.bbbbbbbbbbbbbbbb.npz"
    with open(big, "wb") as f:  # 1 GiB, sparse
        f.truncate(2**30)
    os.mkfifo(subs / "WG01" / "hsi.cccccccccccccccc.npz")
    (subs / "WG01" / "hsi.dddddddddddddddd.npz").mkdir()
    (subs / "README.txt").write_text("not a team")
    (subs / "no team here").mkdir()
    (subs / "WG01" / os.fsdecode(b"hsi.\xff\xfe.npz")).write_bytes(b"x")  # not UTF-8: must not break the pages
    result = build(tmp_path)
    reasons = rejected(result)
    assert "not a readable .npz" in reasons["WG01/hsi.aaaaaaaaaaaaaaaa.npz"]
    assert "1024.0 MiB exceeds the limit of 1 MiB" in reasons["WG01/hsi.bbbbbbbbbbbbbbbb.npz"]
    assert "not a regular file" in reasons["WG01/hsi.cccccccccccccccc.npz"]
    assert "not a regular file" in reasons["WG01/hsi.dddddddddddddddd.npz"]
    assert "not a team folder" in reasons["README.txt"] and "not a team" in reasons["no team here"]
    assert "not a submission file" in reasons["WG01/hsi.\ufffd\ufffd.npz"]
    assert "hsi.\ufffd\ufffd.npz" in (tmp_path / "board" / "board" / "leaderboard.html").read_text()
    assert [t for _, t, _ in ranking(result)] == ["WG02", "WG01", "WG03"]


def test_a_zip_bomb_is_refused_before_it_is_unpacked(teams: dict[str, Team], tmp_path: Path) -> None:
    meta = {"format": 2, "team": "WG03", "task": "hsi", "entry": "x", "model": "m", "details": {},
            "cost": {"train_seconds": 1.0, "gpu_hours": 0.0, "trainable_params": 0, "total_params": 0, "slurm_job_ids": []}}  # fmt: skip
    path, _ = submission.write_new(tmp_path / "board" / "submissions" / "WG03", meta, {"map": np.zeros((4000, 4000), np.int64)})
    assert path.stat().st_size < 2**20  # 128 MB of zeros compress to under the file limit
    assert "decompress beyond the limit" in rejected(build(tmp_path))[f"WG03/{path.name}"]


def test_links_are_refused(teams: dict[str, Team], tmp_path: Path) -> None:
    subs = tmp_path / "board" / "submissions"
    (path,) = team_files(tmp_path, "WG03")
    os.symlink(path, subs / "WG02" / "hsi.ffffffffffffffff.npz")
    os.symlink(subs / "WG01", subs / "WG04")
    result = build(tmp_path)
    reasons = rejected(result)
    assert reasons["WG02/hsi.ffffffffffffffff.npz"] == "a symbolic link (refused)"
    assert reasons["WG04"] == "team folder is a symbolic link (refused)"
    assert [t for _, t, _ in ranking(result)] == ["WG02", "WG01", "WG03"]


def test_a_team_folder_writable_by_others_is_refused(teams: dict[str, Team], tmp_path: Path) -> None:
    os.chmod(tmp_path / "board" / "submissions" / "WG03", 0o777)
    assert "writable by other users" in rejected(build(tmp_path))["WG03"]


def test_teams_not_in_the_teams_file_are_rejected(teams: dict[str, Team], tmp_path: Path) -> None:
    me = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    teams_file = tmp_path / "teams.yaml"
    teams_file.write_text(yaml.safe_dump({"WG01": {"users": [me]}, "WG02": {"users": [me]}}))
    result = build(tmp_path, teams=str(teams_file))
    assert rejected(result) == {"WG03": "not a team of this competition (teams file)"}
    assert [t for _, t, _ in ranking(result)] == ["WG02", "WG01"]


# --------------------------------------------------------------- organiser's own errors
def test_the_organisers_misconfiguration_fails_the_build_in_one_line(teams: dict[str, Team], tmp_path: Path) -> None:
    config = teams["WG01"].config_file(tmp_path / "organiser.yaml")
    gt = tmp_path / "organiser" / "gt"
    os.chmod(gt, 0o755)
    r = Cli(*run_cli_in(tmp_path, "leaderboard", "--config", config))
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0
    assert "leaderboard.ground_truth" in r.stderr and "open to other users (mode 0755)" in r.stderr
    os.chmod(gt, 0o700)
    (tmp_path / "teams.yaml").write_text("WG01: {users: [no_such_user_rstx]}\n")
    settings = {**teams["WG01"].settings, "leaderboard": {**teams["WG01"].settings["leaderboard"], "teams": str(tmp_path / "teams.yaml")}}
    config.write_text(yaml.safe_dump(settings))
    r = Cli(*run_cli_in(tmp_path, "leaderboard", "--config", config))
    assert r.returncode != 0 and "no such user 'no_such_user_rstx'" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "board" / "board").exists()


def test_cli_build_lists_rejections_and_exits_zero(teams: dict[str, Team], tmp_path: Path) -> None:
    (tmp_path / "board" / "submissions" / "WG02" / "notes.txt").write_text("hello")
    config = teams["WG01"].config_file(tmp_path / "organiser.yaml")
    r = Cli(*run_cli_in(tmp_path, "leaderboard", "--config", config))
    assert r.returncode == 0, r.stderr
    assert "3 team(s), 4 scored, 1 rejected" in r.stdout and "rejected WG02/notes.txt" in r.stdout


def test_cli_leaderboard_dir_typo_is_one_line_error_and_makes_nothing(teams: dict[str, Team], tmp_path: Path) -> None:
    config = teams["WG01"].config_file(tmp_path / "organiser.yaml")
    r = Cli(*run_cli_in(tmp_path, "leaderboard", "--config", config, "--dir", tmp_path / "bord"))
    assert r.returncode != 0 and "no such folder" in r.stderr and not (tmp_path / "bord").exists()


# ------------------------------------------------------------------------ participant side
@pytest.mark.parametrize("bad", ["../WG01", "WG01/..", "a b", "", "x" * 33, "WG.1"])
def test_path_like_team_names_are_refused_on_submit(tmp_path: Path, bad: str) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {"correct": 40}})
    with pytest.raises(SubmissionError, match="not a valid team name"):
        team.submit(team=bad)
    assert not (tmp_path / "board" / "submissions").exists()


def test_markup_in_an_entry_is_refused_on_submit(tmp_path: Path) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {"correct": 40}})
    metrics = team.run_dir("Network_2", 0) / "metrics.json"
    m = json.loads(metrics.read_text())
    m["model"] = m["train"]["model"] = "[win](http://evil.example)"
    metrics.write_text(json.dumps(m))
    with pytest.raises(SubmissionError, match="not plain text"):
        team.submit()
    assert not (tmp_path / "board" / "submissions" / "WG01").exists() or not team_files(tmp_path, "WG01")


def test_submit_refuses_a_linked_team_folder(tmp_path: Path) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {"correct": 40}})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "board" / "submissions").mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere", tmp_path / "board" / "submissions" / "WG01")
    with pytest.raises(SubmissionError, match="symbolic link"):
        team.submit()
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_team_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {"correct": 40}})
    (tmp_path / "board").mkdir()
    (tmp_path / "board" / "submissions").write_text("not a folder")
    with pytest.raises(SubmissionError, match=r"cannot create it \(.*\); the organiser sets team folders up"):
        team.submit()


def test_receipt_lists_the_files_and_no_score(teams: dict[str, Team], tmp_path: Path) -> None:
    config = teams["WG03"].config_file(tmp_path / "wg03.yaml")
    out = tmp_path / "receipt.json"
    r = Cli(*run_cli_in(tmp_path, "submit", "--config", config, "--task", "hsi", "--out", out))
    assert r.returncode == 0, r.stderr
    receipt = json.loads(out.read_text())
    assert receipt["team"] == "WG03" and [Path(s["file"]) for s in receipt["submissions"]] == team_files(tmp_path, "WG03")
    assert "score" not in json.dumps(receipt["submissions"])


# ------------------------------------------------------------------------- renderers
def hostile_record() -> dict[str, Any]:
    text = '![x](http://evil.example/a.png) [click](javascript:alert(1)) <script>alert(1)</script> | =cmd'
    return {"team": "WG01", "task": "hsi", "id": "0123456789abcdef", "entry": text, "model": "=HYPERLINK(1)",
            "benchmark": "b", "scores": {"OA": 0.5, "AA": 0.5, "Kappa": 0.1}, "date": "2030-01-02T03:04:05Z",
            "cost": {"train_seconds": 1.0, "gpu_hours": 0.0, "trainable_params": 1, "total_params": 2,
                     "source": "self-reported"}}  # fmt: skip


def test_every_renderer_escapes_its_format() -> None:
    rec = hostile_record()
    rej = [lbuild.Rejected("WG01/<img src=x>[a](http://e).npz", "reason with ![i](http://e/i.png)")]
    files = render_all([Board("hsi", "b", [(1, rec)], [rec])], [rec], rej, "T")
    assert "<script>" not in files["html"] and "&lt;script&gt;" in files["html"] and "<img" not in files["html"]
    md = files["md"]
    for line in md.splitlines():
        if "evil.example" in line or "http://e" in line:  # only inside code spans: no link, no image
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            assert all(c.startswith("`") and c.endswith("`") for c in cells if "http" in c), line
    rows = read_csv_text(files["csv"])
    assert rows[0]["model"] == "'=HYPERLINK(1)"
    assert csv_cell("-1+1") == "'-1+1" and csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell("ok") == "ok"
    assert md_text("a|b") == "`a\\|b`"


def read_csv_text(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_self_reported_cost_is_marked(teams: dict[str, Team], tmp_path: Path) -> None:
    build(tmp_path)
    html_text = (tmp_path / "board" / "board" / "leaderboard.html").read_text()
    assert "<td>9.0 *</td>" in html_text and "self-reported where marked *" in html_text
    assert {r["cost_source"] for r in read_csv(tmp_path / "board" / "board" / "leaderboard.csv")} == {"self-reported"}


def test_the_three_boards_are_published_together(teams: dict[str, Team], tmp_path: Path) -> None:
    build(tmp_path)
    board = tmp_path / "board" / "board"
    assert sorted(p.name for p in board.iterdir()) == ["leaderboard.csv", "leaderboard.html", "leaderboard.md"]
    inode = board.stat().st_ino
    fake_run(teams["WG03"].run_dir("Network_2", 0), "Network_2", 0, correct=50)
    teams["WG03"].submit()
    build(tmp_path)
    assert board.stat().st_ino != inode  # a new folder swapped in, not files rewritten one by one
    assert "WG03" in read_csv(board / "leaderboard.csv")[0]["team"]


# ------------------------------------------------------------------------- tasks, schema
def test_tasks_follow_the_config(tmp_path: Path) -> None:
    cfg = validate(tiny_settings(tmp_path / "r"))
    assert "hsi" in active_tasks(cfg)
    cfg["hsi"]["enabled"] = False
    assert "hsi" not in active_tasks(cfg)
    assert {"hsi", "vaihingen", "multilabel"} <= set(all_tasks())
    for task in all_tasks().values():
        assert task.columns[0][0] == task.metric


def test_vaihingen_board_ranks_on_tile_15_with_tile_23_beside_it() -> None:
    task = all_tasks()["vaihingen"]
    assert task.metric == "OA" and [h for _, h in task.columns][:2] == ["OA area 15 (%)", "OA area 23 (%)"]


def test_ledger_refuses_a_file_others_can_write(tmp_path: Path) -> None:
    (tmp_path / "ledger.jsonl").write_text("")
    os.chmod(tmp_path / "ledger.jsonl", 0o666)
    with pytest.raises(Exception, match="writable by nobody else"):
        Ledger(tmp_path)


def test_dry_run_lists_submit_ground_truth_and_leaderboard(snakemake: Any, tmp_path: Path) -> None:
    from conftest import REPO_ROOT
    from rstransfer.core.config import load_config

    results = tmp_path / "results"
    proc = snakemake("-n", "--nolock", "-p", results=results)
    assert proc.returncode == 0, proc.stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    tasks = active_tasks(load_config([REPO_ROOT / "config.yaml"]))
    assert counts.get("leaderboard") == "1" and counts.get("ground_truth") == "1", proc.stdout
    assert int(counts.get("submit", 0)) == len(tasks) == 3
    assert f"rstransfer submit --config {results}/config/effective.yaml --task hsi --out {results}/submit/hsi.json" in proc.stdout
    assert f"rstransfer ground-truth --config {results}/config/effective.yaml --out {results}/organiser/ground_truth " in proc.stdout
    assert f"rstransfer leaderboard --config {results}/config/effective.yaml " in proc.stdout
    assert sorted(p.name for p in results.iterdir()) == ["config"]


# --------------------------------------------------------------- cost from SLURM accounting
def fake_sacct(tmp_path: Path, lines: list[str], rc: int = 0) -> str:
    """An ``sacct`` that prints what ``sacct -X -n -P -o JobID,User,ElapsedRaw,AllocTRES,State`` prints."""
    script = tmp_path / "sacct"
    body = "".join(f"echo '{line}'\n" for line in lines)
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/sacct.args\n{body}exit {rc}\n")
    script.chmod(0o755)
    return str(script)


def test_training_time_comes_from_sacct_with_the_jobs_user(tmp_path: Path) -> None:
    me = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    team = Team(tmp_path, "WG01", {("Network_2", 0): {"correct": 40, "train_seconds": 0.5, "job_ids": ["101", "102"]}})
    thief = Team(tmp_path, "WG02", {("Network_2", 0): {"correct": 45, "job_ids": ["303"]}})
    team.submit(), thief.submit()
    organise(tmp_path)
    sacct = fake_sacct(tmp_path, [f"101|{me}|3000|billing=1,cpu=4,gres/gpu=2,mem=8G,node=1|TIMEOUT",
                                  f"102|{me}|600|cpu=4,gres/gpu=2,node=1|COMPLETED",
                                  "303|somebody_else|60|cpu=1,gres/gpu=1|COMPLETED"])  # fmt: skip
    result = build(tmp_path, sacct=sacct)
    (rec,) = result["records"]
    assert rec["cost"]["source"] == "sacct" and rec["cost"]["train_seconds"] == 3600.0
    assert rec["cost"]["gpu_hours"] == pytest.approx(2.0)  # (3000 + 600) s x 2 GPUs
    assert "-X" in (tmp_path / "sacct.args").read_text() and "101,102" in (tmp_path / "sacct.args").read_text()
    (file,) = [f for f in rejected(result) if f.startswith("WG02/")]
    assert "SLURM job 303 ran as user 'somebody_else', not a member of the team" == rejected(result)[file]


def test_an_unknown_job_id_is_rejected_and_no_accounting_means_self_reported(tmp_path: Path) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {"correct": 40, "job_ids": ["999"]}})
    team.submit()
    organise(tmp_path)
    result = build(tmp_path, sacct=fake_sacct(tmp_path, []))
    assert list(rejected(result).values()) == ["SLURM job 999 is not in the accounting records"]
    failing = fake_sacct(tmp_path, [], rc=1)  # e.g. "Slurm accounting storage is disabled"
    (rec,) = build(tmp_path, sacct=failing)["records"]
    assert rec["cost"]["source"] == "self-reported" and rec["cost"]["train_seconds"] == 3.0
