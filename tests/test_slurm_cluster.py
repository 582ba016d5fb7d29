"""Tests against the project's real single-node SLURM cluster (tests/slurm/start.sh).

They check the cluster itself -- partitions, fake GPUs, the ``deep_learning``
reservation, accounting and mail -- the things the workflow and the tutorial
job scripts rely on. Run them with::

    tests/slurm/start.sh && RSTRANSFER_SLURM=1 python -m pytest -m slurm tests/test_slurm_cluster.py

Without ``RSTRANSFER_SLURM=1``, or when ``sinfo`` does not reach the local test
cluster, every test is skipped with the reason. ``RSTRANSFER_SLURM_REQUIRED=1``
turns that skip into a failure (for CI jobs that started the cluster).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import slurmtools  # noqa: E402

pytestmark = pytest.mark.slurm

GPU_PARTITION = os.environ.get("RSTRANSFER_SLURM_GPU_PARTITION", "gpus")
CPU_PARTITION = os.environ.get("RSTRANSFER_SLURM_CPU_PARTITION", "cpu")
RESERVATION = os.environ.get("RSTRANSFER_SLURM_RESERVATION", "deep_learning") or "deep_learning"
MAIL_USER = "ci@example.org"


@pytest.fixture(scope="module")
def slurm_cluster() -> dict[str, str]:
    """Skip (or fail, with RSTRANSFER_SLURM_REQUIRED=1) unless the local cluster answers.

    Returns ``scontrol show config`` of the cluster.
    """

    def unavailable(reason: str):
        if os.environ.get("RSTRANSFER_SLURM_REQUIRED") == "1":
            pytest.fail(f"local SLURM cluster required but unavailable: {reason}")
        pytest.skip(reason)

    if os.environ.get("RSTRANSFER_SLURM") != "1":
        unavailable(
            "local SLURM cluster not enabled: run tests/slurm/start.sh and set RSTRANSFER_SLURM=1"
        )
    ok, reason = slurmtools.cluster_status(GPU_PARTITION)
    if not ok:
        unavailable(f"RSTRANSFER_SLURM=1 but {reason} (did tests/slurm/start.sh succeed?)")
    return slurmtools.cluster_config()


BATCH_SCRIPT = """\
#!/bin/bash
echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"
echo "SLURM_JOB_ID=$SLURM_JOB_ID"
echo "SLURM_JOB_NODELIST=$SLURM_JOB_NODELIST"
echo "SLURM_JOB_PARTITION=$SLURM_JOB_PARTITION"
echo "SLURM_JOB_RESERVATION=${SLURM_JOB_RESERVATION:-none}"
echo "this goes to stderr" >&2
"""


def _kv_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_gpu_job_in_reservation_runs_and_is_accounted(slurm_cluster, tmp_path):
    script = tmp_path / "probe.sbatch"
    script.write_text(BATCH_SCRIPT)
    mail = slurmtools.MailLog()

    job = slurmtools.submit_and_wait(
        [
            "--job-name=rst_gpu_probe",
            f"--partition={GPU_PARTITION}",
            "--gres=gpu:1",
            f"--reservation={RESERVATION}",
            "--mail-type=END",
            f"--mail-user={MAIL_USER}",
            "--output=%x_out.%j",
            "--error=%x_err.%j",
        ],
        script=script,
        cwd=tmp_path,
        timeout=120,
    )
    assert job.state == "COMPLETED", job.info

    # %x/%j expanded, relative to the submission directory
    out = tmp_path / f"rst_gpu_probe_out.{job.job_id}"
    err = tmp_path / f"rst_gpu_probe_err.{job.job_id}"
    assert out.is_file(), sorted(p.name for p in tmp_path.iterdir())
    assert "this goes to stderr" in err.read_text()
    env = _kv_lines(out.read_text())
    assert env["CUDA_VISIBLE_DEVICES"] in {"0", "1"}, env  # one of the 2 fake GPUs
    assert env["SLURM_JOB_ID"] == str(job.job_id)
    assert env["SLURM_JOB_NODELIST"] == socket.gethostname().split(".")[0]
    assert env["SLURM_JOB_PARTITION"] == GPU_PARTITION
    assert env["SLURM_JOB_RESERVATION"] == RESERVATION

    if slurm_cluster.get("AccountingStorageType") == "accounting_storage/slurmdbd":
        rec = slurmtools.sacct_record(
            job.job_id,
            fields=("JobID", "Partition", "ReqTRES", "AllocTRES", "Reservation", "State"),
            since=job.submitted_at,
        )
        assert rec["JobID"] == str(job.job_id)
        assert rec["Partition"] == GPU_PARTITION
        assert slurmtools.parse_tres(rec["ReqTRES"]).get("gres/gpu") == "1", rec
        assert slurmtools.parse_tres(rec["AllocTRES"]).get("gres/gpu") == "1", rec
        assert rec["Reservation"] == RESERVATION
        assert rec["State"] == "COMPLETED"
    else:  # WITH_DBD=0: no sacct; scontrol keeps the job for MinJobAge (300 s)
        info = job.info
        assert info["Partition"] == GPU_PARTITION
        # (TRES lacks gres/gpu: AccountingStorageTRES=gres/gpu needs slurmdbd)
        assert info["TresPerNode"] == "gres:gpu:1", info
        assert info["Reservation"] == RESERVATION

    mails = mail.wait_for(job.job_id, kind="Ended")
    assert [m[1] for m in mails] == [MAIL_USER], mails
    assert "COMPLETED" in mails[0][2]


def test_job_without_reservation_is_not_blocked(slurm_cluster, tmp_path):
    """The reservation covers only part of the node: plain jobs still run."""
    job = slurmtools.submit_and_wait(
        [f"--partition={CPU_PARTITION}", "--job-name=rst_cpu_probe", "--output=cpu.%j", "--wrap=echo ok"],
        cwd=tmp_path,
        timeout=60,
    )
    assert job.state == "COMPLETED", job.info
    assert job.info.get("Reservation", "(null)") in {"(null)", ""}
    assert job.info["Partition"] == CPU_PARTITION
    assert (tmp_path / f"cpu.{job.job_id}").read_text().strip() == "ok"


def test_unknown_partition_fails_at_submission(slurm_cluster, tmp_path):
    with pytest.raises(slurmtools.SubmissionError) as exc:
        slurmtools.submit(["--partition=no_such_partition", "--wrap=true"], cwd=tmp_path)
    # sbatch: error: invalid partition specified: no_such_partition
    # sbatch: error: Batch job submission failed: Invalid partition name specified
    assert "invalid partition" in exc.value.stderr.lower(), exc.value.stderr
    assert exc.value.returncode != 0


def test_gres_typo_fails_at_submission(slurm_cluster, tmp_path):
    with pytest.raises(slurmtools.SubmissionError) as exc:
        slurmtools.submit([f"--partition={GPU_PARTITION}", "--gres=gpx:1", "--wrap=true"], cwd=tmp_path)
    # sbatch: error: Invalid generic resource (gres) specification
    assert "invalid generic resource" in exc.value.stderr.lower(), exc.value.stderr
