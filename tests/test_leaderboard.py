"""Leaderboard: submissions from fake-but-valid team runs (metrics.json in the real
``rstransfer evaluate`` format, scores computed from the confusion matrix), ranking, history,
every validation rejection, CSV neutralisation, byte-identical rebuilds, no external fetches,
the CLI's one-line errors, and the two rules in the DAG.

Everything is written under ``tmp_path``: each team's results in ``teams/<team>/``, the
shared leaderboard folder in ``board/``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import run_cli_in, tiny_settings
from rstransfer.core.config import load_schema, validate
from rstransfer.core.errors import ConfigError
from rstransfer.leaderboard.records import content_id, load_submissions, submit
from rstransfer.leaderboard.render import build, csv_cell
from rstransfer.leaderboard.tasks import SubmissionError, active_tasks, all_tasks, get_task
from rstransfer.core.metrics import scores
from rstransfer.core.paths import Layout

PER_CLASS = 50  # test pixels per class in the fake confusion matrices
CLASSES = ["Asphalt", "Meadow", "Wheat", "Metal roof"]


# ------------------------------------------------------------------------------ helpers
def confusion(correct: int | list[int]) -> list[list[int]]:
    """4 classes x 50 test pixels; ``correct`` right per class, the rest go to the next class."""
    per_class = [correct] * len(CLASSES) if isinstance(correct, int) else correct
    cm = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    for i, k in enumerate(per_class):
        cm[i, i] = k
        cm[i, (i + 1) % len(CLASSES)] = PER_CLASS - k
    return cm.tolist()


def fake_metrics(policy: str, seed: int, cm: list[list[int]], train_seconds: float = 3.0, trainable: int = 516) -> dict[str, Any]:
    """metrics.json as ``rstransfer evaluate`` writes it (the fine-tuning's train.json inside)."""
    s = scores(np.asarray(cm))
    history = [
        {"epoch": str(e), "loss": str(1.0 / e), "accuracy": str(0.5 + 0.1 * e), "val_loss": str(1.1 / e),
         "val_accuracy": str(0.45 + 0.1 * e), "seconds": "0.3"}
        for e in (1, 2, 3)
    ]  # fmt: skip
    n_test = int(np.sum(cm))
    run = {"cuda_visible_devices": "local", "hostname": "vm", "n_gpus": 0, "slurm_job_id": "local",
           "slurm_job_name": "local", "slurm_nodelist": "local", "slurm_ntasks": "local",
           "slurm_partition": "local", "world_size": 1}  # fmt: skip
    train = {
        "batch_size": 64, "best_epoch": 3, "best_val_loss": 0.36, "copied_layers": ["conv3d_1"],
        "dataset": "synthetic_target", "epochs_run": 3, "gpu_hours": 0.0, "model": "hybridsn", "n_train": 400,
        "n_val": 60, "policy": policy, "pretrained": None if policy == "Original" else "pretrain/model.keras",
        "run": run, "seconds_per_epoch": train_seconds / 3, "seed": seed, "step": "finetune",
        "total_params": 518772, "train_seconds": train_seconds, "trainable_params": trainable, "world_size": 1,
    }  # fmt: skip
    return {
        "AA": s["AA"], "Kappa": s["Kappa"], "OA": s["OA"], "class_names": CLASSES, "confusion_matrix": cm,
        "dataset": "synthetic_target", "history": history,
        "leakage": {"mean_train_pixels_per_test_window": 0.0, "test_pixels": n_test,
                    "test_pixels_with_train_in_window": 0, "val_pixels_with_train_in_window": 0, "window": 9},
        "map_pixels_per_second": 9000.0, "map_seconds": 1.0, "model": "hybridsn", "n_test": n_test,
        "per_class_accuracy": s["per_class_accuracy"], "policy": policy, "seed": seed, "split": "disjoint",
        "support": s["support"], "train": train,
    }  # fmt: skip


class Team:
    """One workgroup: its validated config, results layout and fake evaluated runs."""

    def __init__(self, root: Path, name: str, runs: dict[tuple[str, int], dict[str, Any]]) -> None:
        self.name = name
        policies = list(dict.fromkeys(p for p, _ in runs))
        seeds = sorted({s for _, s in runs})
        self.settings = tiny_settings(
            root / "teams" / name / "results",
            {"team": name, "hsi": {"policies": policies, "seeds": seeds}, "leaderboard": {"dir": str(root / "board")}},
        )
        self.cfg = validate(self.settings)
        self.layout = Layout.from_config(self.cfg)
        for (policy, seed), kwargs in runs.items():
            self.write(policy, seed, **kwargs)

    def metrics_path(self, policy: str, seed: int) -> Path:
        """``<results>/hsi/evaluate/<policy>/seed<seed>/metrics.json``: the hsi evaluate run folder."""
        return Path(self.layout.run_dir("hsi", "evaluate", f"{policy}/seed{seed}", file="metrics.json"))

    def write(self, policy: str, seed: int, correct: int | list[int] = 40, **kwargs: Any) -> Path:
        path = self.metrics_path(policy, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fake_metrics(policy, seed, confusion(correct), **kwargs), indent=2))
        return path

    def edit(self, policy: str, seed: int, change: Callable[[dict[str, Any]], None]) -> None:
        path = self.metrics_path(policy, seed)
        m = json.loads(path.read_text())
        change(m)
        path.write_text(json.dumps(m))

    def submit(self, **kwargs: Any) -> dict[str, Any]:
        return submit(self.cfg, "hsi", self.layout, **kwargs)

    def config_file(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.settings))
        return path


def three_teams(root: Path) -> dict[str, Team]:
    """WG01 best 45/50 (with a worse second run), WG02 48/50, WG03 42/50: ranks WG02, WG01, WG03."""
    return {
        "WG01": Team(root, "WG01", {("Network_2", 0): {"correct": 38}, ("Network_6", 0): {"correct": 45}}),
        "WG02": Team(root, "WG02", {("Original", 0): {"correct": 48, "train_seconds": 9.0, "trainable": 518772}}),
        "WG03": Team(root, "WG03", {("Network_2", 0): {"correct": 42}}),
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def teams(tmp_path: Path) -> dict[str, Team]:
    t = three_teams(tmp_path)
    for team in t.values():
        team.submit()
    return t


@pytest.fixture
def board(tmp_path: Path) -> Path:
    return tmp_path / "board"


def only_file(board: Path, team: str) -> Path:
    (path,) = sorted((board / "submissions" / team / "hsi").glob("*.json"))
    return path


# ------------------------------------------------------------------------------ ranking
def test_ranking_one_row_per_team_its_best_and_history_kept(teams: dict[str, Team], board: Path) -> None:
    result = build(board)
    assert (result["teams"], result["submissions"]) == (3, 4)
    rows = read_csv(board / "leaderboard.csv")
    ranked = [r for r in rows if r["best"] == "yes"]
    assert [(r["rank"], r["team"], r["entry"]) for r in ranked] == [
        ("1", "WG02", "Original seed 0"),
        ("2", "WG01", "Network_6 seed 0"),
        ("3", "WG03", "Network_2 seed 0"),
    ]
    assert [float(r["OA"]) for r in ranked] == [0.96, 0.9, 0.84]
    assert ranked[0]["trainable_params"] == "518772" and ranked[0]["train_seconds"] == "9.0"
    # the history keeps WG01's weaker run, unranked
    (other,) = [r for r in rows if r["best"] == "no"]
    assert (other["team"], other["entry"], other["rank"], other["OA"]) == ("WG01", "Network_2 seed 0", "", "0.76")
    assert {r["id"] for r in rows} == {p.stem for p in (board / "submissions").rglob("*.json")}
    md = (board / "leaderboard.md").read_text()
    assert md.index("| 1 | WG02") < md.index("| 2 | WG01") < md.index("| 3 | WG03")
    assert md.count("| WG01 | Network_2 seed 0 |") == 1  # in the history only


def test_equal_scores_share_a_rank_cheaper_run_first(tmp_path: Path) -> None:
    for name, seconds in (("WG05", 8.0), ("WG04", 2.0), ("WG06", 1.0)):
        Team(tmp_path, name, {("Network_2", 0): {"correct": 44 if name != "WG06" else 30, "train_seconds": seconds}}).submit()
    build(tmp_path / "board")
    ranked = [r for r in read_csv(tmp_path / "board" / "leaderboard.csv") if r["best"] == "yes"]
    assert [(r["rank"], r["team"]) for r in ranked] == [("1", "WG04"), ("1", "WG05"), ("3", "WG06")]


def test_a_better_new_run_takes_the_team_row_and_keeps_the_old_one(teams: dict[str, Team], board: Path) -> None:
    team = teams["WG03"]
    team.write("Network_2", 0, correct=49)  # the team retrains: a new submission, new id
    assert team.submit()["new"] == 1
    build(board)
    rows = read_csv(board / "leaderboard.csv")
    assert [r["team"] for r in rows if r["best"] == "yes"] == ["WG03", "WG02", "WG01"]
    assert sorted(r["OA"] for r in rows if r["team"] == "WG03") == ["0.84", "0.98"]


# ---------------------------------------------------------------------- idempotence
def test_rerun_is_a_no_op_and_boards_are_byte_identical(teams: dict[str, Team], board: Path) -> None:
    build(board)
    before = snapshot(board)
    mtimes = {p: p.stat().st_mtime_ns for p in (board / "submissions").rglob("*.json")}
    for team in teams.values():
        os.utime(team.metrics_path(*next(iter(team_runs(team)))))  # re-evaluated: same content, new mtime
        assert team.submit()["new"] == 0
    assert {p: p.stat().st_mtime_ns for p in (board / "submissions").rglob("*.json")} == mtimes
    build(board)
    assert snapshot(board) == before


def team_runs(team: Team) -> list[tuple[str, int]]:
    return [(p, s) for p in team.cfg["hsi"]["policies"] for s in team.cfg["hsi"]["seeds"]]


def test_only_submission_dates_appear_on_the_boards(teams: dict[str, Team], board: Path) -> None:
    build(board)
    dates = {r["date"] for r in load_submissions(board)}
    html = (board / "leaderboard.html").read_text()
    for d in dates:
        html = html.replace(f"{d[:10]} {d[11:16]} UTC", "")
    assert not re.search(r"\d\d:\d\d", html)


def test_receipt_lists_the_team_submissions(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    team = Team(tmp_path, "WG07", {("Network_2", 0): {}, ("Network_3", 0): {"correct": 30}})
    cfg_path = team.config_file(tmp_path / "wg07.yaml")
    rc, out, err = run_cli("submit", "--config", cfg_path)
    assert rc == 0, err
    assert "submitted WG07/hsi: 2 run(s), 2 new" in out
    receipt = json.loads(Path(team.layout.submit_receipt("hsi")).read_text())
    assert receipt["team"] == "WG07" and len(receipt["submissions"]) == 2
    rc, out, _ = run_cli("submit", "--config", cfg_path)
    assert rc == 0 and "2 run(s), 0 new" in out
    assert Path(team.layout.submit_receipt("hsi")).read_text() == json.dumps(receipt, indent=2, sort_keys=True) + "\n"


# ------------------------------------------------------------------------- rejections
@pytest.mark.parametrize("bad", ["WG/07", "../WG07", "..", ".", "WG.07", "WG 07", "", "W" * 33])
def test_bad_team_names_are_rejected(tmp_path: Path, bad: str) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {}})
    with pytest.raises(SubmissionError, match="not a valid team name"):
        team.submit(team=bad)
    assert not (tmp_path / "board").exists()
    with pytest.raises(ConfigError, match="team"):  # and through the config (the same schema pattern)
        validate({**team.cfg, "team": bad})


def test_cli_rejects_a_path_as_team_in_one_line(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {}})
    cfg_path = team.config_file(tmp_path / "c.yaml")
    rc, out, err = run_cli("submit", "--config", cfg_path, "--team", "../WG02")
    assert rc == 2
    assert err.strip().splitlines() == [
        "rstransfer: error: team: '../WG02' is not a valid team name (1-32 of A-Z a-z 0-9 _ -; no '/', '.' or spaces)"
    ]
    assert not (tmp_path / "board").exists() and not (tmp_path / "WG02").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(OA=1.2), r"OA = 1.2 is out of range \[0, 1\]"),
        (lambda m: m.update(Kappa=-1.5), r"Kappa = -1.5 is out of range \[-1, 1\]"),
        (lambda m: m.update(OA=float("nan")), "OA = nan is out of range"),
        (lambda m: m.update(OA="0.9"), "expected a number"),
        (lambda m: m["confusion_matrix"][0].__setitem__(0, 49), ": OA = 0.8 does not match the confusion matrix"),
        (lambda m: m.update(AA=m["AA"] - 0.01), ": AA = .* does not match the confusion matrix"),
        (lambda m: m["confusion_matrix"].pop(), "expected a non-empty square matrix"),
        (lambda m: m["confusion_matrix"][1].__setitem__(1, -3), "expected a non-negative integer, got -3"),
        (lambda m: m.pop("Kappa"), "missing key 'Kappa'"),
        (lambda m: m.pop("confusion_matrix"), "missing key 'confusion_matrix'"),
        (lambda m: m["train"].pop("train_seconds"), "missing key 'train.train_seconds'"),
        (lambda m: m["train"].update(trainable_params=10**9), "trainable_params 1000000000 exceeds"),
        (lambda m: m["train"].update(seed=3), "differ from policy/seed"),
        (lambda m: m.update(dataset="synthetic_source"), "is not the config's hsi.target"),
    ],
    ids=["OA>1", "kappa<-1", "OA-nan", "OA-text", "cm-vs-OA", "AA-vs-cm", "cm-not-square", "cm-negative",
         "no-kappa", "no-cm", "no-train-seconds", "params", "seed-mismatch", "wrong-scene"],  # fmt: skip
)
def test_invalid_runs_are_rejected_before_anything_is_written(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {}, ("Network_3", 0): {}})
    team.edit("Network_3", 0, change)
    with pytest.raises(SubmissionError, match=message) as err:
        team.submit()
    assert "\n" not in str(err.value) and "Network_3/seed0/metrics.json" in str(err.value)
    assert not (tmp_path / "board").exists()  # the valid run was not submitted either


def test_missing_run_is_rejected(tmp_path: Path) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {}, ("Network_3", 0): {}})
    team.metrics_path("Network_3", 0).unlink()
    with pytest.raises(SubmissionError, match=r"Network_3/seed0/metrics.json: not found \(evaluate the run first\)"):
        team.submit()


def test_a_team_cannot_overwrite_or_delete_another_teams_entries(teams: dict[str, Team], board: Path) -> None:
    others = {t: snapshot(board / "submissions" / t) for t in ("WG01", "WG03")}
    team = teams["WG02"]
    team.write("Original", 0, correct=20)  # a new run of WG02
    team.submit()
    team.submit(team="WG02")
    for t, files in others.items():
        assert snapshot(board / "submissions" / t) == files
    assert len(list((board / "submissions" / "WG02" / "hsi").glob("*.json"))) == 2  # nothing deleted
    # submit writes only under its own team folder
    written = {p.relative_to(board).parts[:3] for p in (board / "submissions").rglob("*.json")}
    assert written == {("submissions", t, "hsi") for t in ("WG01", "WG02", "WG03")}


def test_an_existing_id_with_different_content_is_not_overwritten(teams: dict[str, Team], board: Path) -> None:
    path = only_file(board, "WG03")
    rec = json.loads(path.read_text())
    rec["scores"]["OA"] = 0.99  # somebody edited the file in place
    path.write_text(json.dumps(rec))
    tampered = path.read_bytes()
    with pytest.raises(SubmissionError, match="exists with different content; submissions are immutable"):
        teams["WG03"].submit()
    assert path.read_bytes() == tampered
    with pytest.raises(SubmissionError, match=rf"{path.name}: scores.OA = 0.99 does not match the confusion matrix"):
        build(board)


def test_an_edited_submission_is_rejected_by_the_board(teams: dict[str, Team], board: Path) -> None:
    path = only_file(board, "WG03")
    rec = json.loads(path.read_text())
    rec["confusion_matrix"] = confusion(50)
    rec["scores"] = {k: v for k, v in scores(np.asarray(rec["confusion_matrix"])).items() if k in ("OA", "AA", "Kappa")}
    path.write_text(json.dumps(rec))  # consistent scores, but the id no longer matches
    with pytest.raises(SubmissionError, match="does not match the content"):
        build(board)


def test_team_field_must_match_its_folder(teams: dict[str, Team], board: Path) -> None:
    """A valid WG01 submission dropped into WG03's folder (or WG03 claiming to be WG01)."""
    src = only_file(board, "WG02")
    (board / "submissions" / "WG03" / "hsi" / src.name).write_bytes(src.read_bytes())
    with pytest.raises(SubmissionError, match=r"team 'WG02' differs from its folder 'WG03'"):
        build(board)


def test_a_submission_file_missing_a_key_is_rejected(teams: dict[str, Team], board: Path) -> None:
    path = only_file(board, "WG03")
    rec = json.loads(path.read_text())
    del rec["cost"]["gpu_hours"]
    rec["id"] = content_id(rec)
    path.with_name(f"{rec['id']}.json").write_text(json.dumps(rec))
    path.unlink()
    with pytest.raises(SubmissionError, match=r"missing key 'cost.gpu_hours'"):
        build(board)


@pytest.mark.parametrize("name", ["WG.01", "has space", "a=b"])
def test_a_bad_team_folder_is_rejected(teams: dict[str, Team], board: Path, name: str) -> None:
    (board / "submissions" / name / "hsi").mkdir(parents=True)
    with pytest.raises(SubmissionError, match="folder name: .* is not a valid team name"):
        build(board)


def test_cli_leaderboard_reports_a_bad_submission_in_one_line(teams: dict[str, Team], board: Path) -> None:
    path = only_file(board, "WG03")
    path.write_text("{not json")
    rc, out, err = run_cli_in(board.parent, "leaderboard", "--dir", board)
    assert rc == 2, out
    (line,) = err.strip().splitlines()
    assert line.startswith(f"rstransfer: error: {path}: not valid JSON")
    assert not (board / "leaderboard.html").exists()


def test_tasks_follow_the_config_and_unknown_tasks_are_rejected(tmp_path: Path) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {}})
    assert active_tasks(team.cfg) == ["hsi"]  # segmentation disabled
    assert active_tasks(validate({**team.cfg, "segmentation": SEGMENTATION})) == ["hsi", "vaihingen"]
    with pytest.raises(SubmissionError, match="task 'nope': unknown"):
        submit(team.cfg, "nope", team.layout)
    for name, task in all_tasks().items():
        if task.pending:
            with pytest.raises(SubmissionError, match="not available yet"):
                get_task(name)


def test_a_disabled_study_has_no_task(tmp_path: Path) -> None:
    """Studies are switched by ``<study>.enabled`` now (hsi too): a team that runs only the
    segmentation study submits only to vaihingen (else rule submit waits for hsi runs no rule makes)."""
    team = Team(tmp_path, "WG01", {("Network_2", 0): {}})
    assert active_tasks(validate({**team.cfg, "hsi": {**team.cfg["hsi"], "enabled": False}})) == []
    seg_only = validate({**team.cfg, "hsi": {**team.cfg["hsi"], "enabled": False}, "segmentation": SEGMENTATION})
    assert active_tasks(seg_only) == ["vaihingen"]


# ------------------------------------------------------------------ vaihingen task
SEGMENTATION = {
    "enabled": True,
    "synthetic": {"enabled": True},
    "tiles": {"train": [1, 3], "val": [30], "test": [15, 23]},
    "experiments": {"scratch_aug": {"pretrained": "none"}, "standin_aug": {"pretrained": "run:scratch_aug"}},
}
SEG_CLASSES = ["impervious", "building", "low_vegetation", "tree", "car", "clutter"]


def seg_confusion(correct: int, per_class: int = 100) -> list[list[int]]:
    cm = np.zeros((6, 6), dtype=int)
    for i in range(6):
        cm[i, i], cm[i, (i + 1) % 6] = correct, per_class - correct
    return cm.tolist()


def seg_metrics_path(team: Team, experiment: str, tile: int) -> Path:
    """``<results>/segmentation/evaluate/<experiment>/area<tile>/metrics.json``: one evaluate run folder."""
    return Path(team.layout.run_dir("segmentation", "evaluate", f"{experiment}/area{tile}", file="metrics.json"))


def write_tile(team: Team, experiment: str, tile: int, cm: list[list[int]], seconds: float = 40.0) -> Path:
    """metrics.json as ``rstransfer evaluate --study segmentation`` writes it (the finetune
    step's train.json inside)."""
    s = scores(np.asarray(cm))
    train = {"experiment": experiment, "model": "resnet50_fcn", "policy": "fcn_all", "pretrained": "none",
             "augment": True, "train_seconds": seconds, "gpu_hours": 0.0, "trainable_params": 23556114,
             "total_params": 23609234, "epochs_run": 2, "step": "finetune"}  # fmt: skip
    m = {"OA": s["OA"], "AA": s["AA"], "Kappa": s["Kappa"], "class_names": SEG_CLASSES, "confusion_matrix": cm,
         "experiment": experiment, "tile": tile, "tile_split": "test",
         "per_class_accuracy": s["per_class_accuracy"], "support": s["support"], "train": train,
         "weights": "weights.h5", "windows": 15}  # fmt: skip
    path = seg_metrics_path(team, experiment, tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(m))
    return path


def seg_team(root: Path, name: str, correct: dict[str, tuple[int, int]]) -> Team:
    team = Team(root, name, {("Network_2", 0): {}})
    team.settings["segmentation"] = SEGMENTATION
    team.cfg = validate(team.settings)
    for experiment, (c15, c23) in correct.items():
        write_tile(team, experiment, 15, seg_confusion(c15))
        write_tile(team, experiment, 23, seg_confusion(c23))
    return team


def test_vaihingen_entries_score_all_test_tiles_together(tmp_path: Path) -> None:
    a = seg_team(tmp_path, "WG01", {"scratch_aug": (60, 80), "standin_aug": (90, 56)})
    b = seg_team(tmp_path, "WG02", {"scratch_aug": (75, 75), "standin_aug": (10, 20)})
    for team in (a, b):
        team.submit()
        assert submit(team.cfg, "vaihingen", team.layout)["new"] == 2
    build(tmp_path / "board")
    rows = read_csv(tmp_path / "board" / "leaderboard.csv")
    seg = [r for r in rows if r["task"] == "vaihingen"]
    # summed confusion matrices: WG01 standin (90+56)/200 = 0.73 > scratch (60+80)/200; WG02 scratch 0.75
    assert [(r["rank"], r["team"], r["entry"], r["OA"]) for r in seg if r["best"] == "yes"] == [
        ("1", "WG02", "scratch_aug", "0.75"),
        ("2", "WG01", "standin_aug", "0.73"),
    ]
    assert len(seg) == 4 and {r["benchmark"] for r in seg} == {"synthetic Vaihingen test areas 15, 23 (1200 px)"}
    assert [r["task"] for r in rows].index("vaihingen") > [r["task"] for r in rows].index("hsi")
    html = (tmp_path / "board" / "leaderboard.html").read_text()
    assert html.index("HSI transfer") < html.index("ISPRS Vaihingen segmentation")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: seg_metrics_path(t, "standin_aug", 23).unlink(), "area23/metrics.json: not found"),
        (lambda t: seg_metrics_path(t, "standin_aug", 23).write_bytes(seg_metrics_path(t, "scratch_aug", 23).read_bytes()),
         "experiment/tile/split scratch_aug/23/test is not standin_aug/23/test"),
        (lambda t: write_tile(t, "standin_aug", 23, seg_confusion(50), seconds=1.0), "train differs from the other tiles"),
    ],
    ids=["missing-tile", "tile-of-another-experiment", "two-training-runs"],
)
def test_vaihingen_rejections(tmp_path: Path, damage: Callable[[Team], Any], message: str) -> None:
    team = seg_team(tmp_path, "WG01", {"scratch_aug": (60, 80), "standin_aug": (90, 50)})
    damage(team)
    with pytest.raises(SubmissionError, match=message):
        submit(team.cfg, "vaihingen", team.layout)
    assert not (tmp_path / "board").exists()


# ---------------------------------------------------------------------- output safety
def crafted(board: Path, team: str, **fields: Any) -> Path:
    """A hand-written (but valid) submission file, e.g. with hostile text in its strings."""
    cm = confusion(40)
    s = scores(np.asarray(cm))
    rec = {
        "format": 1, "team": team, "task": "hsi", "date": "2030-01-02T03:04:05Z", "benchmark": "synthetic_target",
        "entry": "Network_2 seed 0", "model": "hybridsn", "details": {}, "confusion_matrix": cm,
        "scores": {k: s[k] for k in ("OA", "AA", "Kappa")},
        "cost": {"train_seconds": 1.0, "gpu_hours": 0.0, "trainable_params": 1, "total_params": 2},
    }  # fmt: skip
    rec.update(fields)
    rec["id"] = content_id(rec)
    path = board / "submissions" / team / "hsi" / f"{rec['id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return path


def test_csv_cells_that_look_like_formulas_are_neutralised(board: Path) -> None:
    crafted(board, "-WG09", entry="=HYPERLINK(\"http://x\",\"y\")", benchmark="@SUM(A1)")
    crafted(board, "WG08", entry="+1+2", model="-2+3")
    build(board)
    rows = read_csv(board / "leaderboard.csv")
    by_team = {r["team"]: r for r in rows}
    assert by_team["'-WG09"]["entry"] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert by_team["'-WG09"]["benchmark"] == "'@SUM(A1)"
    assert (by_team["WG08"]["entry"], by_team["WG08"]["model"]) == ("'+1+2", "'-2+3")
    for row in rows:  # no text cell starts with a formula character; numbers stay numbers
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values()), row
        assert -1 <= float(row["Kappa"]) <= float(row["OA"]) <= 1
    assert csv_cell("-0.5") == "'-0.5" and csv_cell(-0.5) == -0.5 and csv_cell("WG01") == "WG01"


def test_html_is_self_contained_and_escapes_submission_text(teams: dict[str, Team], board: Path) -> None:
    crafted(board, "WG09", entry='<img src="http://evil.example/x.png">', benchmark="synthetic_target, disjoint split, 200 test px")
    build(board, title="Tutorial <b>board</b>")
    text = (board / "leaderboard.html").read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", text, re.I)
    assert not re.search(r"url\s*\(", text, re.I) and "@import" not in text
    assert "<script" not in text.lower() and "<link" not in text.lower() and "<img" not in text.lower()
    assert "&lt;img src=&quot;http://evil.example/x.png&quot;&gt;" in text
    assert "<h1>Tutorial &lt;b&gt;board&lt;/b&gt;</h1>" in text
    md = (board / "leaderboard.md").read_text()
    assert "<img" not in md and "&lt;img" in md


def test_empty_board(board: Path) -> None:
    result = build(board)
    assert result["submissions"] == 0
    assert "No submissions yet." in (board / "leaderboard.html").read_text()
    assert read_csv(board / "leaderboard.csv") == []


# ---------------------------------------------------------------------- config + DAG
def test_leaderboard_schema_section() -> None:
    section = load_schema()["properties"]["leaderboard"]
    assert section["additionalProperties"] is False
    for key, node in section["properties"].items():
        assert "description" in node and "default" in node, key
    cfg = validate({"datasets": {"synthetic_source": {"reader": "synthetic_source"}, "synthetic_target": {"reader": "synthetic_target"}}})
    assert cfg["leaderboard"] == {"dir": "", "submit": True, "board": True, "title": "rstransfer leaderboard"}
    with pytest.raises(ConfigError, match="leaderboard: unknown key 'dirr'"):
        validate({**cfg, "leaderboard": {"dirr": "x"}})


def test_layout_paths(tmp_path: Path) -> None:
    team = Team(tmp_path, "WG01", {("Network_2", 0): {}})
    lay = team.layout
    assert lay.submit_receipt("hsi") == f"{team.cfg['results']}/submit/hsi.json"
    assert lay.submissions_dir("WG01", "hsi") == f"{tmp_path}/board/submissions/WG01/hsi"
    assert lay.leaderboard_file("html") == f"{tmp_path}/board/leaderboard.html"
    solo = Layout.from_config({**team.cfg, "leaderboard": {"dir": ""}})
    assert solo.leaderboard_file("csv") == f"{team.cfg['results']}/leaderboard.csv"


def test_tasks_read_the_studies_run_folders(tmp_path: Path) -> None:
    """The runs a task submits are the evaluate run folders of its study (``<results>/<study>/
    evaluate/<run>/``, as the registry names them), and rule submit waits for the study's report."""
    from rstransfer.leaderboard.tasks import submit_inputs
    from rstransfer.studies import get_study

    team = seg_team(tmp_path, "WG01", {"scratch_aug": (60, 80), "standin_aug": (90, 56)})
    cfg, lay, results = team.cfg, team.layout, team.cfg["results"]
    assert str(team.metrics_path("Network_2", 0)) == f"{results}/hsi/evaluate/Network_2/seed0/metrics.json"
    assert str(seg_metrics_path(team, "scratch_aug", 15)) == f"{results}/segmentation/evaluate/scratch_aug/area15/metrics.json"

    def evaluate_runs(study: str) -> list[str]:
        s = get_study(study)
        return [lay.run_dir(study, "evaluate", s.steps["evaluate"].run_path(r)) for r in s.runs(cfg, "evaluate")]

    assert all_tasks()["hsi"].runs(cfg, lay) == evaluate_runs("hsi") == [f"{results}/hsi/evaluate/Network_2/seed0"]
    assert submit_inputs(cfg, lay, "hsi") == [f"{results}/hsi/report", *evaluate_runs("hsi")]
    # a vaihingen entry is one experiment: the folder holding its area<N>/ evaluate runs
    assert all_tasks()["vaihingen"].runs(cfg, lay) == [f"{results}/segmentation/evaluate/{e}" for e in ("scratch_aug", "standin_aug")]
    assert submit_inputs(cfg, lay, "vaihingen") == [f"{results}/segmentation/report", *evaluate_runs("segmentation")]
    assert len(evaluate_runs("segmentation")) == 4


def test_dry_run_lists_submit_and_leaderboard(snakemake: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = snakemake("-n", "--nolock", "-p", results=results)
    assert proc.returncode == 0, proc.stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert counts.get("leaderboard") == "1" and int(counts.get("submit", 0)) == len(active_tasks_of_shipped_config()), proc.stdout
    assert f"rstransfer submit --config {results}/config/effective.yaml --task hsi --out {results}/submit/hsi.json" in proc.stdout
    assert f"rstransfer leaderboard --config {results}/config/effective.yaml --dir {results} " in proc.stdout
    assert str(results / "leaderboard.html") in proc.stdout
    assert sorted(p.name for p in results.iterdir()) == ["config"]


def active_tasks_of_shipped_config() -> list[str]:
    from rstransfer.core.config import load_config

    from conftest import REPO_ROOT

    return active_tasks(load_config([REPO_ROOT / "config.yaml"]))


def test_cli_leaderboard_dir_typo_is_one_line_error_and_makes_nothing(tmp_path: Path) -> None:
    """``--dir`` names the shared folder to read: a typo is an error, not a new empty board."""
    typo = tmp_path / "sharedd" / "board"
    rc, out, err = run_cli_in(tmp_path, "leaderboard", "--dir", typo)
    assert rc == 2, out
    (line,) = err.strip().splitlines()
    assert line == f"rstransfer: error: --dir {typo}: no such folder (the folder that holds submissions/)"
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and out == ""
    (tmp_path / "file").write_text("x")
    rc, _, err = run_cli_in(tmp_path, "leaderboard", "--dir", tmp_path / "file", "--out", tmp_path / "out")
    assert rc == 2 and "no such folder" in err and not (tmp_path / "out").exists()
