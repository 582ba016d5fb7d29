"""``rstransfer launch``: the single launcher of training steps (Snakemake GPU rules, jobs/).

    rstransfer launch --config C -- finetune --config C --policy P --seed S ...

The config's ``distribution.mode`` and ``slurm.gpu`` (``rstransfer.slurm.ranks``) give N ranks:

* N == 1, mode ``none``, or a subcommand that does not train (``evaluate``, ``prepare`` ...):
  the subcommand runs in this process (``rstransfer.cli.main``).
* mode ``horovod``, N > 1, inside a SLURM allocation (``SLURM_JOB_ID`` set): one ``srun`` step
  of N tasks (``--ntasks-per-node`` = ``gpus_per_node``), each task a Horovod rank over **gloo**
  (no MPI needed). This process starts horovod's rendezvous server with the host/slot plan, then
  every task maps ``SLURM_PROCID/LOCALID/NODEID`` to ``HOROVOD_RANK/LOCAL_RANK/CROSS_RANK``
  (``python -m rstransfer.cli --rank-from-slurm -- ...``) before horovod is imported.
* mode ``horovod``, N > 1, outside SLURM: ``horovodrun -np N -H localhost:N --gloo rstransfer ...``.

``--dry-run`` prints the command instead. The exit status is the child's.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rstransfer.core.errors import RSTransferError

#: subcommands that train, and so run once per rank; everything else runs in one process
RANK_FLAG = "--rank-from-slurm"  # hidden first argument of the CLI: one srun task = one rank
DISTRIBUTED_COMMANDS = frozenset({"pretrain", "finetune"})

#: gloo rendezvous timeout (horovod's default, 30 s, is short for N ranks importing TF from a
#: shared file system); an existing HOROVOD_GLOO_TIMEOUT_SECONDS wins
GLOO_TIMEOUT_SECONDS = "120"

HOSTS_ENV = "RSTRANSFER_HVD_HOSTS"


class LaunchError(RSTransferError):
    """The launch cannot be built (bad arguments, allocation smaller than the config...)."""


@dataclass
class Plan:
    """What ``launch`` runs: ``kind`` is ``inprocess``, ``horovodrun`` or ``srun``."""

    kind: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the child's environment
    unset: tuple[str, ...] = ()  # removed from the child's environment
    hosts: list[tuple[str, int]] = field(default_factory=list)  # srun: (node, ranks on it)
    ranks: int = 1

    def command_line(self) -> str:
        unset = [f"-u {k}" for k in self.unset]
        env = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return " ".join((["env", *unset] if unset else []) + env + [shlex.join(self.argv)])

    def child_env(self, environ: Mapping[str, str], **extra: str) -> dict[str, str]:
        env = {k: v for k, v in environ.items() if k not in self.unset}
        return {**env, **self.env, **extra}


# ---------------------------------------------------------------------------------------------
# SLURM node lists


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets: ``a[1-2,4],b`` -> ``['a[1-2,4]', 'b']``."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise LaunchError(f"SLURM node list {text!r}: unbalanced brackets")
    return parts + [cur] if cur else parts


def expand_nodelist(text: str) -> list[str]:
    """Expand a SLURM host list (``gpu[01-03,07],login1``) in order, as ``scontrol show hostnames``."""
    out: list[str] = []
    for part in _split_top(text.strip()):
        m = re.match(r"^([^\[]*)\[([^\]]+)\](.*)$", part)
        if not m:
            out.append(part)
            continue
        prefix, ranges, rest = m.groups()
        tails = expand_nodelist(rest) if rest else [""]
        for item in ranges.split(","):
            lo, _, hi = item.partition("-")
            hi = hi or lo
            if not (lo.isdigit() and hi.isdigit()):
                raise LaunchError(f"SLURM node list {text!r}: bad range {item!r}")
            for i in range(int(lo), int(hi) + 1):
                out += [prefix + str(i).zfill(len(lo)) + tail for tail in tails]
    return out


# ---------------------------------------------------------------------------------------------
# network: where the rendezvous server listens and which interface gloo uses


def _ipv4_by_iface() -> dict[str, list[str]]:
    import psutil

    return {
        name: [a.address for a in addrs if a.family == socket.AF_INET]
        for name, addrs in psutil.net_if_addrs().items()
    }


def gloo_network(n_nodes: int, iface: str | None) -> tuple[str, str | None]:
    """``(rendezvous address, gloo interface)``.

    ``iface`` (``HOROVOD_GLOO_IFACE`` from the environment, or ``distribution.gloo_iface``) wins.
    One node: loopback. Several nodes: the interface holding the address this host's name
    resolves to, else the first non-loopback interface with an IPv4 address; every node must
    have an interface of that name (set HOROVOD_GLOO_IFACE otherwise).
    """
    addrs = _ipv4_by_iface()
    if iface:
        if not addrs.get(iface):
            raise LaunchError(f"gloo interface {iface!r} has no IPv4 address here (have: {sorted(addrs)})")
        return addrs[iface][0], iface
    loopback = sorted(n for n, a in addrs.items() if any(x.startswith("127.") for x in a))
    if n_nodes == 1:
        return "127.0.0.1", (loopback[0] if loopback else None)
    try:
        own = socket.gethostbyname(socket.gethostname())
    except OSError:
        own = ""
    for name, a in sorted(addrs.items()):
        if own in a and not own.startswith("127."):
            return own, name
    for name, a in sorted(addrs.items()):
        usable = [x for x in a if not x.startswith("127.")]
        if usable:
            return usable[0], name
    raise LaunchError("no non-loopback IPv4 interface for a multi-node gloo run; set HOROVOD_GLOO_IFACE")


# ---------------------------------------------------------------------------------------------
# building the plan


def _venv_tool(name: str) -> str | None:
    """A console script next to this interpreter (the venv's), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _rstransfer_argv() -> list[str]:
    exe = _venv_tool("rstransfer")
    return [exe] if exe else [sys.executable, "-m", "rstransfer.cli"]


def strip_dashes(command_args: Sequence[str]) -> list[str]:
    args = list(command_args)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise LaunchError("launch: give the subcommand to run after --, e.g. `launch -- finetune --policy P --seed 0`")
    if args[0] == "launch":
        raise LaunchError("launch: the subcommand cannot be launch itself")
    return args


def slurm_hosts(environ: Mapping[str, str], nodes: int, per_node: int) -> list[tuple[str, int]]:
    text = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not text:
        raise LaunchError("inside a SLURM job (SLURM_JOB_ID set) but SLURM_JOB_NODELIST is not")
    names = expand_nodelist(text)
    if len(names) < nodes:
        raise LaunchError(
            f"slurm.gpu.nodes is {nodes} but the allocation has {len(names)} node(s) ({text}); "
            "submit with as many nodes as the config says (rstransfer.slurm.sbatch_options)"
        )
    return [(name, per_node) for name in names[:nodes]]


def build_plan(config: dict[str, Any], args: list[str], environ: Mapping[str, str] | None = None) -> Plan:
    """Decide how to run ``args`` (an rstransfer subcommand line) under ``config``."""
    from rstransfer.core.slurm import ranks

    environ = os.environ if environ is None else environ
    n = ranks(config)
    if n == 1 or config["distribution"]["mode"] == "none" or args[0] not in DISTRIBUTED_COMMANDS:
        return Plan("inprocess", ["rstransfer", *args])
    if "SLURM_JOB_ID" not in environ:
        horovodrun = _venv_tool("horovodrun") or "horovodrun"
        argv = [horovodrun, "-np", str(n), "-H", f"localhost:{n}", "--gloo", *_rstransfer_argv(), *args]
        return Plan("horovodrun", argv, ranks=n)

    gpu = config["slurm"]["gpu"]
    nodes, per_node = gpu["nodes"], gpu["gpus_per_node"]
    hosts = slurm_hosts(environ, nodes, per_node)
    iface = environ.get("HOROVOD_GLOO_IFACE") or config["distribution"].get("gloo_iface") or None
    addr, iface = gloo_network(nodes, iface)
    env = {
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": addr,
        "HOROVOD_GLOO_RENDEZVOUS_PORT": "<port>",  # filled in when the server starts
        "HOROVOD_CONTROLLER": "gloo",
        "HOROVOD_CPU_OPERATIONS": "gloo",
        "HOROVOD_SIZE": str(n),
        "HOROVOD_LOCAL_SIZE": str(per_node),
        "HOROVOD_CROSS_SIZE": str(nodes),
        "HOROVOD_GLOO_TIMEOUT_SECONDS": environ.get("HOROVOD_GLOO_TIMEOUT_SECONDS", GLOO_TIMEOUT_SECONDS),
        HOSTS_ENV: ",".join(h for h, _ in hosts),
        "PYTHONUNBUFFERED": "1",
    }
    if iface:
        env["HOROVOD_GLOO_IFACE"] = iface
        if nodes > 1 and "NCCL_SOCKET_IFNAME" not in environ:
            env["NCCL_SOCKET_IFNAME"] = iface
    srun = _venv_tool("srun") or "srun"
    argv = [
        srun,
        f"--nodes={nodes}",
        f"--ntasks={n}",
        f"--ntasks-per-node={per_node}",
        f"--nodelist={','.join(h for h, _ in hosts)}",
    ]
    if "SLURM_CPUS_PER_GPU" not in environ:  # the two are mutually exclusive; srun inherits that one
        # srun no longer inherits --cpus-per-task from sbatch (Slurm 22.05+): pass it on
        argv.append(f"--cpus-per-task={environ.get('SLURM_CPUS_PER_TASK') or gpu['cpus_per_task']}")
    argv.append("--kill-on-bad-exit=1")
    if "SLURM_STEP_ID" in environ:
        # we already run inside a job step (e.g. Snakemake's `srun -n1` wrapper): let the rank
        # step share that step's resources instead of waiting for them forever
        argv.append("--overlap")
    argv += [sys.executable, "-m", "rstransfer.cli", RANK_FLAG, "--", *args]
    # the task layout is explicit above; an inherited --ntasks-per-gpu (snakemake's slurm plugin
    # submits with it) would clash with --ntasks-per-node / --gpus-per-task in srun
    unset = tuple(k for k in ("SLURM_NTASKS_PER_GPU",) if k in environ)
    return Plan("srun", argv, env=env, unset=unset, hosts=hosts, ranks=n)


# ---------------------------------------------------------------------------------------------
# running it


def _run_inprocess(args: list[str], main: Callable[[list[str]], int]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse usage errors: keep launch's "return the code" contract
        return exc.code if isinstance(exc.code, int) else 1


def _run_srun(plan: Plan) -> int:
    from rstransfer.core.dist import start_rendezvous

    if shutil.which(plan.argv[0]) is None:
        raise LaunchError(f"inside a SLURM job but {plan.argv[0]!r} is not on PATH")
    server, port, _ = start_rendezvous(plan.hosts, plan.ranks)
    try:
        env = plan.child_env(os.environ, HOROVOD_GLOO_RENDEZVOUS_PORT=str(port))
        print(f"rstransfer launch: {plan.command_line().replace('<port>', str(port))}", file=sys.stderr, flush=True)
        return subprocess.run(plan.argv, env=env).returncode
    finally:
        server.stop()


def _run_child(plan: Plan) -> int:
    print(f"rstransfer launch: {plan.command_line()}", file=sys.stderr, flush=True)
    return subprocess.run(plan.argv, env=plan.child_env(os.environ)).returncode


def launch(
    config_paths: Sequence[str | Path], command_args: Sequence[str], main: Callable[[list[str]], int], dry_run: bool = False
) -> int:
    """Run an rstransfer subcommand as the config's distribution says; return its exit status.

    ``main`` is the CLI entry point for the in-process case (one rank): passed in, so this
    module never imports the CLI."""
    from rstransfer.core.config import load_config

    args = strip_dashes(command_args)
    plan = build_plan(load_config(config_paths), args)
    if dry_run:
        if plan.kind == "srun":
            print(
                f"# gloo rendezvous on {plan.env['HOROVOD_GLOO_RENDEZVOUS_ADDR']}:<port chosen at launch>, "
                f"plan {','.join(f'{h}:{s}' for h, s in plan.hosts)}"
            )
        print(plan.command_line())
        return 0
    if plan.kind == "inprocess":
        return _run_inprocess(args, main)
    if plan.kind == "srun":
        return _run_srun(plan)
    return _run_child(plan)


# ---------------------------------------------------------------------------------------------
# the srun task side (hidden entry point)


def rank_env_from_slurm(environ: Mapping[str, str]) -> dict[str, str]:
    """``HOROVOD_RANK`` & co. for this srun task, from SLURM's task ids and the launcher's sizes."""
    try:
        rank, local, node = (int(environ[k]) for k in ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID"))
        size, local_size, cross_size = (
            int(environ[k]) for k in ("HOROVOD_SIZE", "HOROVOD_LOCAL_SIZE", "HOROVOD_CROSS_SIZE")
        )
        hosts = environ[HOSTS_ENV].split(",")
    except KeyError as exc:
        raise LaunchError(f"--rank-from-slurm: {exc.args[0]} is not set (run through `rstransfer launch`)") from None
    ntasks = int(environ.get("SLURM_NTASKS", environ.get("SLURM_NPROCS", size)))
    if ntasks != size or not (0 <= node < cross_size and 0 <= local < local_size) or rank != node * local_size + local:
        raise LaunchError(
            f"--rank-from-slurm: task layout (procid {rank}, localid {local}, nodeid {node}, ntasks {ntasks}) "
            f"does not match the rendezvous plan ({cross_size} nodes x {local_size} ranks, block distribution)"
        )
    return {
        "HOROVOD_RANK": str(rank),
        "HOROVOD_LOCAL_RANK": str(local),
        "HOROVOD_CROSS_RANK": str(node),
        "HOROVOD_HOSTNAME": environ.get("SLURMD_NODENAME") or hosts[node],
    }


def rank_args(argv: Sequence[str]) -> list[str]:
    """The srun task side: set this rank's ``HOROVOD_*`` from SLURM's task ids (before horovod
    is imported) and return the subcommand line to run."""
    args = strip_dashes(argv)
    os.environ.update(rank_env_from_slurm(os.environ))
    return args
