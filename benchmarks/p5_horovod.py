"""P5: Horovod overhead (1 rank under horovodrun vs a plain run) and a data-parallel estimate.

Measured (this machine, CPU): HybridSN 25x25x30x1 -> 16 classes (5,122,176 params; smaller with
``--window/--bands``), Adam, batch ``--batch-size`` per rank, trained through the project's own
path (``core.fit.setup_runtime``, ``dist.init``, ``core.fit.compile_model``, ``dist.callbacks``) on
windows cut by ``patch_dataset`` from a seeded random 145x145xB cube at the labelled pixels of the
Indian Pines ground truth (a synthetic map with as many pixels when the file is absent).
Each side is a fresh process; ``--warmup`` steps are untimed, the next ``--steps`` are timed.

* plain: ``distribution.mode none`` (one process, every core);
* hvd-1: ``horovodrun -np 1 --gloo``, ``distribution.mode horovod`` (DistributedOptimizer,
  broadcast and metric-average callbacks; at size 1 horovod skips the allreduce itself, so this
  is the cost of the wrapper and the runtime);
* hvd-2: ``horovodrun -np 2 --gloo``, each rank ``threads // 2`` cores, global throughput
  (2 x batch per step) vs plain. On a 2-core CPU this cannot scale; it shows the allreduce cost.

Sides are interleaved (plain, hvd-1, hvd-1, plain ...) ``--repeats`` times, every process in its
own session (as horovodrun starts ranks), and medians are reported with samples per CPU-second
(all threads of the process) next to samples/s, as a check that is robust to other load.
Figure: P5 ratio = samples/s(hvd-1) / samples/s(plain), target >= 0.95.

Then an ESTIMATE (not a measurement) of the time per epoch at 1/2/4/8 GPUs for every HybridSN
fine-tuning policy: allreduce bytes per step = trainable params x 4 (float32 gradients, fused
into one buffer by horovod), ring allreduce time = 2(N-1)/N x bytes / bandwidth, compute time per
step from the model's FLOPs and an assumed sustained GPU rate; all assumptions are printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

TARGET = 0.95
N_CLASSES = 16
TRAIN_FRACTION = 0.3  # of the labelled pixels: one epoch = 0.3 x 10249 = 3075 patches (Indian Pines)


# ---------------------------------------------------------------------------------------------
# child: one training process (plain, or one Horovod rank)


def child(args) -> None:
    C.pin_threads(args.threads)
    import numpy as np

    C.setup_tf(args.threads, args.seed)
    from rstransfer.core import dist as dist_mod
    from rstransfer.core.keras import keras
    from rstransfer.data.patches import patch_dataset
    from rstransfer.core.fit import compile_model
    from rstransfer.studies.hsi.model import build_hybridsn

    dist = dist_mod.init(args.child)
    gt, _ = C.label_map(args.seed)
    rows, cols = np.nonzero(gt)
    labels = (gt[rows, cols] - 1).astype(np.int32)
    cube = C.random_cube(args.bands, args.seed)
    bs = args.batch_size
    ds = patch_dataset(cube, rows, cols, labels, args.window, bs, shuffle=True, seed=args.seed,
                       shard=dist.shard(), repeat=True)
    model = build_hybridsn((args.window, args.window, args.bands, 1), N_CLASSES)
    fit_cfg = {"optimizer": "adam", "learning_rate": 0.001}
    compile_model(model, fit_cfg, dist)

    marks: dict[str, float] = {}

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if batch == args.warmup - 1:
                marks["t0"], marks["c0"] = time.perf_counter(), time.process_time()
            if batch == args.warmup + args.steps - 1:
                marks["t1"], marks["c1"] = time.perf_counter(), time.process_time()

    total = args.warmup + args.steps
    callbacks = dist.callbacks(warmup_epochs=0, initial_lr=0.001 * dist.size, steps_per_epoch=total)
    model.fit(ds, epochs=1, steps_per_epoch=total, callbacks=[*callbacks, Timer()], verbose=0)
    wall = marks["t1"] - marks["t0"]
    cpu = marks["c1"] - marks["c0"]  # user + sys of every thread of this process
    if dist.is_root:
        Path(args.result).write_text(json.dumps({
            "side": args.side,
            "size": dist.size,
            "wall_s": wall,
            "step_ms": 1000 * wall / args.steps,
            "samples_per_s": args.steps * bs * dist.size / wall,
            "samples_per_cpu_s": args.steps * bs / cpu,  # this rank's samples per CPU-second
        }))


def run_side(script: Path, side: str, common: list[str], threads: int) -> dict:
    """One fresh process (plain) or one horovodrun job; returns rank 0's result."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(script), "--side", side, "--result", str(result), *common]
        if side == "plain":
            cmd += ["--child", "none", "--threads", str(threads)]
        else:
            n = int(side.split("-")[1])
            horovodrun = str(Path(sys.executable).parent / "horovodrun")
            cmd = [horovodrun, "-np", str(n), "-H", f"localhost:{n}", "--gloo",
                   *cmd, "--child", "horovod", "--threads", str(max(1, threads // n))]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "HOROVOD_"))}
        # horovodrun starts each rank with setsid(), i.e. in its own scheduler autogroup; give the
        # plain side its own session too, or on a shared machine with autogroups enabled
        # (/proc/sys/kernel/sched_autogroup_enabled) it gets a smaller CPU share than a rank
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, start_new_session=True)
        if proc.returncode != 0 or not result.exists():
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
            raise SystemExit(f"{side} failed with exit code {proc.returncode}")
        return json.loads(result.read_text())


# ---------------------------------------------------------------------------------------------
# the estimate


def layer_flops(model) -> list[tuple[str, float, bool]]:
    """(layer, forward multiply-adds per sample, trainable) for the layers with weights, in order."""
    out = []
    for layer in model.layers:
        if not layer.weights:
            continue
        kernel = layer.weights[0]
        if len(kernel.shape) >= 3:  # ConvND: MACs = output elements x kernel volume x in-channels
            macs = math.prod(layer.output.shape[1:]) * math.prod(kernel.shape[:-1])
        else:  # Dense
            macs = kernel.shape[0] * kernel.shape[1]
        out.append((layer.name, float(macs), bool(layer.trainable)))
    return out


def train_flops_per_sample(layers: list[tuple[str, float, bool]]) -> float:
    """2 FLOPs per MAC. Forward: every layer. Backward: only from the top down to the lowest
    trainable layer: dW (1x forward) for trainable layers, dX (1x forward) for every layer above
    the lowest trainable one. Frozen layers below it cost forward only."""
    fwd = sum(m for _, m, _ in layers)
    trainable_at = [i for i, (_, _, t) in enumerate(layers) if t]
    if not trainable_at:
        return 2 * fwd
    lowest = trainable_at[0]
    bwd = sum(m for _, m, t in layers[lowest:] if t) + sum(m for _, m, _ in layers[lowest + 1 :])
    return 2 * (fwd + bwd)


def estimate(args, steps_ms_cpu: float) -> None:
    from rstransfer.core.policies import apply_policy, policy_table
    from rstransfer.models import count_params
    from rstransfer.studies.hsi.model import build_hybridsn
    from rstransfer.studies.hsi.policies import POLICIES

    shape = (25, 25, 30, 1)
    table = {r["policy"]: r for r in policy_table(POLICIES, lambda p: build_hybridsn(shape, N_CLASSES, inserted_dense=p.inserted_dense))}
    n_epoch = round(TRAIN_FRACTION * C.N_LABELLED)
    gpus = (1, 2, 4, 8)
    bw = {"intra-node": args.bw_intra, "inter-node": args.bw_inter}
    print()
    print("ESTIMATE (not measured): time per epoch of HybridSN 25x25x30 -> 16 classes at 1/2/4/8 GPUs")
    print("assumptions:")
    print(f"  epoch = {n_epoch} patches ({TRAIN_FRACTION:g} x {C.N_LABELLED} labelled Indian Pines pixels); "
          f"batch {args.est_batch} per GPU, steps/epoch = ceil(epoch / (batch x N))")
    print(f"  compute/step = training FLOPs per sample (from the layer shapes; frozen layers below the lowest "
          f"trainable one: forward only) x batch / {args.gpu_tflops:g} TFLOP/s sustained FP32 per GPU (assumed)")
    print("  allreduce/step = 2(N-1)/N x (trainable params x 4 B) / bandwidth; one fused buffer, latency and "
          "compute/communication overlap ignored (pessimistic), input pipeline assumed not limiting")
    print(f"  bandwidth: {bw['intra-node']:g} GB/s when all N GPUs share a node (N <= {args.gpus_per_node}), else "
          f"{bw['inter-node']:g} GB/s (ring bottleneck = the inter-node link)")
    print(f"  for scale: this CPU measured {steps_ms_cpu:.0f} ms/step (plain, policy Original, "
          f"batch {args.batch_size}, window {args.window}, {args.bands} comps)")
    rows = []
    for policy in POLICIES.values():
        model = build_hybridsn(shape, N_CLASSES, inserted_dense=policy.inserted_dense)
        apply_policy(model, policy)
        trainable = count_params(model.trainable_weights)
        assert trainable == table[policy.name]["trainable_params"]
        flops = train_flops_per_sample(layer_flops(model))
        compute_s = flops * args.est_batch / (args.gpu_tflops * 1e12)
        nbytes = trainable * 4
        cells = []
        for n in gpus:
            link = bw["intra-node"] if n <= args.gpus_per_node else bw["inter-node"]
            comm_s = 2 * (n - 1) / n * nbytes / (link * 1e9)
            steps = math.ceil(n_epoch / (args.est_batch * n))
            cells.append(steps * (compute_s + comm_s))
        rows.append([
            policy.name, trainable, f"{nbytes / 2**20:.2f}", f"{flops / 1e9:.2f}", f"{1000 * compute_s:.1f}",
            *(f"{1000 * c:.0f}" for c in cells), f"{cells[0] / cells[-1]:.2f}x",
        ])
    print(C.table(
        ["policy", "trainable", "allreduce MiB/step", "train GFLOP/sample", "compute ms/step",
         *(f"epoch ms @{n}" for n in gpus), "speed-up @8"],
        rows,
    ))
    print("(estimate; per-epoch totals only; the 8-GPU column is 2 nodes x 4 GPUs unless --gpus-per-node 8)")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--bands", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (tracing, first allreduce)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20, quick 5)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved runs per side (default 3, quick 1)")
    parser.add_argument("--gpu-tflops", type=float, default=10.0, help="ESTIMATE: sustained FP32 TFLOP/s per GPU")
    parser.add_argument("--bw-intra", type=float, default=50.0, help="ESTIMATE: GB/s allreduce bandwidth in a node")
    parser.add_argument("--bw-inter", type=float, default=12.5, help="ESTIMATE: GB/s between nodes (100 Gb/s)")
    parser.add_argument("--gpus-per-node", type=int, default=4, help="ESTIMATE: GPUs per node")
    parser.add_argument("--est-batch", type=int, default=256, help="ESTIMATE: batch per GPU (config default)")
    parser.add_argument("--child", choices=["none", "horovod"], help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.quick:
        args.window, args.bands = min(args.window, 15), min(args.bands, 15)
    steps = args.steps or (5 if args.quick else 20)
    repeats = args.repeats or (1 if args.quick else 3)
    C.pin_threads(args.threads)
    common = ["--window", str(args.window), "--bands", str(args.bands), "--batch-size", str(args.batch_size),
              "--warmup", str(args.warmup), "--steps", str(steps), "--seed", str(args.seed)]
    script = Path(__file__).resolve()
    _, source = C.label_map(args.seed)
    print(f"P5 Horovod overhead | {C.machine()} | threads={args.threads}")
    print(f"HybridSN {args.window}x{args.window}x{args.bands}x1 -> {N_CLASSES}, Adam, batch {args.batch_size}/rank, "
          f"{args.warmup} untimed + {steps} timed steps, labels: {source}; repeats {repeats} (fresh processes)")
    raw: dict[str, list[dict]] = {"plain": [], "hvd-1": [], "hvd-2": []}
    for i in range(repeats):
        for side in ("plain", "hvd-1") if i % 2 == 0 else ("hvd-1", "plain"):  # alternate who goes first
            raw[side].append(run_side(script, side, common, args.threads))
    raw["hvd-2"].append(run_side(script, "hvd-2", common, args.threads))
    load_after = os.getloadavg()

    med = {side: C.median([r["samples_per_s"] for r in runs]) for side, runs in raw.items()}
    cpu = {side: C.median([r["samples_per_cpu_s"] for r in runs]) for side, runs in raw.items()}
    rows = []
    for side, runs in raw.items():
        ranks = runs[0]["size"]
        rows.append([
            side, ranks, max(1, args.threads // ranks), C.median([r["step_ms"] for r in runs]), med[side],
            med[side] / med["plain"], cpu[side], cpu[side] / cpu["plain"],
            " ".join(f"{r['samples_per_s']:.1f}" for r in runs),
        ])
    print(C.table(["side", "ranks", "threads/rank", "ms/step", "samples/s", "vs plain", "samples/CPU-s",
                   "vs plain", "samples/s (all runs)"], rows))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}; samples/CPU-s = per rank, every thread "
          "of the process counted (less sensitive to other load on a shared machine than wall time)")
    ratio = med["hvd-1"] / med["plain"]
    print(f"2 ranks on this {os.cpu_count()}-core CPU: {med['hvd-2']:.1f} samples/s global = "
          f"{med['hvd-2'] / med['plain']:.2f}x of 1 rank (cores are shared, so no speed-up is possible here)")
    estimate(args, C.median([r["step_ms"] for r in raw["plain"]]))
    cpu_ratio = cpu["hvd-1"] / cpu["plain"]
    print(f"RESULT P5-cpu ratio={cpu_ratio:.3g} target={TARGET:g} {'PASS' if cpu_ratio >= TARGET else 'MISS'}"
          "  (samples per CPU-second; robust to other load)")
    print(f"RESULT P5 ratio={ratio:.3g} target={TARGET:g} {'PASS' if ratio >= TARGET else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
