"""Horovod (gloo, CPU): rstransfer.dist and rstransfer.launch.

Slow tests start real ranks with ``horovodrun -np 2 --gloo`` (or ``rstransfer launch`` through a
fake ``srun``) on a tiny prepared scene (synthetic target, 64x64 px, window 9, 13 PCA components,
random per-pixel split) and check:

(a) 2 ranks with batch B and base LR L (x2 by ``compile_model``) end with the same weights as
    1 rank with batch 2B and LR 2L after the same steps (SGD, shuffle off, dropout 0, no
    warm-up): |difference| <= 1e-6, while training moved the weights by > 1e-3; both ranks
    bit-identical although rank 1 started from other initial weights (broadcast);
(b) with a fine-tuning policy, frozen layers are bit-identical on every rank and equal to the
    pretrained weights; trainable layers moved and agree across ranks;
(c) a 2-rank ``rstransfer launch -- finetune`` via horovodrun writes exactly model.keras,
    history.csv and train.json, all from rank 0 (an audit hook logs every file each rank opens
    for writing, renames or creates);
(d) ``launch --dry-run`` builds the horovodrun command outside SLURM and the srun command inside
    a (fake) allocation, and a run through a fake ``srun`` forms a working 2-rank gloo job;
(e) the Keras-3 guard raises before horovod is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "horovod_worker.py"
VENV_BIN = Path(sys.executable).parent
RSTRANSFER = VENV_BIN / "rstransfer"
HOROVODRUN = VENV_BIN / "horovodrun"

B, L = 32, 0.01  # per-rank batch and base learning rate of the 2-rank run
ATOL = 1e-6  # (a): 1 rank vs 2 ranks after 14 SGD steps (observed ~2e-8)

CONFIG = {
    "datasets": {
        "synthetic_source": {"reader": "synthetic_source", "options": {"size": 64}},
        "synthetic_target": {"reader": "synthetic_target", "options": {"size": 64}},
    },
    "hsi": {
        "source": "synthetic_target", "target": "synthetic_target", "policies": ["Network_2"], "seeds": [0],
        "prepare": {
            "pca_components": 13,
            "window": 9,
            "split": {"protocol": "paper", "train": 0.3, "val": 0.1, "test": 0.6, "min_pixels_per_class": 2},
        },
        "train": {
            "finetune": {
                "epochs": 2, "batch_size": 16, "optimizer": "adam", "learning_rate": 0.001,
                "patience": 2, "warmup_epochs": 1,
            },
        },
    },
    "deterministic": True,
    "segmentation": {"enabled": False},
    "slurm": {"gpu": {"nodes": 1, "gpus_per_node": 2, "gres": "gpu:4"}},  # gres >= ranks per node (validated)
    "distribution": {"mode": "horovod"},
}
PRODUCTS = {"model.keras", "history.csv", "train.json"}

# Loaded by every Python process started with PYTHONPATH=<dir of this file>: a rank (HOROVOD_RANK
# or SLURM_PROCID set) logs each file it opens for writing / creates / renames / removes.
AUDIT_HOOK = '''
import os, sys
_dir = os.environ.get("RSTRANSFER_TEST_AUDIT_DIR")
_rank = os.environ.get("HOROVOD_RANK", os.environ.get("SLURM_PROCID"))
if _dir and _rank is not None:
    _log = open(os.path.join(_dir, "rank%s.log" % _rank), "a", buffering=1)
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    # event -> ((index of a path argument, index of its dir_fd argument or None), ...)
    _EVENTS = {"os.rename": ((0, 2), (1, 3)), "os.replace": ((0, 2), (1, 3)), "os.mkdir": ((0, 2),),
               "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.chmod": ((0, 2),), "os.truncate": ((0, None),),
               "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),), "shutil.copyfile": ((1, None),),
               "shutil.move": ((1, None),)}
    _busy = [False]

    def _abs(path, dir_fd):
        path = os.fsdecode(path)
        if isinstance(dir_fd, int) and not os.path.isabs(path):  # e.g. shutil.rmtree's fd-relative unlinks
            try:
                return os.path.join(os.readlink("/proc/self/fd/%d" % dir_fd), path)
            except OSError:
                return "<fd %d>/%s" % (dir_fd, path)
        return os.path.abspath(path)

    def _hook(event, args):
        if _busy[0]:
            return
        paths = []
        if event == "open" and len(args) >= 3 and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            writes = isinstance(mode, str) and any(c in mode for c in "wax+")
            if writes or (isinstance(flags, int) and flags & _WRITE):
                paths = [(args[0], None)]
        elif event in _EVENTS:
            for i, j in _EVENTS[event]:
                if i < len(args) and isinstance(args[i], (str, bytes, os.PathLike)):
                    paths.append((args[i], args[j] if j is not None and j < len(args) else None))
        if paths:
            _busy[0] = True
            try:
                for p, fd in paths:
                    _log.write(event + "\\t" + _abs(p, fd) + "\\n")
            finally:
                _busy[0] = False

    sys.addaudithook(_hook)
'''

# Stands in for SLURM's srun on a GPU-less, SLURM-less host: starts --ntasks copies of the
# command here, with the task ids srun gives (block distribution over --nodelist).
FAKE_SRUN = '''
import json, os, subprocess, sys
argv = sys.argv[1:]
opts = {}
while argv and argv[0].startswith("--"):
    key, _, value = argv.pop(0)[2:].partition("=")
    opts[key] = value
n, per_node = int(opts["ntasks"]), int(opts["ntasks-per-node"])
hosts = opts["nodelist"].split(",")
with open(os.environ["FAKE_SRUN_LOG"], "w") as f:
    json.dump({"opts": opts, "command": argv}, f)
procs = []
for rank in range(n):
    env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank % per_node),
               SLURM_NODEID=str(rank // per_node), SLURM_NTASKS=str(n), SLURM_STEP_ID="0",
               SLURMD_NODENAME=hosts[rank // per_node])
    procs.append(subprocess.Popen(argv, env=env))
sys.exit(max(p.wait() for p in procs))
'''


def clean_env(**extra: str) -> dict[str, str]:
    """No SLURM/Horovod variables from the caller (the suite may itself run in a SLURM job)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SLURMD_", "HOROVOD_", "SRUN_"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        TF_CPP_MIN_LOG_LEVEL="3",
        TF_USE_LEGACY_KERAS="1",
        OMP_NUM_THREADS="1",
        TF_NUM_INTRAOP_THREADS="1",
        TF_NUM_INTEROP_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="Agg",
    )
    env.pop("RSTRANSFER_KERAS", None)
    env.update(extra)
    return env


def run(cmd: list, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    tail = f"\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, f"exit {proc.returncode}{tail}"
    return proc


def worker(out: Path, dump: Path, prepared: Path, *args: str) -> list[str]:
    return [sys.executable, str(WORKER), "--prepared", str(prepared), "--out", str(out), "--dump", str(dump), *args]


def horovodrun(np_: int, cmd: list[str]) -> list[str]:
    return [str(HOROVODRUN), "-np", str(np_), "-H", f"localhost:{np_}", "--gloo", *cmd]


def layer_hash(npz: np.lib.npyio.NpzFile, tag: str, layer: str) -> str:
    keys = sorted((k for k in npz.files if k.startswith(f"{tag}/{layer}/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    h = hashlib.sha256()
    for k in keys:
        h.update(npz[k].tobytes())
    return h.hexdigest()


def audit_writes(audit: Path, rank: int) -> list[tuple[str, Path]]:
    log = audit / f"rank{rank}.log"
    assert log.exists(), f"rank {rank} never started with the audit hook"
    return [(e, Path(p)) for e, p in (line.split("\t", 1) for line in log.read_text().splitlines())]


def inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The prepared tiny scene and a config file (mode horovod, 1 node x 2 ranks)."""
    from rstransfer.core.config import load_config
    from rstransfer.data.prepare import prepare_scene
    from rstransfer.data.readers import load_dataset

    root = tmp_path_factory.mktemp("hvd")
    cfg_path = root / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({"results": str(root / "results"), **CONFIG}))
    cfg = load_config([cfg_path])
    scene = load_dataset("synthetic_target", cfg["datasets"]["synthetic_target"], root)
    prepared = root / "target" / "prepared.h5"
    prepared.parent.mkdir()
    prepare_scene(scene, cfg, prepared, origin="synthetic_target")
    hook = root / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(AUDIT_HOOK)
    return {"root": root, "config": cfg_path, "prepared": prepared, "hook": hook}


@pytest.fixture(scope="module")
def reference(scene: dict[str, Path]) -> dict[str, Path]:
    """1 process, no Horovod: batch 2B, LR 2L; its model.keras is the 'pretrained' model of (b)/(c)."""
    root = scene["root"]
    out, dump = root / "ref", root / "ref-dump"
    ok(run(worker(out, dump, scene["prepared"], "--dist", "none", "--batch", str(2 * B), "--lr", str(2 * L),
                  "--trim-to", str(2 * B)), cwd=root))
    return {"out": out, "dump": dump, "model": out / "model.keras"}


# ---------------------------------------------------------------------------------------------
# (a) equivalence


@pytest.mark.slow
def test_two_ranks_match_one_rank_with_the_same_global_batch(scene, reference, tmp_path):
    out, dump = tmp_path / "run", tmp_path / "dump"
    proc = ok(run(horovodrun(2, worker(out, dump, scene["prepared"], "--dist", "horovod", "--batch", str(B),
                                       "--lr", str(L), "--trim-to", str(2 * B), "--init-per-rank")), cwd=tmp_path))
    infos = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(i["rank"], i["size"], i["local_rank"]) for i in infos] == [(0, 2, 0), (1, 2, 1)]
    assert all(i["lr"] == pytest.approx(2 * L) for i in infos)  # compile_model scaled L by 2
    assert [(i["any_rank1"], i["any_none"]) for i in infos] == [(True, False), (True, False)]  # Dist.any
    ref = np.load(reference["dump"] / "rank0.npz")
    r0, r1 = (np.load(dump / f"rank{r}.npz") for r in (0, 1))
    finals = [k for k in ref.files if k.startswith("final/")]
    assert finals and set(ref.files) == set(r0.files) == set(r1.files)
    # rank 1 started elsewhere; rank 0 started where the 1-rank run did (same seed)
    assert any(not np.array_equal(r0[k], r1[k]) for k in r0.files if k.startswith("init/"))
    assert all(np.array_equal(ref[k], r0[k]) for k in ref.files if k.startswith("init/"))
    for k in finals:
        assert np.array_equal(r0[k], r1[k]), f"{k}: ranks differ (gradients not averaged / not broadcast)"
    moved = max(float(np.abs(ref[k] - ref[k.replace("final/", "init/", 1)]).max()) for k in finals)
    diff = max(float(np.abs(ref[k] - r0[k]).max()) for k in finals)
    assert moved > 1e-3, "training did not move the weights: the comparison would be vacuous"
    assert diff <= ATOL, f"2 ranks vs 1 rank: max |dw| = {diff:.3g} > {ATOL} (weights moved by up to {moved:.3g})"
    assert sorted(p.name for p in out.iterdir()) == sorted(PRODUCTS), proc.stdout


# ---------------------------------------------------------------------------------------------
# (b) frozen layers


@pytest.mark.slow
def test_frozen_layers_are_identical_on_every_rank_and_equal_the_pretrained(scene, reference, tmp_path):
    out, dump = tmp_path / "run", tmp_path / "dump"
    ok(run(horovodrun(2, worker(out, dump, scene["prepared"], "--dist", "horovod", "--batch", "16", "--lr", "0.001",
                                "--optimizer", "adam", "--policy", "Network_5", "--pretrained",
                                str(reference["model"]), "--init-per-rank")), cwd=tmp_path))
    infos = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    pretrained = np.load(reference["dump"] / "rank0.npz")  # the weights saved in reference["model"]
    trainable = {"dense_3", "dense_2", "dense_1", "conv2d_1"}
    frozen = {"conv3d_1", "conv3d_2", "conv3d_3"}
    for info in infos:
        assert set(info["trainable_layers"]) == trainable
        assert set(info["hashes"]) == trainable | frozen
        for layer in frozen:
            assert info["hashes"][layer] == layer_hash(pretrained, "final", layer), f"rank {info['rank']}: {layer}"
        for layer in trainable:
            assert info["hashes"][layer] != layer_hash(pretrained, "final", layer), f"{layer} did not train"
    assert infos[0]["hashes"] == infos[1]["hashes"]
    assert sorted(p.name for p in out.iterdir()) == sorted(PRODUCTS)
    assert not (dump / "rank1").exists() and sorted(p.name for p in dump.iterdir()) == [
        "rank0.json", "rank0.npz", "rank1.json", "rank1.npz"]


# ---------------------------------------------------------------------------------------------
# (c) only rank 0 writes


def check_rank0_only(out: Path, audit: Path, tree: Path) -> None:
    """The run folder holds exactly the products; rank 1 wrote nothing in the test's folder or
    the repository; rank 0 wrote only the products (by atomic rename) and its per-epoch
    checkpoint (rstransfer.checkpoint), which is gone after a finished run."""
    from rstransfer.core.checkpoint import checkpoint_dir

    ckpt = checkpoint_dir(out)
    staging = out.parent / f".{out.name}.staging"  # rstransfer.core.study.run_step publishes it as out
    assert sorted(p.name for p in out.iterdir()) == sorted(PRODUCTS) and not ckpt.exists() and not staging.exists()
    rank1 = [(e, p) for e, p in audit_writes(audit, 1) if inside(p, tree) or inside(p, REPO)]
    assert rank1 == [], f"rank 1 wrote {rank1}"
    rank0 = [(e, p) for e, p in audit_writes(audit, 0) if inside(p, tree) and not inside(p, audit)]
    assert ("os.rename", out) in rank0, rank0  # the one rename that publishes the run folder
    products = [p for _, p in rank0 if not inside(p, ckpt) and p not in (out, staging) and inside(p, staging)]
    assert {p.parent for p in products} == {staging}, rank0
    names = {p.name for p in products}
    assert PRODUCTS <= names and all(n in PRODUCTS or n.startswith(tuple(f".{x}." for x in PRODUCTS)) for n in names)
    assert not [p for _, p in audit_writes(audit, 0) if inside(p, REPO)]


@pytest.mark.slow
def test_launch_via_horovodrun_writes_the_products_from_rank_0_only(scene, reference, tmp_path):
    out, audit = tmp_path / "run", tmp_path / "audit"
    audit.mkdir()
    env = clean_env(RSTRANSFER_TEST_AUDIT_DIR=str(audit), PYTHONPATH=str(scene["hook"]))
    cfg = str(scene["config"])
    proc = ok(run([RSTRANSFER, "launch", "--config", cfg, "--", "finetune", "--study", "hsi", "--config", cfg,
                   "--input", f"data={scene['prepared'].parent}", "--input", f"pretrained={reference['out']}",
                   "--run", "Network_2/seed0", "--out", out, "--threads", "1"], cwd=tmp_path, env=env))
    assert f"{HOROVODRUN} -np 2 -H localhost:2 --gloo" in proc.stderr
    check_rank0_only(out, audit, tmp_path)
    info = json.loads((out / "train.json").read_text())
    assert info["world_size"] == 2 and info["epochs_run"] == 2 and info["policy"] == "Network_2"
    assert info["run"]["slurm_job_id"] == "local"
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(history) == 3


# ---------------------------------------------------------------------------------------------
# (d) the launcher


def dry_run(config: Path, *sub: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run([RSTRANSFER, "launch", "--config", config, "--dry-run", "--", *sub], cwd=config.parent, env=env)


def write_cfg(tmp_path: Path, name: str, override: dict) -> Path:
    from rstransfer.core.config import deep_update

    path = tmp_path / name
    path.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), **deep_update(CONFIG, override)}))
    return path


SUB = ("finetune", "--study", "hsi", "--config", "C.yaml", "--run", "Network_2/seed0")


def test_dry_run_outside_slurm_is_horovodrun(tmp_path):
    cfg = write_cfg(tmp_path, "c.yaml", {"slurm": {"gpu": {"nodes": 1, "gpus_per_node": 4}}})
    proc = ok(dry_run(cfg, *SUB, env=clean_env()))
    assert shlex.split(proc.stdout.strip().splitlines()[-1]) == [
        str(HOROVODRUN), "-np", "4", "-H", "localhost:4", "--gloo", str(RSTRANSFER), *SUB]


def test_dry_run_runs_in_process_when_one_rank_or_mode_none_or_not_training(tmp_path):
    for name, override, sub in [
        ("none.yaml", {"distribution": {"mode": "none"}}, SUB),
        ("one.yaml", {"slurm": {"gpu": {"nodes": 1, "gpus_per_node": 1}}}, SUB),
        ("eval.yaml", {}, ("evaluate", "--study", "hsi", "--run", "Network_2/seed0")),
    ]:
        cfg = write_cfg(tmp_path, name, override)
        for env in (clean_env(), clean_env(SLURM_JOB_ID="77", SLURM_JOB_NODELIST="gn01")):
            proc = ok(dry_run(cfg, *sub, env=env))
            assert shlex.split(proc.stdout.strip()) == ["rstransfer", *sub], name


def test_dry_run_inside_slurm_is_srun_over_gloo(tmp_path):
    cfg = write_cfg(tmp_path, "c.yaml", {"slurm": {"gpu": {"nodes": 2, "gpus_per_node": 4}}})
    env = clean_env(SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="gn[07-08]", SLURM_NNODES="2", SLURM_JOB_NUM_NODES="2")
    proc = ok(dry_run(cfg, *SUB, env=env))
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("# gloo rendezvous on ") and "plan gn07:4,gn08:4" in lines[0]
    words = shlex.split(lines[-1])
    srun_at = next(i for i, w in enumerate(words) if w.endswith("srun"))
    assignments = dict(w.split("=", 1) for w in words[:srun_at] if "=" in w)
    assert words[srun_at + 1 : srun_at + 7] == [
        "--nodes=2", "--ntasks=8", "--ntasks-per-node=4", "--nodelist=gn07,gn08", "--cpus-per-task=4",
        "--kill-on-bad-exit=1"]
    assert Path(words[srun_at + 7]).resolve() == Path(sys.executable).resolve()  # the venv's python
    assert words[srun_at + 8 :] == ["-m", "rstransfer.cli", "--rank-from-slurm", "--", *SUB]
    assert {k: assignments[k] for k in (
        "HOROVOD_CONTROLLER", "HOROVOD_CPU_OPERATIONS", "HOROVOD_SIZE", "HOROVOD_LOCAL_SIZE",
        "HOROVOD_CROSS_SIZE", "RSTRANSFER_HVD_HOSTS")} == {
        "HOROVOD_CONTROLLER": "gloo", "HOROVOD_CPU_OPERATIONS": "gloo", "HOROVOD_SIZE": "8",
        "HOROVOD_LOCAL_SIZE": "4", "HOROVOD_CROSS_SIZE": "2", "RSTRANSFER_HVD_HOSTS": "gn07,gn08"}
    socket.inet_aton(assignments["HOROVOD_GLOO_RENDEZVOUS_ADDR"])  # an IPv4 address
    assert assignments["HOROVOD_GLOO_RENDEZVOUS_PORT"] == "<port>" and assignments["HOROVOD_GLOO_IFACE"]

    # an allocation smaller than the config: one line, exit 2
    proc = dry_run(cfg, *SUB, env=clean_env(SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="gn07"))
    assert proc.returncode == 2 and "slurm.gpu.nodes is 2 but the allocation has 1 node" in proc.stderr
    # already inside a job step (Snakemake's srun -n1 wrapper): the rank step may overlap it
    proc = ok(dry_run(cfg, *SUB, env={**env, "SLURM_STEP_ID": "0"}))
    assert "--overlap" in shlex.split(proc.stdout.strip().splitlines()[-1])
    # submitted with --ntasks-per-gpu / --cpus-per-gpu (snakemake's slurm plugin): no clash in srun
    proc = ok(dry_run(cfg, *SUB, env={**env, "SLURM_NTASKS_PER_GPU": "1", "SLURM_CPUS_PER_GPU": "8"}))
    words = shlex.split(proc.stdout.strip().splitlines()[-1])
    assert words[:3] == ["env", "-u", "SLURM_NTASKS_PER_GPU"] and not any(w.startswith("--cpus-per") for w in words)


def test_expand_nodelist_and_rank_mapping():
    from rstransfer.core.launch import LaunchError, expand_nodelist, rank_env_from_slurm

    assert expand_nodelist("gpu[01-03,10],login1,n[8-9]-ib") == [
        "gpu01", "gpu02", "gpu03", "gpu10", "login1", "n8-ib", "n9-ib"]
    plan = {"HOROVOD_SIZE": "8", "HOROVOD_LOCAL_SIZE": "4", "HOROVOD_CROSS_SIZE": "2", "RSTRANSFER_HVD_HOSTS": "a,b"}
    task = {"SLURM_PROCID": "6", "SLURM_LOCALID": "2", "SLURM_NODEID": "1", "SLURM_NTASKS": "8"}
    assert rank_env_from_slurm({**plan, **task}) == {
        "HOROVOD_RANK": "6", "HOROVOD_LOCAL_RANK": "2", "HOROVOD_CROSS_RANK": "1", "HOROVOD_HOSTNAME": "b"}
    with pytest.raises(LaunchError, match="does not match the rendezvous plan"):  # cyclic distribution
        rank_env_from_slurm({**plan, **task, "SLURM_PROCID": "3"})
    with pytest.raises(LaunchError, match="SLURM_PROCID"):
        rank_env_from_slurm(plan)


@pytest.mark.slow
def test_launch_through_srun_forms_a_gloo_job(scene, reference, tmp_path):
    """The srun path end to end on one host: a fake srun starts the tasks with SLURM's task ids,
    this launcher's rendezvous server connects them (no horovodrun, no MPI)."""
    bin_dir, audit, out = tmp_path / "bin", tmp_path / "audit", tmp_path / "run"
    bin_dir.mkdir()
    audit.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(f"#!{sys.executable}\n{FAKE_SRUN}")
    srun.chmod(0o755)
    host = socket.gethostname()
    env = clean_env(
        SLURM_JOB_ID="4242", SLURM_JOB_NODELIST=host, SLURM_NNODES="1", SLURM_CPUS_PER_TASK="3",
        FAKE_SRUN_LOG=str(tmp_path / "srun.json"), RSTRANSFER_TEST_AUDIT_DIR=str(audit), PYTHONPATH=str(scene["hook"]),
    )
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    cfg = str(scene["config"])
    proc = ok(run([RSTRANSFER, "launch", "--config", cfg, "--", "finetune", "--study", "hsi", "--config", cfg,
                   "--input", f"data={scene['prepared'].parent}", "--input", f"pretrained={reference['out']}",
                   "--run", "Network_2/seed0", "--out", out, "--threads", "1"], cwd=tmp_path, env=env))
    call = json.loads((tmp_path / "srun.json").read_text())
    assert call["opts"] == {"nodes": "1", "ntasks": "2", "ntasks-per-node": "2", "nodelist": host,
                            "cpus-per-task": "3", "kill-on-bad-exit": "1"}
    assert call["command"][1:5] == ["-m", "rstransfer.cli", "--rank-from-slurm", "--"]
    assert "HOROVOD_GLOO_RENDEZVOUS_PORT=" in proc.stderr and "<port>" not in proc.stderr
    info = json.loads((out / "train.json").read_text())
    assert info["world_size"] == 2 and info["run"]["slurm_job_id"] == "4242"
    check_rank0_only(out, audit, tmp_path)


# ---------------------------------------------------------------------------------------------
# (e) Keras 3 guard


def test_keras3_guard_raises_before_horovod(monkeypatch):
    from rstransfer.core import dist
    from rstransfer.core import keras as _keras

    monkeypatch.setattr(_keras, "IS_KERAS3", True)
    with pytest.raises(RuntimeError, match="Keras 3"):
        dist.init("horovod")
    assert dist.init("none").size == 1


@pytest.mark.slow
def test_keras3_guard_under_real_keras3(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        from rstransfer.core import dist
        from rstransfer.core import keras as _keras
        assert _keras.IS_KERAS3, _keras.keras.__version__
        try:
            dist.init("horovod")
        except RuntimeError as exc:
            print("GUARD", "horovod.tensorflow" in sys.modules, exc)
        """
    )
    proc = ok(run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(RSTRANSFER_KERAS="keras3")))
    assert proc.stdout.startswith("GUARD False ") and "silently skips the gradient allreduce" in proc.stdout
