"""P3: training throughput fed by ``patch_dataset`` vs bare ``model.fit`` on in-memory numpy patches.

Workload: HybridSN (window 25, 30 components, 16 classes; 5,122,176 parameters) on a
145x145x30 float32 cube (seeded random values, i.e. a PCA-reduced scene) and the labelled
pixels of the Indian Pines ground truth (a synthetic map with as many when the file is absent).

* ``patch_dataset``: ``model.fit`` on the training pipeline exactly as ``train.datasets`` builds
  it (``shuffle=True, steps_per_epoch=ceil(n / batch)``; windows cut lazily in tf.data);
* ``numpy``: the same windows materialised up front (``reference_patches``) and passed to
  ``model.fit(x, y, batch_size=..., shuffle=True)``.

Both sides run in one process under the same ``setup_runtime`` thread settings and share one
model compiled once (``train.compile_model``, Adam); every run first restores the same initial
weights and zeroes the optimizer state, then runs ``warmup + steps`` steps of one ``fit`` epoch.
Throughput = ``steps * batch`` / wall time between the end of the last warm-up step and the end
of the last step (per-step timestamps from a callback). Many short runs alternate AB, BA, AB, ...
so that both sides see the same background load; the figure is the ratio of the medians over
runs. Also printed: the median single-step rate, and samples per CPU-second of this process
(``time.process_time``), which shows whether the pipeline costs CPU even when other processes
make wall times noisy.

Figure: throughput ratio = patch_dataset / numpy (target >= 0.95).
"""

from __future__ import annotations

import math
import sys
import time

import _common as C

TARGET = 0.95


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None, help="default 256 (quick: 32)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default 4, quick 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per run (tracing, first batch)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per side (default 8, quick 2)")
    parser.add_argument("--components", type=int, default=30)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--pixels", type=int, default=None, help="labelled pixels used (default all; quick 512)")
    parser.add_argument(
        "--deterministic", type=int, choices=[0, 1], default=1,
        help="tf op determinism, as train.deterministic in config.yaml (default 1)",
    )
    args = parser.parse_args(argv)
    if args.warmup < 1:
        parser.error("--warmup must be >= 1 (the first step traces the train function)")
    bs = args.batch_size or (32 if args.quick else 256)
    steps = args.steps or (3 if args.quick else 4)
    repeats = args.repeats or (2 if args.quick else 8)
    pixels = args.pixels or (512 if args.quick else None)
    C.pin_threads(args.threads)

    import numpy as np

    C.setup_tf(args.threads, args.seed, bool(args.deterministic))
    import tensorflow as tf

    from rstransfer.core.keras import keras
    from rstransfer.data.patches import patch_dataset, reference_patches
    from rstransfer.core.dist import Dist
    from rstransfer.studies.hsi.model import build_hybridsn
    from rstransfer.core.fit import compile_model

    gt, source = C.label_map(args.seed)
    rows, cols = np.nonzero(gt)
    keep = C.subsample(len(rows), pixels)
    rows, cols = rows[keep].astype(np.int32), cols[keep].astype(np.int32)
    y = (gt[rows, cols] - 1).astype(np.int32)
    n_classes = int(gt.max())
    cube = C.random_cube(args.components, args.seed)
    x = reference_patches(cube, rows, cols, args.window)[..., None]
    if (args.warmup + steps) * bs > len(y):
        raise SystemExit(f"{len(y)} pixels cannot feed {args.warmup + steps} steps of {bs} in one epoch")

    model = build_hybridsn((args.window, args.window, args.components, 1), n_classes)
    init = model.get_weights()
    compile_model(model, {"optimizer": "adam", "learning_rate": 0.001}, Dist())
    total = args.warmup + steps

    class StepClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[float] = []
            self.cpu: list[float] = []

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.ends.append(time.perf_counter())
            self.cpu.append(time.process_time())

    step_rates: dict[str, list[float]] = {"patch_dataset": [], "numpy": []}
    cpu_rates: dict[str, list[float]] = {"patch_dataset": [], "numpy": []}

    def reset() -> None:
        model.set_weights(init)
        opt_vars = model.optimizer.variables
        for v in opt_vars() if callable(opt_vars) else opt_vars:
            v.assign(tf.zeros_like(v))

    def run(side: str, run_index: int) -> float:
        reset()
        clock = StepClock()
        if side == "patch_dataset":
            # exactly as train.datasets builds the training stream (epoch-structured, seeded order)
            ds = patch_dataset(
                cube, rows, cols, y, args.window, bs,
                shuffle=True, seed=args.seed + run_index, steps_per_epoch=math.ceil(len(y) / bs),
            )
            model.fit(ds, epochs=1, steps_per_epoch=total, callbacks=[clock], verbose=0)
        else:
            model.fit(x, y, batch_size=bs, epochs=1, steps_per_epoch=total, shuffle=True, callbacks=[clock], verbose=0)
        if len(clock.ends) != total:
            raise SystemExit(f"{side}: ran {len(clock.ends)} steps, expected {total}")
        timed = np.diff(clock.ends[args.warmup - 1 :])
        step_rates[side].extend((bs / timed).tolist())
        cpu_rates[side].append(steps * bs / (clock.cpu[-1] - clock.cpu[args.warmup - 1]))
        return steps * bs / float(timed.sum())

    print(f"P3 input pipeline | {C.machine()} | threads={args.threads} deterministic={args.deterministic}")
    print(
        f"HybridSN {args.window}x{args.window}x{args.components}x1 -> {n_classes} classes, {model.count_params():,} params; "
        f"labels: {source}; {len(y)} px (numpy patches {x.nbytes / 2**20:.0f} MiB); batch {bs}, "
        f"{args.warmup} warm-up + {steps} timed steps per run, {repeats} runs per side (alternating)"
    )
    results: dict[str, list[float]] = {"patch_dataset": [], "numpy": []}
    order = ("patch_dataset", "numpy")
    for r in range(repeats):
        for side in order if r % 2 == 0 else order[::-1]:
            results[side].append(run(side, r))
            print(f"  run {r + 1} {side:13s} {results[side][-1]:8.2f} samples/s", flush=True)

    rows_out = []
    for side, values in results.items():
        rows_out.append([
            side, bs, steps, C.median(values), min(values), max(values), C.median(step_rates[side]),
            C.median(cpu_rates[side]),
        ])
    print(C.table(
        ["side", "batch", "steps/run", "median samples/s", "min", "max", "median-step samples/s", "samples/CPU-s"],
        rows_out,
    ))
    ratio = C.median(results["patch_dataset"]) / C.median(results["numpy"])
    pairs = [a / b for a, b in zip(results["patch_dataset"], results["numpy"])]
    step_ratio = C.median(step_rates["patch_dataset"]) / C.median(step_rates["numpy"])
    cpu_ratio = C.median(cpu_rates["patch_dataset"]) / C.median(cpu_rates["numpy"])
    print(f"per-repeat ratios: {' '.join(f'{p:.2f}' for p in pairs)}")
    print(f"median-step ratio {step_ratio:.3f}; per-CPU-second ratio {cpu_ratio:.3f}; {C.load()}")
    print(C.result_line("P3", ratio, TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
