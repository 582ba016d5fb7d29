"""Small helpers for tests that talk to the project's local SLURM cluster.

The cluster is started by ``tests/slurm/start.sh`` (see ``tests/slurm/README.md``).
This module only wraps the SLURM command-line clients (``sinfo``, ``sbatch``,
``squeue``, ``scontrol``, ``sacct``); it has no dependencies beyond the standard
library and does not import anything from ``rstransfer``.

Import it from a test with::

    sys.path.insert(0, str(Path(__file__).parent / "slurm"))
    import slurmtools

Typical use::

    job = slurmtools.submit_and_wait(
        ["--partition=gpus", "--gres=gpu:1", "--wrap=nvidia-smi || true"], cwd=tmp_path
    )
    assert job.state == "COMPLETED"
    rec = slurmtools.sacct_record(job.job_id)        # needs slurmdbd (WITH_DBD=1)
    assert slurmtools.parse_tres(rec["AllocTRES"])["gres/gpu"] == "1"
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "SlurmError",
    "SubmissionError",
    "JobResult",
    "MailLog",
    "prefix",
    "cluster_name",
    "mail_log_path",
    "run",
    "cluster_status",
    "cluster_config",
    "accounting_enabled",
    "submit",
    "wait_job",
    "submit_and_wait",
    "scontrol_job",
    "sacct_records",
    "sacct_record",
    "parse_tres",
    "TERMINAL_STATES",
    "DEFAULT_SACCT_FIELDS",
]

#: Job states after which a job will not change any more.
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)

#: Fields that :func:`sacct_records` asks for unless told otherwise.
DEFAULT_SACCT_FIELDS = (
    "JobID",
    "JobName",
    "Partition",
    "ReqTRES",
    "AllocTRES",
    "Reservation",
    "State",
    "ExitCode",
    "Submit",
)


class SlurmError(RuntimeError):
    """A SLURM client command failed; ``stderr`` holds SLURM's own message."""

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str):
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        msg = stderr.strip() or stdout.strip() or "(no output)"
        super().__init__(f"{shlex.join(self.cmd)} exited {returncode}: {msg}")


class SubmissionError(SlurmError):
    """``sbatch`` refused the job (bad partition, gres, reservation, ...)."""


# --------------------------------------------------------------------- env


def prefix() -> Path:
    """Directory of the local cluster (configs, logs, state), as in env.sh."""
    return Path(os.environ.get("RSTRANSFER_SLURM_PREFIX", "/tmp/rstransfer-slurm"))


def cluster_name() -> str:
    return os.environ.get("RSTRANSFER_SLURM_CLUSTER", "localci")


def mail_log_path() -> Path:
    """File where the cluster's MailProg stub appends one line per mail."""
    env = os.environ.get("RSTRANSFER_SLURM_MAIL_LOG")
    return Path(env) if env else prefix() / "log" / "mail.log"


def _client_env() -> dict[str, str]:
    """Environment for SLURM clients: SLURM_CONF points at our cluster.

    An explicitly set SLURM_CONF wins; an empty one is dropped (every client
    fails with "cannot stat" on SLURM_CONF="").
    """
    env = dict(os.environ)
    if not env.get("SLURM_CONF"):
        env.pop("SLURM_CONF", None)
        conf = prefix() / "etc" / "slurm.conf"
        if conf.exists():
            env["SLURM_CONF"] = str(conf)
    return env


def run(
    cmd: Sequence[str],
    *,
    timeout: float = 30,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    error_cls: type[SlurmError] = SlurmError,
) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client with our SLURM_CONF; raise ``error_cls`` on failure."""
    try:
        proc = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=_client_env(),
        )
    except FileNotFoundError as exc:
        raise error_cls(cmd, 127, "", f"{cmd[0]}: not installed ({exc})") from None
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise error_cls(cmd, 124, out, err + f"\n(timed out after {timeout}s)") from None
    if check and proc.returncode != 0:
        raise error_cls(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc


# ---------------------------------------------------------------- cluster


def cluster_config() -> dict[str, str]:
    """``scontrol show config`` as a dict (keys as printed, e.g. ``ClusterName``)."""
    out = run(["scontrol", "show", "config"], timeout=15).stdout
    conf: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf[key.strip()] = value.strip()
    return conf


def cluster_status(expected_partition: str | None = None) -> tuple[bool, str]:
    """Is the local test cluster reachable? Returns ``(ok, reason)``.

    ``ok`` needs: ``sinfo`` answers, the controller's ClusterName is ours
    (``RSTRANSFER_SLURM_CLUSTER``, default ``localci``: never a real site
    cluster), and ``expected_partition`` (default: the GPU partition) exists.
    """
    part = expected_partition or os.environ.get("RSTRANSFER_SLURM_GPU_PARTITION", "gpus")
    try:
        parts = run(["sinfo", "--noheader", "--format=%R %a"], timeout=15).stdout.split("\n")
    except SlurmError as exc:
        return False, f"sinfo cannot reach a SLURM controller: {exc}"
    names = {p.split()[0] for p in parts if p.strip()}
    try:
        name = cluster_config().get("ClusterName", "?")
    except SlurmError as exc:
        return False, f"scontrol show config failed: {exc}"
    if name != cluster_name():
        return False, f"sinfo reaches cluster {name!r}, not the local test cluster {cluster_name()!r}"
    if part not in names:
        return False, f"partition {part!r} missing on {name!r} (has {sorted(names)})"
    return True, f"cluster {name!r} with partitions {sorted(names)}"


def accounting_enabled() -> bool:
    """True if the cluster runs slurmdbd (``sacct`` works), False for WITH_DBD=0."""
    return cluster_config().get("AccountingStorageType", "") == "accounting_storage/slurmdbd"


# -------------------------------------------------------------------- jobs


@dataclass
class JobResult:
    """Outcome of :func:`submit_and_wait`."""

    job_id: int
    state: str
    #: ``scontrol show job`` fields at the end (empty if already purged)
    info: dict[str, str] = field(default_factory=dict)
    #: wall-clock time (epoch seconds) just before submission, for ``sacct -S``
    submitted_at: float = 0.0
    cwd: Path | None = None

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED"

    def stdout_path(self) -> Path | None:
        p = self.info.get("StdOut")
        return Path(p) if p else None

    def stderr_path(self) -> Path | None:
        p = self.info.get("StdErr")
        return Path(p) if p else None


def submit(
    args: Iterable[str],
    *,
    script: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 30,
) -> int:
    """``sbatch --parsable ARGS [SCRIPT]``; returns the job id.

    Raises :class:`SubmissionError` (with SLURM's message in ``.stderr``) when
    sbatch refuses the job.
    """
    cmd = ["sbatch", "--parsable", *args]
    if script is not None:
        cmd.append(os.fspath(script))
    out = run(cmd, timeout=timeout, cwd=cwd, error_cls=SubmissionError).stdout.strip()
    # --parsable prints "<jobid>" or "<jobid>;<cluster>"
    m = re.match(r"^(\d+)", out.splitlines()[-1] if out else "")
    if not m:
        raise SubmissionError(cmd, 0, out, f"cannot parse a job id from {out!r}")
    return int(m.group(1))


_KV = re.compile(r"(?:^|\s)([A-Za-z][\w:/.\-]*)=(.*?)(?=\s[A-Za-z][\w:/.\-]*=|$)")


def scontrol_job(job_id: int) -> dict[str, str]:
    """``scontrol show job -o ID`` as a dict; {} once the job is purged (MinJobAge)."""
    proc = run(["scontrol", "show", "job", "-o", str(job_id)], check=False, timeout=15)
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return {}
        raise SlurmError(proc.args, proc.returncode, proc.stdout, proc.stderr)
    line = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
    return {k: v.strip() for k, v in _KV.findall(line)}


def wait_job(job_id: int, *, timeout: float = 120, poll: float = 0.5) -> JobResult:
    """Poll until the job reaches a terminal state; returns its :class:`JobResult`.

    Uses ``scontrol show job`` (valid for MinJobAge=300 s after the end) and
    falls back to ``sacct`` when the job has already been purged.
    Raises ``TimeoutError`` with the last known state.
    """
    deadline = time.monotonic() + timeout
    state = "UNKNOWN"
    info: dict[str, str] = {}
    while True:
        info = scontrol_job(job_id)
        if info:
            state = info.get("JobState", "UNKNOWN")
        elif accounting_enabled():
            recs = sacct_records(job_id, fields=("JobID", "State"))
            if recs:
                state = recs[-1]["State"].split()[0]
        if state in TERMINAL_STATES:
            return JobResult(job_id=job_id, state=state, info=info)
        if time.monotonic() > deadline:
            raise TimeoutError(f"SLURM job {job_id} still {state} after {timeout}s: {info.get('Reason', '')}")
        time.sleep(poll)


def submit_and_wait(
    args: Iterable[str],
    *,
    script: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 120,
    poll: float = 0.5,
) -> JobResult:
    """:func:`submit` then :func:`wait_job`. Output paths are relative to ``cwd``."""
    t0 = time.time()
    job_id = submit(args, script=script, cwd=cwd)
    res = wait_job(job_id, timeout=timeout, poll=poll)
    res.submitted_at = t0
    res.cwd = Path(cwd) if cwd is not None else None
    return res


# ------------------------------------------------------------------ sacct


def sacct_records(
    job_id: int,
    *,
    fields: Sequence[str] = DEFAULT_SACCT_FIELDS,
    allocations_only: bool = True,
    since: float | None = None,
) -> list[dict[str, str]]:
    """Rows of ``sacct -j ID -n -P -o FIELDS [-X] [-S since]`` as dicts.

    ``allocations_only`` (``-X``) drops the ``.batch``/``.extern``/step rows.
    ``since`` (epoch seconds) guards against an older job with the same id in
    the accounting DB (job ids restart at 1 after ``FRESH_STATE=1``).
    Raises :class:`SlurmError` if accounting is off (WITH_DBD=0).
    """
    cmd = ["sacct", "-j", str(job_id), "-n", "-P", "-o", ",".join(fields)]
    if allocations_only:
        cmd.append("-X")
    if since is not None:
        cmd += ["-S", time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 1))]
    out = run(cmd, timeout=30).stdout
    rows = []
    for line in out.splitlines():
        if not line.strip():
            continue
        values = line.split("|")
        if len(values) != len(fields):
            raise SlurmError(cmd, 0, out, f"unexpected sacct line {line!r}")
        rows.append(dict(zip(fields, values)))
    return rows


def sacct_record(
    job_id: int,
    *,
    fields: Sequence[str] = DEFAULT_SACCT_FIELDS,
    since: float | None = None,
    timeout: float = 30,
    poll: float = 0.5,
) -> dict[str, str]:
    """The allocation row of one finished job, once slurmdbd has all of it.

    slurmctld sends job records to slurmdbd asynchronously, and for a short job
    the "job ended" message can arrive first: sacct then briefly shows a
    COMPLETED row whose Partition, ReqTRES and Reservation are still empty.
    This polls until State is terminal and Partition/ReqTRES are filled in.
    Those three fields are always queried (and returned) besides ``fields``.
    With duplicate job ids (see ``since``) the newest row wins.
    """
    fields = tuple(dict.fromkeys((*fields, *_SETTLED_FIELDS)))
    deadline = time.monotonic() + timeout
    last: list[dict[str, str]] = []
    while True:
        last = sacct_records(job_id, fields=fields, since=since)
        if last and _settled(last[-1]):
            return last[-1]
        if time.monotonic() > deadline:
            raise TimeoutError(f"sacct has no complete record of finished job {job_id} after {timeout}s: {last}")
        time.sleep(poll)


_SETTLED_FIELDS = ("State", "Partition", "ReqTRES")


def _settled(rec: dict[str, str]) -> bool:
    # "CANCELLED by 0" -> "CANCELLED"
    state = rec["State"].split()[0] if rec["State"] else ""
    return state in TERMINAL_STATES and bool(rec["Partition"]) and bool(rec["ReqTRES"])


def parse_tres(tres: str) -> dict[str, str]:
    """``"billing=1,cpu=1,gres/gpu=1,mem=500M,node=1"`` -> ``{"cpu": "1", "gres/gpu": "1", ...}``."""
    out: dict[str, str] = {}
    for item in tres.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            out[key] = value
    return out


# ------------------------------------------------------------------- mail


class MailLog:
    """Reads what the cluster's MailProg stub logged (one mail per line).

    Lines are ``<ISO date> TAB <recipient> TAB <subject>``; SLURM subjects look
    like ``Slurm Job_id=7 Name=x Ended, Run time 00:00:01, COMPLETED, ExitCode 0``.
    Create it *before* submitting: only mails logged afterwards are returned.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else mail_log_path()
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def new_mails(self) -> list[tuple[str, str, str]]:
        """``(date, recipient, subject)`` for every mail logged since creation."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read().decode(errors="replace")
        mails = []
        for line in data.splitlines():
            parts = line.split("\t", 2)
            if len(parts) == 3:
                mails.append((parts[0], parts[1], parts[2]))
        return mails

    def wait_for(
        self, job_id: int, *, kind: str | None = None, timeout: float = 15, poll: float = 0.25
    ) -> list[tuple[str, str, str]]:
        """Wait until a mail about ``job_id`` (optionally of ``kind``: "Began",
        "Ended", "Failed", ...) was logged; returns the matching mails.

        slurmctld runs MailProg asynchronously, so it may lag the job's end.
        """
        pat = re.compile(rf"\bJob_id={job_id}\b" + (rf".*\b{re.escape(kind)}\b" if kind else ""))
        deadline = time.monotonic() + timeout
        while True:
            hits = [m for m in self.new_mails() if pat.search(m[2])]
            if hits:
                return hits
            if time.monotonic() > deadline:
                raise TimeoutError(f"no mail about job {job_id} ({kind or 'any'}) in {self.path} after {timeout}s")
            time.sleep(poll)
