"""Where and how a run ran: SLURM job metadata, GPUs seen, wall time and GPU-hours.

Outside SLURM every SLURM field reads "local", so local, SLURM and Horovod runs share one
record format and one report table.
"""

from __future__ import annotations

import os
import socket
from typing import Any


def visible_gpus() -> list[str]:
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not cvd or cvd in ("-1", "NoDevFiles"):
        return []
    return [d for d in cvd.split(",") if d]


def run_metadata(world_size: int = 1) -> dict[str, Any]:
    """Snapshot of the environment this rank runs in (call on rank 0)."""
    in_slurm = "SLURM_JOB_ID" in os.environ
    gpus = visible_gpus()
    # one GPU per rank under Horovod; a single process uses all it sees
    n_gpus = world_size * min(len(gpus), 1) if world_size > 1 else len(gpus)
    return {
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", "local"),
        "slurm_job_name": os.environ.get("SLURM_JOB_NAME", "local"),
        "slurm_nodelist": os.environ.get("SLURM_JOB_NODELIST", "local"),
        "slurm_partition": os.environ.get("SLURM_JOB_PARTITION", "local"),
        "slurm_ntasks": os.environ.get("SLURM_NTASKS", "local"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "local" if not in_slurm else ""),
        "hostname": socket.gethostname(),
        "world_size": world_size,
        "n_gpus": n_gpus,
    }


def gpu_hours(meta: dict[str, Any], wall_seconds: float) -> float:
    return float(meta.get("n_gpus", 0)) * wall_seconds / 3600.0
