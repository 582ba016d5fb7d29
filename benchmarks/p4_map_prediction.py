"""P4: whole-scene map prediction (``predict_scene``, batched) vs a per-pixel prediction loop.

Workload: HybridSN (window 25, 30 components, 16 classes; seeded random init, untrained: speed
does not depend on the weights) and a ``Prepared`` scene built in memory: a 145x145x30 float32
cube (seeded random values) with the Indian Pines ground truth as labels (synthetic map with as
many labelled pixels when the file is absent).

* ``predict_scene``: ``evaluate.predict_scene(model, prepared, batch_size)`` over every pixel of
  the scene (21025 px; batch 512 = ``evaluate.batch_size`` default);
* ``per-pixel predict``: the HybridSN reference ``Predict`` loop: cut one window, reshape to
  (1, 25, 25, 30, 1), ``model.predict``, argmax; timed on an evenly spaced subset of pixels;
* ``per-pixel call`` (reported, not the figure): the same loop with ``model(x, training=False)``,
  a less naive per-pixel loop without ``predict``'s per-call set-up.

All sides run in one process under the same ``setup_runtime`` thread settings, each after its own
warm-up (tracing), interleaved (per-pixel, scene, per-pixel, scene, ...); medians are reported.
The per-pixel class ids are checked against the scene map at the same pixels.

Figure: ratio = pixels/s of predict_scene / pixels/s of the per-pixel predict loop (target >= 5).
"""

from __future__ import annotations

import sys
import time

import _common as C

TARGET = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512, help="predict_scene batch (evaluate.batch_size)")
    parser.add_argument("--components", type=int, default=30)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--crop", type=int, default=None, help="predict a crop x crop scene (default full; quick 40)")
    parser.add_argument("--subset", type=int, default=None, help="pixels for the per-pixel loops (default 200, quick 30)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 2, quick 1)")
    args = parser.parse_args(argv)
    crop = args.crop or (40 if args.quick else None)
    subset = args.subset or (30 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 2)
    C.pin_threads(args.threads)

    import numpy as np

    C.setup_tf(args.threads, args.seed)
    from rstransfer.data.patches import pad_cube
    from rstransfer.data.prepare import Prepared
    from rstransfer.studies.hsi.evaluate import predict_pixels, predict_scene
    from rstransfer.studies.hsi.model import build_hybridsn

    gt, source = C.label_map(args.seed)
    cube = C.random_cube(args.components, args.seed)
    if crop:
        gt, cube = gt[:crop, :crop], cube[:crop, :crop]
    n_classes = 16
    prepared = Prepared(
        dataset="benchmark", cube=np.ascontiguousarray(cube), labels=gt.astype(np.int32),
        split=np.zeros(gt.shape, dtype=np.uint8), class_names=tuple(f"class_{i}" for i in range(1, n_classes + 1)),
        window=args.window, attrs={},
    )
    h, w = gt.shape
    model = build_hybridsn((args.window, args.window, args.components, 1), n_classes)
    padded = pad_cube(prepared.cube, args.window)
    flat_idx = C.subsample(h * w, subset)
    sub_rows, sub_cols = np.divmod(flat_idx, w)

    def per_pixel(kind: str) -> tuple[float, np.ndarray]:
        out = np.zeros(len(sub_rows), dtype=np.int64)
        t0 = time.perf_counter()
        for i, (r, c) in enumerate(zip(sub_rows, sub_cols)):
            patch = padded[r : r + args.window, c : c + args.window].reshape(1, args.window, args.window, -1, 1)
            if kind == "predict":
                prob = model.predict(patch, verbose=0)
            else:
                prob = model(patch, training=False).numpy()
            out[i] = int(np.argmax(prob, axis=1)[0]) + 1
        return len(sub_rows) / (time.perf_counter() - t0), out

    def scene() -> tuple[float, np.ndarray]:
        t0 = time.perf_counter()
        pred = predict_scene(model, prepared, args.batch_size)
        return pred.size / (time.perf_counter() - t0), pred

    # warm-up: trace predict_function and the eager call path once each
    warm = padded[: args.window, : args.window].reshape(1, args.window, args.window, -1, 1)
    model.predict(warm, verbose=0)
    model(warm, training=False)
    predict_pixels(model, prepared, sub_rows[:4], sub_cols[:4], args.batch_size)

    print(f"P4 map prediction | {C.machine()} | threads={args.threads}")
    print(
        f"HybridSN {args.window}x{args.window}x{args.components}x1 -> {n_classes} classes; scene {h}x{w} = {h * w} px "
        f"(labels: {source}); predict_scene batch {args.batch_size}; per-pixel subset {len(sub_rows)} px; "
        f"{repeats} interleaved repeats"
    )
    res: dict[str, list[float]] = {"predict_scene": [], "per-pixel predict": [], "per-pixel call": []}
    agree = []
    for r in range(repeats):
        for kind in ("predict", "call"):
            pps, ids = per_pixel(kind)
            res[f"per-pixel {kind}"].append(pps)
            print(f"  repeat {r + 1} per-pixel {kind:8s} {pps:8.1f} px/s", flush=True)
        pps, pred = scene()
        res["predict_scene"].append(pps)
        agree.append(float((pred[sub_rows, sub_cols] == ids).mean()))
        print(f"  repeat {r + 1} predict_scene      {pps:8.1f} px/s", flush=True)

    scene_pps = C.median(res["predict_scene"])
    rows = []
    for side, values in res.items():
        n = h * w if side == "predict_scene" else len(sub_rows)
        rows.append([side, n, C.median(values), 1e3 / C.median(values), scene_pps / C.median(values)])
    print(C.table(["side", "pixels", "median px/s", "ms/px", "scene speed-up"], rows))
    print(f"per-pixel vs scene class agreement on the subset: {min(agree):.3f}")
    print(f"scene map time at the median rate: {h * w / scene_pps:.1f} s")
    print(C.result_line("P4", scene_pps / C.median(res["per-pixel predict"]), TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
