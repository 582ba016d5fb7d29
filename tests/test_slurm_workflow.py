"""The workflow and the jobs/ scripts on the project's real local SLURM cluster.

* the demo DAG through ``snakemake --profile slurm`` (epochs/time/paths overridden only);
  every GPU rule ran as a SLURM job with the configured gres, partition and reservation;
* every ``jobs/*.sbatch`` submitted with sbatch and chained with --dependency=afterok;
* failures: a failing job, a scancel-led job, a bad slurm: section; reruns resume.

Needs tests/slurm/start.sh (tests/run.sh starts it); skipped with a reason otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import slurmtools  # noqa: E402
from conftest import ci_log  # noqa: E402
from test_slurm_cluster import slurm_cluster  # noqa: E402,F401  (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CI_OVERRIDE = REPO / "tests/workflow/slurm-ci.yaml"


def gpu_rules(config: dict) -> dict[str, int]:
    """Every GPU rule of every enabled study (rstransfer.studies) -> how many jobs it runs."""
    from rstransfer.studies import enabled_studies

    return {f"{s.name}_{step}": len(s.runs(config, step)) for s in enabled_studies(config)
            for step, spec in s.steps.items() if spec.kind == "gpu" and s.runs(config, step)}


SLURM_LOGS = Path(os.environ.get("PYTEST_SLURM_LOGDIR", "/tmp/rstransfer-test-slurm-logs"))


def snakemake(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """`snakemake --profile slurm ...` from the repo root; SIGINT on timeout (the plugin
    ignores SIGTERM while jobs run). SLURM logs go to a scratch folder, not the repo."""
    cmd = [
        "timeout", "-s", "INT", str(timeout),
        "snakemake", *args, "--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-logdir", str(SLURM_LOGS),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    print(f"$ {' '.join(cmd)}\n-> exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def rule_jobs(run_uuid_jobs: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    by_rule: dict[str, list[dict[str, str]]] = {}
    for rec in run_uuid_jobs:
        m = re.match(r"rule_([a-z_]+?)(_wildcards|$)", rec["Comment"])
        if m:
            by_rule.setdefault(m.group(1), []).append(rec)
    return by_rule


def sacct_since(start: str) -> list[dict[str, str]]:
    proc = slurmtools.run(
        ["sacct", "-X", "-n", "-P", "-S", start, "-o", "JobID,JobName%60,Comment%120,Partition,ReqTRES,Reservation,State"],
        timeout=30,
    )
    keys = ["JobID", "JobName", "Comment", "Partition", "ReqTRES", "Reservation", "State"]
    return [dict(zip(keys, line.split("|"), strict=False)) for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def dag_run(slurm_cluster, tmp_path_factory):  # noqa: F811
    results = tmp_path_factory.mktemp("slurm") / "results"
    start = time.strftime("%Y-%m-%dT%H:%M:%S")
    t0 = time.monotonic()
    proc = snakemake("--configfile", str(CI_OVERRIDE), "--config", f"results={results}")
    return {"proc": proc, "results": results, "start": start, "seconds": time.monotonic() - t0}


def test_demo_dag_runs_through_sbatch(dag_run):
    proc = dag_run["proc"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    from rstransfer.core.config import load_config

    config = load_config([REPO / "config.yaml", CI_OVERRIDE])
    gpu = config["slurm"]["gpu"]
    by_rule = rule_jobs(slurmtools.accounting_enabled() and sacct_since(dag_run["start"]) or [])
    expected = gpu_rules(config)
    assert expected["hsi_finetune"] == len(config["hsi"]["policies"]) * len(config["hsi"]["seeds"])
    assert {r: len(by_rule.get(r, [])) for r in expected} == expected
    for rule in expected:
        for rec in by_rule[rule]:
            tres = slurmtools.parse_tres(rec["ReqTRES"])
            assert rec["State"] == "COMPLETED", rec
            assert rec["Partition"] == gpu["partition"], rec
            assert tres.get("gres/gpu") == gpu["gres"].split(":")[-1], rec
            assert rec["Reservation"] == gpu["reservation"], rec
    # CPU rules stay on the submit host (slurm.cpu.local: true)
    assert not [r for r in by_rule if r.endswith(("_prepare", "_report"))], sorted(by_rule)
    ci_log(f"CI: demo DAG through snakemake --profile slurm: {sum(expected.values())} GPU jobs, "
          f"{dag_run['seconds']:.0f} s, all gres/gpu=1 partition={gpu['partition']} reservation={gpu['reservation']}")


def test_report_timing_table_shows_job_ids_and_gpu_hours(dag_run):
    results = dag_run["results"]
    timing = (results / "hsi/report/timing.csv").read_text()
    assert "SLURM job ids" in timing and "GPU-hours" in timing
    by_rule = rule_jobs(sacct_since(dag_run["start"]))
    finetune_ids = {r["JobID"] for r in by_rule["hsi_finetune"]}
    assert list(results.glob("hsi/finetune/*/seed*/train.json"))
    for train_json in results.glob("hsi/finetune/*/seed*/train.json"):
        info = json.loads(train_json.read_text())
        assert info["run"]["slurm_job_id"] in finetune_ids
        assert info["run"]["slurm_partition"] == "gpus"
        assert info["run"]["slurm_nodelist"] not in ("", "local")
        assert info["run"]["n_gpus"] == 1 and info["gpu_hours"] > 0
        assert info["run"]["slurm_job_id"] in timing


def test_rerun_does_nothing(dag_run):
    assert dag_run["proc"].returncode == 0
    proc = snakemake("--configfile", str(CI_OVERRIDE), "--config", f"results={dag_run['results']}", timeout=300)
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _write_jobs_config(path: Path, **overrides) -> Path:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["hsi"]["policies"] = ["Network_2"]
    cfg["hsi"]["train"]["pretrain"]["epochs"] = 1
    cfg["hsi"]["train"]["finetune"]["epochs"] = 1
    for study in cfg:  # the HSI scripts only
        if isinstance(cfg[study], dict) and "enabled" in cfg[study] and study != "hsi":
            cfg[study]["enabled"] = False
    cfg.update(overrides)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_jobs_scripts_chained_with_afterok(slurm_cluster, tmp_path):  # noqa: F811
    """Every jobs/*.sbatch, submitted the way jobs/README.md says, from a scratch folder."""
    config = _write_jobs_config(tmp_path / "config.yaml")
    env = {**os.environ, "CONFIG": str(config), "RSTRANSFER_VENV": str(REPO / ".venv"), "TEAM": "WG07"}
    chain = [("prepare", ["hsi"]), ("pretrain", ["hsi"]), ("finetune", ["hsi", "Network_2/seed0"]),
             ("evaluate", ["hsi", "Network_2/seed0"]), ("report", ["hsi"]), ("submit", []), ("leaderboard", [])]
    cpu_steps = {"prepare", "report", "submit", "leaderboard"}
    ids: list[int] = []
    for name, args in chain:
        dep = [f"--dependency=afterok:{ids[-1]}"] if ids else []
        cmd = ["sbatch", "--parsable", *dep, str(REPO / f"jobs/{name}.sbatch"), *args]
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
        ids.append(int(out.strip().split(";")[0]))
    results = {name: slurmtools.wait_job(i, timeout=600) for (name, _), i in zip(chain, ids, strict=True)}
    for (name, _), job_id in zip(chain, ids, strict=True):
        out, err = tmp_path / f"{name}_out.{job_id}", tmp_path / f"{name}_err.{job_id}"
        assert out.exists() and err.exists(), f"{name}: %x_out.%j / %x_err.%j missing"
        assert results[name].state == "COMPLETED", f"{name}: {results[name].state}\n{err.read_text()[-2000:]}"
        info = results[name].info
        if info:  # scontrol still knows the job (MinJobAge)
            if name in cpu_steps:  # CPU work asks for no GPU
                assert info["Partition"] == "cpu" and "gpu" not in info.get("TresPerNode", ""), info
            else:
                assert info["Partition"] == "gpus" and info.get("Reservation") == "deep_learning"
    r = tmp_path / "results"
    assert {p.name for p in (r / "hsi/prepare").iterdir()} == {"synthetic_source", "synthetic_target"}
    metrics = json.loads((r / "hsi/evaluate/Network_2/seed0/metrics.json").read_text())
    assert 0 < metrics["OA"] <= 1 and metrics["train"]["run"]["slurm_job_id"] == str(ids[2])
    assert "Network_2" in (r / "hsi/report/index.html").read_text()
    assert "evaluated Network_2 seed 0" in (tmp_path / f"evaluate_out.{ids[3]}").read_text()
    assert list((r / "submissions/WG07").glob("hsi.*.npz")), "TEAM=WG07 submission missing"
    assert (r / "organiser/ground_truth/hsi.npz").is_file()
    board = (r / "board/leaderboard.html").read_text()
    assert "WG07" in board and "Rejected submissions (0)" in board
    # the board's training time is SLURM's record of the fine-tuning job, not the run's own figure
    (row,) = [x for x in csv.DictReader(io.StringIO((r / "board/leaderboard.csv").read_text())) if x["team"] == "WG07"]
    acct = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,User,ElapsedRaw", "-j", str(ids[2])],
                          capture_output=True, text=True, check=True).stdout.split()[0].split("|")  # fmt: skip
    assert row["cost_source"] == "sacct" and float(row["train_seconds"]) == float(acct[2]), (row, acct)
    assert metrics["train"]["slurm_job_ids"] == [str(ids[2])]
    ci_log(f"CI: jobs/*.sbatch chained under sbatch: job ids {ids}, all COMPLETED")


def _slurm_log_paths(text: str) -> list[Path]:
    return [Path(p) for p in re.findall(re.escape(str(SLURM_LOGS)) + r"/\S+?\.log", text)]


def test_failed_job_stops_with_log_path_then_rerun_resumes(slurm_cluster, tmp_path, shared_data):  # noqa: F811
    results = tmp_path / "results"
    broken = tmp_path / "broken"
    broken.mkdir()
    # prepare runs as a CPU job here, and the target's files exist but are truncated
    for name in ("SalinasA_corrected.mat", "SalinasA_gt.mat"):
        (broken / name).write_bytes((shared_data / "salinas_a" / name).read_bytes()[:300])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "datasets": {"salinas_a": {"reader": "salinas_a", "path": str(broken), "split": {"block_size": 12}}},
        # window 11: the leak-free split keeps every Salinas-A class in train/val/test (13 does not)
        "hsi": {"target": "salinas_a", "prepare": {"window": 11}},
        "slurm": {"cpu": {"local": False}},
    }))
    targets = [f"{results}/hsi/prepare/synthetic_source", f"{results}/hsi/prepare/salinas_a"]
    # --keep-going: let the healthy job finish so the rerun has something not to redo
    proc = snakemake(*targets, "--keep-going", "--configfile", str(CI_OVERRIDE), str(bad),
                     "--config", f"results={results}", timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    logs = [p for p in _slurm_log_paths(text) if "prepare" in str(p)]
    assert logs, f"no SLURM log path printed:\n{text[-3000:]}"
    assert (results / "hsi/prepare/synthetic_source/prepared.h5").exists()
    assert not (results / "hsi/prepare/salinas_a").exists()
    rule_log = (results / "logs/hsi_prepare/salinas_a.log").read_text()
    assert "rstransfer: error:" in rule_log and "SalinasA_corrected.mat" in rule_log

    done = (results / "hsi/prepare/synthetic_source/prepared.h5").stat().st_mtime_ns
    good = tmp_path / "good.yaml"
    good.write_text(bad.read_text().replace(str(broken), str(shared_data / "salinas_a")))
    proc = snakemake(*targets, "--configfile", str(CI_OVERRIDE), str(good), "--config", f"results={results}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (results / "hsi/prepare/synthetic_source/prepared.h5").stat().st_mtime_ns == done, "finished step was redone"
    assert (results / "hsi/prepare/salinas_a/prepared.h5").exists()


def test_scancelled_job_stops_snakemake(slurm_cluster, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    long_run = tmp_path / "long.yaml"
    long_run.write_text(yaml.safe_dump({"hsi": {"train": {"pretrain": {"epochs": 500, "patience": 500}}}}))
    target = f"{results}/hsi/pretrain/seed0"
    cmd = ["timeout", "-s", "INT", "400", "snakemake", target, "--configfile", str(long_run),
           "--config", f"results={results}", "--profile", "slurm",
           "--slurm-init-seconds-before-status-checks", "2", "--slurm-logdir", str(SLURM_LOGS)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    job_id = None
    deadline = time.monotonic() + 240
    while job_id is None and time.monotonic() < deadline:
        out = slurmtools.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], timeout=15).stdout
        job_id = next((line.split("|")[0] for line in out.splitlines() if "rule_hsi_pretrain" in line), None)
        time.sleep(1)
    assert job_id, "pretrain job never started"
    time.sleep(3)
    slurmtools.run(["scancel", job_id], timeout=15)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode not in (0, 124), text[-3000:]
    assert "Error" in text and _slurm_log_paths(text), text[-3000:]
    assert not Path(target).exists()


@pytest.mark.parametrize(
    ("override", "slurm_message"),
    [
        ({"partition": "nosuchpartition"}, "invalid partition"),
        ({"gres": "gpx:1"}, "Invalid generic resource"),
    ],
)
def test_bad_slurm_section_fails_with_slurm_message(slurm_cluster, tmp_path, override, slurm_message):  # noqa: F811
    results = tmp_path / "results"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"slurm": {"gpu": override}}))
    t0 = time.monotonic()
    proc = snakemake(f"{results}/hsi/pretrain/seed0",
                     "--configfile", str(CI_OVERRIDE), str(bad), "--config", f"results={results}", timeout=240)
    text = proc.stdout + proc.stderr
    assert proc.returncode not in (0, 124), "snakemake hung or succeeded"
    assert slurm_message.lower() in text.lower(), text[-3000:]
    assert time.monotonic() - t0 < 200


def test_two_rank_horovod_finetune_job(slurm_cluster, tmp_path):  # noqa: F811
    """jobs/finetune.sbatch with 2 tasks and 2 GPUs: `rstransfer launch` starts 2 Horovod
    ranks with srun; the run's metrics reach the report with world size 2."""
    from conftest import cli_env, tiny_settings

    results = tmp_path / "results"
    cfg = tiny_settings(results, {
        "hsi": {"policies": ["Network_5"], "train": {"finetune": {"epochs": 2}}},
        "distribution": {"mode": "horovod"},
        "slurm": {"gpu": {"gpus_per_node": 2, "gres": "gpu:2", "reservation": "deep_learning"}},
        "segmentation": {"enabled": False},
    })
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = cli_env(CONFIG=str(config), RSTRANSFER_VENV=str(REPO / ".venv"))
    for step in ("prepare", "pretrain"):
        proc = subprocess.run(["rstransfer", step, "--study", "hsi", "--all", "--config", str(config)], env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    cmd = ["sbatch", "--parsable", "--ntasks=2", "--ntasks-per-node=2", "--gres=gpu:2",
           str(REPO / "jobs/finetune.sbatch"), "hsi", "Network_5/seed0"]
    job_id = int(subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split(";")[0])
    job = slurmtools.wait_job(job_id, timeout=600)
    err = (tmp_path / f"finetune_err.{job_id}").read_text()
    assert job.state == "COMPLETED", err[-3000:]
    out = (tmp_path / f"finetune_out.{job_id}").read_text()
    assert out.count("finetuned Network_5 seed 0") == 1, out  # rank 0 reports, once
    for step in (["evaluate", "--run", "Network_5/seed0"], ["report"]):
        proc = subprocess.run(["rstransfer", step[0], "--study", "hsi", *step[1:], "--config", str(config)], env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    info = json.loads((results / "hsi/finetune/Network_5/seed0/train.json").read_text())
    assert info["world_size"] == 2 and info["run"]["slurm_job_id"] == str(job_id)
    assert info["run"]["n_gpus"] == 2
    import csv

    (row,) = list(csv.DictReader((results / "hsi/report/runs.csv").open()))
    assert row["world_size"] == "2" and row["slurm_job_id"] == str(job_id) and row["gpus"] == "0,1"
    ci_log(f"CI: 2-rank Horovod fine-tune under sbatch (job {job_id}) completed; world_size 2 in the report")


def test_segmentation_jobs_under_sbatch(slurm_cluster, tmp_path):  # noqa: F811
    """The segmentation study through the same jobs/ scripts (reduced size: fixture tiles, 64 px
    patches, 1 epoch): finetune.sbatch then evaluate.sbatch, chained with afterok."""
    from conftest import cli_env
    from test_segmentation_workflow import TILE, seg_settings

    results = tmp_path / "results"
    config = tmp_path / "seg.yaml"
    config.write_text(yaml.safe_dump(seg_settings(results), sort_keys=False))
    env = cli_env(CONFIG=str(config), RSTRANSFER_VENV=str(REPO / ".venv"))
    proc = subprocess.run(["rstransfer", "prepare", "--study", "segmentation", "--config", str(config)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    weights = results / "segmentation/finetune/scratch_aug/weights.h5"

    def submit(*args: str) -> int:
        cmd = ["sbatch", "--parsable", *args]
        return int(subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split(";")[0])

    train = submit(str(REPO / "jobs/finetune.sbatch"), "segmentation", "scratch_aug")
    evaluate = submit(f"--dependency=afterok:{train}", str(REPO / "jobs/evaluate.sbatch"), "segmentation",
                      f"scratch_aug/area{TILE}")
    for name, job_id in (("train", train), ("evaluate", evaluate)):
        job = slurmtools.wait_job(job_id, timeout=900)
        errs = list(tmp_path.glob(f"*_err.{job_id}"))
        assert job.state == "COMPLETED", f"{name}: {job.state}\n" + (errs[0].read_text()[-3000:] if errs else "")
    info = json.loads((weights.parent / "train.json").read_text())
    assert info["run"]["slurm_job_id"] == str(train) and info["run"]["slurm_partition"] == "gpus"
    metrics = json.loads((results / f"segmentation/evaluate/scratch_aug/area{TILE}/metrics.json").read_text())
    assert metrics["tile"] == TILE and 0 <= metrics["OA"] <= 1
    ci_log(f"CI: jobs/finetune.sbatch segmentation ({train}) -> jobs/evaluate.sbatch ({evaluate}) COMPLETED under sbatch")
