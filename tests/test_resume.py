"""Resume after a stop (SIGUSR1 from ``--signal``, SIGTERM at SLURM's time limit) with
nothing lost, and atomic outputs: a killed step leaves nothing Snakemake would take as done.

Tolerance: none. The resumed run must reproduce the uninterrupted run's history and
weights exactly (same machine, same seed, deterministic ops), because each epoch's data
order and dropout masks depend only on (seed, epoch).
"""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO_ROOT, ci_log, cli_env, tiny_settings

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import slurmtools  # noqa: E402
from test_slurm_cluster import slurm_cluster  # noqa: E402,F401  (fixture)

EXIT_RESUMABLE = 75
RUN_FILES = {"model.keras", "history.csv", "train.json"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Prepared tiny scenes and a pretrained source model, shared by this module."""
    root = tmp_path_factory.mktemp("resume")
    cfg = root / "config.yaml"
    settings = {"hsi": {"seeds": [3], "policies": ["Network_5", "Network_6"],
                        "train": {"finetune": {"epochs": 12, "patience": 100}}}}
    cfg.write_text(yaml.safe_dump(tiny_settings(root / "results", settings)))
    for step in (["prepare", "--all"], ["pretrain", "--all", "--threads", "1"]):
        proc = subprocess.run(["rstransfer", step[0], "--study", "hsi", *step[1:], "--config", str(cfg)],
                              env=cli_env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    return {"root": root, "config": cfg}


def finetune_cmd(prepared, out: Path, policy: str = "Network_5") -> list[str]:
    return ["rstransfer", "finetune", "--study", "hsi", "--config", str(prepared["config"]), "--run", f"{policy}/seed3",
            "--out", str(out), "--threads", "1"]


def history(run: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader((run / "history.csv").open()))
    for r in rows:
        r.pop("seconds")  # wall time differs, everything else must not
    return rows


def weights(run: Path) -> list[np.ndarray]:
    from rstransfer.core.fit import load_model

    return load_model(run / "model.keras").get_weights()


def wait_for_epochs(ckpt: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = ckpt / "latest"
        if latest.exists() and int(latest.read_text().strip().split("-")[1]) >= n:
            return
        assert proc.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.2)
    raise TimeoutError(f"no checkpoint after {n} epochs in {ckpt}")


@pytest.fixture(scope="module")
def uninterrupted(prepared):
    out = prepared["root"] / "uninterrupted"
    proc = subprocess.run(finetune_cmd(prepared, out), env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_checkpoints_and_rerun_resumes_identically(prepared, uninterrupted, sig):
    out = prepared["root"] / f"interrupted-{sig.name}"
    ckpt = out.parent / f".{out.name}.checkpoint"
    proc = subprocess.Popen(finetune_cmd(prepared, out), env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_epochs(ckpt, 3, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_RESUMABLE, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rstransfer: error:") and sig.name in last and "resume" in last
    assert not (RUN_FILES & {p.name for p in out.glob("*")}), "outputs written by an interrupted run"
    done = int((ckpt / "latest").read_text().split("-")[1])
    assert 3 <= done < 12

    proc = subprocess.run(finetune_cmd(prepared, out), env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming from {ckpt} after epoch {done}" in proc.stdout
    info = json.loads((out / "train.json").read_text())
    assert info["resumed_after_epoch"] == done and info["epochs_run"] == 12
    assert history(out) == history(uninterrupted)
    for a, b in zip(weights(out), weights(uninterrupted), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not ckpt.exists(), "checkpoint left behind after a finished run"


def test_checkpoint_of_other_settings_is_ignored(prepared, uninterrupted, tmp_path):
    """A stale checkpoint (another policy here) must not be mixed into a run."""
    out = prepared["root"] / "stale"
    ckpt = out.parent / f".{out.name}.checkpoint"
    proc = subprocess.Popen(finetune_cmd(prepared, out, policy="Network_6"), env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_epochs(ckpt, 2, proc)
    proc.send_signal(signal.SIGUSR1)
    proc.communicate(timeout=120)
    proc = subprocess.run(finetune_cmd(prepared, out), env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" not in proc.stdout
    assert history(out) == history(uninterrupted)


def test_checkpoint_of_other_inputs_is_ignored(prepared, tmp_path):
    """Same settings, but the prepared target changed (another split seed): the checkpoint was
    trained on pixels that may now be test pixels, so it must not be resumed."""
    import shutil

    out = prepared["root"] / "other-inputs"
    ckpt = out.parent / f".{out.name}.checkpoint"
    proc = subprocess.Popen(finetune_cmd(prepared, out), env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_epochs(ckpt, 2, proc)
    proc.send_signal(signal.SIGUSR1)
    proc.communicate(timeout=120)
    cfg = yaml.safe_load(prepared["config"].read_text())
    cfg["hsi"]["prepare"]["split"]["seed"] = 7
    other = tmp_path / "split7.yaml"
    other.write_text(yaml.safe_dump(cfg))
    target = tmp_path / "target"
    proc = subprocess.run(["rstransfer", "prepare", "--study", "hsi", "--run", "synthetic_target", "--config", str(other),
                           "--out", str(target)], env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([*finetune_cmd(prepared, out), "--input", f"data={target}"], env=cli_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" not in proc.stdout
    shutil.rmtree(out)


def test_killed_step_leaves_no_done_looking_output_and_rerun_completes(prepared):
    """SIGKILL at several moments: the run folder never holds a partial set of outputs."""
    out = prepared["root"] / "killed"
    for delay in (2.0, 5.0, 8.0):
        proc = subprocess.Popen(finetune_cmd(prepared, out), env=cli_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        present = RUN_FILES & {p.name for p in out.glob("*")}
        assert present in (set(), RUN_FILES), f"partial outputs after SIGKILL at {delay}s: {present}"
        if present:
            break
        # the run folder appears by one rename of its complete staging folder
        assert not out.exists() or present == RUN_FILES
    proc = subprocess.run(finetune_cmd(prepared, out), env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert RUN_FILES <= {p.name for p in out.glob("*")}
    assert json.loads((out / "train.json").read_text())["epochs_run"] == 12


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_time_limit_then_resubmit_resumes_to_completion(slurm_cluster, tmp_path, prepared, uninterrupted):  # noqa: F811
    """jobs/finetune.sbatch with --time=1: SLURM stops it at the limit (SIGTERM), the
    checkpoint survives, and resubmitting the same job resumes and finishes with the metrics
    of an uninterrupted run."""
    cfg = yaml.safe_load(prepared["config"].read_text())
    cfg["hsi"]["train"]["finetune"]["epochs"] = 400  # far longer than one minute on this machine
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**cli_env(), "CONFIG": str(config), "RSTRANSFER_VENV": str(REPO_ROOT / ".venv")}
    out = Path(cfg["results"]) / "hsi/finetune/Network_5/seed3"
    ckpt = out.parent / f".{out.name}.checkpoint"

    def submit(*extra: str) -> int:
        cmd = ["sbatch", "--parsable", *extra, str(REPO_ROOT / "jobs/finetune.sbatch"), "hsi", "Network_5/seed3"]
        return int(subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split(";")[0])

    first = submit("--time=1", "--signal=B:USR1@20")
    job = slurmtools.wait_job(first, timeout=240)
    assert job.state in ("TIMEOUT", "FAILED"), job.state  # stopped, not finished
    err = (tmp_path / f"finetune_err.{first}").read_text()
    assert "rerun the same step to resume" in err, err[-2000:]
    done = int((ckpt / "latest").read_text().split("-")[1])
    assert 0 < done < 400 and not (out / "train.json").exists()

    second = submit("--time=10")
    job = slurmtools.wait_job(second, timeout=600)
    log = (tmp_path / f"finetune_out.{second}").read_text()
    assert job.state == "COMPLETED", (tmp_path / f"finetune_err.{second}").read_text()[-2000:]
    assert f"after epoch {done}" in log
    info = json.loads((out / "train.json").read_text())
    assert info["resumed_after_epoch"] == done and info["run"]["slurm_job_id"] == str(second)
    # the uninterrupted reference with the same 400-epoch settings, for the final metrics
    ref = tmp_path / "reference"
    proc = subprocess.run(
        ["rstransfer", "finetune", "--study", "hsi", "--config", str(config), "--run", "Network_5/seed3",
         "--out", str(ref), "--threads", "1"], env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert history(out) == history(ref)
    ci_log(f"CI: SLURM time limit -> job {first} stopped after {done} epochs; job {second} resumed and completed")


# --- the ResNet50-FCN (segmentation): ReduceLROnPlateau's counters travel in the checkpoint ---

SEG_EPOCHS = 4
SEG_RUN_FILES = {"weights.h5", "history.csv", "train.json"}
REDUCED = re.compile(r"Epoch (\d+): ReduceLROnPlateau reducing learning rate to (\S+?)\.?$", re.M)


def seg_config(root: Path, **train: object) -> Path:
    """Tiny Vaihingen fixtures (8 train / 4 val patches of 64 px), one experiment (scratch,
    augmented). ``val_accuracy`` with ReduceLROnPlateau patience 1: the plateau fires on
    nearly every epoch, so a resumed run whose plateau forgot its best value and wait counter
    takes another learning-rate path at once (weights differ)."""
    from test_segmentation_workflow import seg_settings

    settings = seg_settings(root / "results", train={
        "epochs": SEG_EPOCHS, "patience": 100, "monitor": "val_accuracy", "reduce_lr_patience": 1, **train})
    seg = settings["segmentation"]
    seg["experiments"] = {"scratch_aug": seg["experiments"]["scratch_aug"]}
    settings["hsi"] = {"enabled": False}
    cfg = root / "seg.yaml"
    cfg.write_text(yaml.safe_dump(settings, sort_keys=False))
    return cfg


def seg_finetune_cmd(cfg: Path, out: Path | None = None, threads: int = 1) -> list[str]:
    return ["rstransfer", "finetune", "--study", "segmentation", "--config", str(cfg), "--run", "scratch_aug",
            "--threads", str(threads), *(["--out", str(out)] if out else [])]


def h5_weights(path: Path) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def reductions(log: str, upto: int | None = None) -> list[tuple[int, str]]:
    """ReduceLROnPlateau's "Epoch N: ... reducing learning rate to X" lines as (N, X)."""
    found = [(int(n), lr) for n, lr in REDUCED.findall(log)]
    return [r for r in found if upto is None or r[0] <= upto]


@pytest.fixture(scope="module")
def seg_prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("segresume")
    cfg = seg_config(root)
    proc = subprocess.run(["rstransfer", "prepare", "--study", "segmentation", "--config", str(cfg)],
                          env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "config": cfg}


@pytest.mark.slow  # three ResNet50-FCN runs of 4 tiny epochs (two at a time): about 2 min on 2 cores
def test_fcn_sigusr1_then_rerun_resumes_identically(seg_prepared):
    """The FCN through the same interrupt-and-rerun as HybridSN: history, weights and every
    learning-rate reduction of ReduceLROnPlateau equal to an uninterrupted run."""
    cfg, root = seg_prepared["config"], seg_prepared["root"]
    ref_out, out = root / "uninterrupted", root / "interrupted"
    ckpt = out.parent / f".{out.name}.checkpoint"
    # the reference runs alongside (one thread each): same results, half the wall time
    ref = subprocess.Popen(seg_finetune_cmd(cfg, ref_out), env=cli_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen(seg_finetune_cmd(cfg, out), env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_epochs(ckpt, 2, proc, timeout=600)
        proc.send_signal(signal.SIGUSR1)
        first_log, err = proc.communicate(timeout=300)
        assert proc.returncode == EXIT_RESUMABLE, err[-3000:]
        assert "SIGUSR1" in err.strip().splitlines()[-1]
        assert not (SEG_RUN_FILES & {p.name for p in out.glob("*")}), "outputs written by an interrupted run"
        done = int((ckpt / "latest").read_text().split("-")[1])
        assert 2 <= done < SEG_EPOCHS
        state = json.loads((ckpt / (ckpt / "latest").read_text().strip() / "state.json").read_text())
        plateau = state["callbacks"][0]
        assert {"wait", "best", "cooldown_counter"} <= set(plateau), plateau

        second = subprocess.run(seg_finetune_cmd(cfg, out), env=cli_env(), capture_output=True, text=True)
        assert second.returncode == 0, second.stderr[-3000:]
        ref_log, ref_err = ref.communicate(timeout=600)
        assert ref.returncode == 0, ref_err[-3000:]
    finally:
        for p in (proc, ref):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert f"resuming from {ckpt} after epoch {done}" in second.stdout
    info = json.loads((out / "train.json").read_text())
    assert info["resumed_after_epoch"] == done and info["epochs_run"] == SEG_EPOCHS
    # the test only proves something if the plateau acts after the resume point
    assert [r for r in reductions(ref_log) if r[0] > done], f"no LR reduction after epoch {done}:\n{ref_log}"
    assert reductions(first_log, upto=done) + reductions(second.stdout) == reductions(ref_log)
    assert history(out) == history(ref_out)
    a, b = h5_weights(out / "weights.h5"), h5_weights(ref_out / "weights.h5")
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not ckpt.exists(), "checkpoint left behind after a finished run"
    ci_log(f"CI: FCN stopped by SIGUSR1 after {done} epochs; rerun resumed, identical to an uninterrupted run "
           f"({len(reductions(ref_log))} LR reductions)")


@pytest.mark.slurm
@pytest.mark.slow
def test_fcn_slurm_time_limit_then_resubmit_resumes_to_completion(slurm_cluster, tmp_path):  # noqa: F811
    """The FCN through jobs/finetune.sbatch under SLURM's time limit, as HybridSN above: the job
    stops at its limit (--signal USR1, then SIGTERM), the checkpoint survives, and resubmitting
    the same job resumes and finishes with the history of an uninterrupted run.

    Tiny FCN epochs take 1-8 s here depending on the load, so a fixed --time cannot make sure
    that the first job checkpoints some epochs yet does not finish: the job starts with 10 min
    and, once it has checkpointed 2 epochs, ``scontrol update TimeLimit`` cuts its limit to the
    next whole minute of its run time (SLURM's own time-limit path: signal, SIGTERM, TIMEOUT)."""
    epochs = 60
    cfg = seg_config(tmp_path, epochs=epochs)
    env = {**cli_env(), **{k: v for k, v in slurmtools._client_env().items() if k == "SLURM_CONF"},
           "CONFIG": str(cfg), "RSTRANSFER_VENV": str(REPO_ROOT / ".venv")}
    proc = subprocess.run(["rstransfer", "prepare", "--study", "segmentation", "--config", str(cfg)],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = Path(yaml.safe_load(cfg.read_text())["results"]) / "segmentation/finetune/scratch_aug"
    ckpt = out.parent / f".{out.name}.checkpoint"
    # the uninterrupted reference alongside, with the job's threads (sbatch --cpus-per-task=2)
    ref_out = tmp_path / "reference"
    ref = subprocess.Popen(seg_finetune_cmd(cfg, ref_out, threads=2), env=cli_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)

    jobs: list[int] = []

    def submit(*extra: str) -> int:
        cmd = ["sbatch", "--parsable", *extra, str(REPO_ROOT / "jobs/finetune.sbatch"), "segmentation", "scratch_aug"]
        jobs.append(int(subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                                       check=True).stdout.split(";")[0]))
        return jobs[-1]

    def epochs_done() -> int:
        latest = ckpt / "latest"
        return int(latest.read_text().split("-")[1]) if latest.exists() else 0

    try:
        first = submit("--time=10", "--signal=B:USR1@30")
        deadline = time.monotonic() + 900
        while epochs_done() < 2:
            state = slurmtools.scontrol_job(first).get("JobState", "")
            assert state in ("PENDING", "CONFIGURING", "RUNNING"), (
                f"job {first} {state} before 2 epochs:\n" + (tmp_path / f"finetune_err.{first}").read_text()[-3000:])
            assert time.monotonic() < deadline, "no checkpoint of 2 epochs after 15 min"
            time.sleep(1)
        run_time = slurmtools.scontrol_job(first)["RunTime"]  # [D-]HH:MM:SS
        h, m, s = (int(x) for x in run_time.split("-")[-1].split(":"))
        limit = max(1, -(-(h * 3600 + m * 60 + s) // 60))  # minutes, rounded up
        slurmtools.run(["scontrol", "update", f"JobId={first}", f"TimeLimit={limit}"])
        job = slurmtools.wait_job(first, timeout=300)
        assert job.state in ("TIMEOUT", "FAILED"), job.state  # stopped, not finished
        err = (tmp_path / f"finetune_err.{first}").read_text()
        done = epochs_done()
        assert 2 <= done < epochs and not (out / "train.json").exists(), err[-2000:]
        assert "rerun the same step to resume" in err, err[-2000:]

        second = submit("--time=20")
        job = slurmtools.wait_job(second, timeout=1800)
        log = (tmp_path / f"finetune_out.{second}").read_text()
        assert job.state == "COMPLETED", (tmp_path / f"finetune_err.{second}").read_text()[-2000:]
        assert f"resuming from {ckpt} after epoch {done}" in log
        info = json.loads((out / "train.json").read_text())
        assert info["resumed_after_epoch"] == done and info["epochs_run"] == epochs
        assert info["run"]["slurm_job_id"] == str(second)
        _, ref_err = ref.communicate(timeout=1800)
        assert ref.returncode == 0, ref_err[-3000:]
    finally:
        if ref.poll() is None:
            ref.kill()
            ref.wait()
        for j in jobs:  # nothing left running after a failure
            slurmtools.run(["scancel", str(j)], check=False)
    assert history(out) == history(ref_out)
    a, b = h5_weights(out / "weights.h5"), h5_weights(ref_out / "weights.h5")
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    ci_log(f"CI: SLURM time limit -> FCN job {first} stopped after {done} epochs; job {second} resumed and completed, "
           "identical to an uninterrupted run")
