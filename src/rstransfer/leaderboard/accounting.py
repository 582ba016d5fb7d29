"""Training cost from SLURM accounting: ``sacct`` by the job ids a run recorded, with the
job's user, so a team cannot report less time than it used or claim another user's jobs."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass

FIELDS = "JobID,User,ElapsedRaw,AllocTRES,State"
GPU_RE = re.compile(r"(?:^|,)gres/gpu=(\d+)")


@dataclass(frozen=True)
class Job:
    job_id: str
    user: str
    seconds: float
    gpus: int
    state: str


def query(job_ids: list[str], command: str) -> dict[str, Job] | None:
    """Allocations of ``job_ids`` (``sacct -X``); None when accounting is not available here."""
    if not job_ids or not command:
        return None
    argv = [*shlex.split(command), "-X", "-n", "-P", "-o", FIELDS, "-j", ",".join(job_ids)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    jobs = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5 or not parts[2].isdigit():
            continue
        gpus = GPU_RE.search(parts[3])
        jobs[parts[0]] = Job(parts[0], parts[1], float(parts[2]), int(gpus.group(1)) if gpus else 0, parts[4])
    return jobs
