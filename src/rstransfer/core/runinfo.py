"""Where and how a run ran: SLURM job metadata, GPUs seen, wall time and GPU-hours.

Outside SLURM every SLURM field reads "local", so local, SLURM and Horovod runs share one
record format and one report table.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from typing import Any


def visible_gpus() -> list[str]:
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not cvd or cvd in ("-1", "NoDevFiles"):
        return []
    return [d for d in cvd.split(",") if d]


def scontrol_job(job_id: str) -> dict[str, str]:
    """Fields of ``scontrol show job -o`` (empty if scontrol is missing or fails).

    Needed because Snakemake's SLURM jobstep strips most SLURM_* variables from the
    environment of the command it runs; only SLURM_JOB_ID survives.
    """
    try:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = {}
    for token in shlex.split(out):
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def run_metadata(world_size: int = 1) -> dict[str, Any]:
    """Snapshot of the environment this rank runs in (call on rank 0)."""
    env = os.environ
    in_slurm = "SLURM_JOB_ID" in env
    job = scontrol_job(env["SLURM_JOB_ID"]) if in_slurm and "SLURM_JOB_PARTITION" not in env else {}
    gpus = visible_gpus()
    # one GPU per rank under Horovod; a single process uses all it sees
    n_gpus = world_size * min(len(gpus), 1) if world_size > 1 else len(gpus)
    local = "local" if not in_slurm else ""
    return {
        "slurm_job_id": env.get("SLURM_JOB_ID", "local"),
        "slurm_job_name": env.get("SLURM_JOB_NAME", job.get("JobName", local)),
        "slurm_nodelist": env.get("SLURM_JOB_NODELIST", job.get("NodeList", local)),
        "slurm_partition": env.get("SLURM_JOB_PARTITION", job.get("Partition", local)),
        "slurm_reservation": env.get("SLURM_JOB_RESERVATION", job.get("Reservation", local)),
        "slurm_ntasks": env.get("SLURM_NTASKS", job.get("NumTasks", local)),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "local" if not in_slurm else ""),
        "hostname": socket.gethostname(),
        "world_size": world_size,
        "n_gpus": n_gpus,
    }


def gpu_hours(meta: dict[str, Any], wall_seconds: float) -> float:
    return float(meta.get("n_gpus", 0)) * wall_seconds / 3600.0
