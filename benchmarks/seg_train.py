"""SEG-T: ResNet50-FCN training throughput: the package's input pipeline vs in-memory arrays.

Workload: ``build_resnet50_fcn`` (6 classes, random init), ``train.compile_model`` (Adam), a
PatchSet of seeded random uint8 patches (256 px, quick 64) with random class masks; batch 8.

* ``pipeline``: ``vaihingen.patch_dataset`` as ``train-fcn`` uses it (per-element fetch from
  the uint8 arrays + normalisation, dihedral augmentation in the graph, epoch-structured);
* ``arrays`` (baseline, same run): ``model.fit`` on pre-normalised float32 arrays, no
  augmentation: the upper bound that skips all input work.
* ``pipeline only`` (reported): iterating the dataset without a model, patches/s.

Each side: one warm-up fit (tracing), then timed steps; interleaved, medians.
Figure: ratio = samples/s of pipeline / samples/s of arrays (target >= 0.8: augmentation and
the per-element fetch cost at most 20 %).
"""

from __future__ import annotations

import json
import sys
import time

import _common as C

TARGET = 0.8


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=None, help="patch px (default 256, quick 64)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per side (default 8, quick 4)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    C.pin_threads(args.threads)
    import numpy as np

    C.setup_tf(args.threads, args.seed)
    from rstransfer.core import dist as dist_mod
    from rstransfer.studies.segmentation import data as vh
    from rstransfer.studies.segmentation import patches as vp
    from rstransfer.studies.segmentation.model import build_resnet50_fcn
    from rstransfer.core.fit import compile_model

    patch = args.patch or (64 if args.quick else 256)
    steps = args.steps or (4 if args.quick else 8)
    b = args.batch_size
    n = b * steps
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 255, (n, patch, patch, 3), dtype=np.uint8)
    masks = rng.integers(0, 6, (n, patch, patch), dtype=np.uint8)
    patches = vp.PatchSet(images, masks, np.zeros((n, 3), np.int32), {"class_names": json.dumps(list(vh.CLASSES))})
    x, y = vp.normalize(images), masks.astype(np.int32)
    print(C.machine())
    model = build_resnet50_fcn((patch, patch, 3), 6)
    compile_model(model, {"optimizer": "adam", "learning_rate": 1e-4}, dist_mod.Dist())
    ds = vp.patch_dataset(patches, b, augment=True, shuffle=True, seed=args.seed, steps_per_epoch=steps)
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)  # warm-up / trace
    model.fit(x[:b], y[:b], batch_size=b, epochs=1, verbose=0)
    t_pipe, t_arr, t_only = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
        t_pipe.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=b, epochs=1, shuffle=False, verbose=0)
        t_arr.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _batch in ds.take(steps):
            pass
        t_only.append(time.perf_counter() - t0)
    sp, sa, so = n / C.median(t_pipe), n / C.median(t_arr), n / C.median(t_only)
    print(f"patch {patch} px, batch {b}, {steps} timed steps per side, {args.repeats} repeats")
    print(C.table(
        ["side", "samples/s", "px/s"],
        [["pipeline (patch_dataset + augmentation)", sp, sp * patch * patch],
         ["arrays (baseline, no input work)", sa, sa * patch * patch],
         ["pipeline only (no model)", so, so * patch * patch]],
    ))
    print(C.result_line("SEG-T FCN training samples/s, pipeline vs in-memory arrays", sp / sa, TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
