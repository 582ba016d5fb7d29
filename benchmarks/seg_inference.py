"""SEG-I: whole-tile inference: overlapping windows predicted in batches (``predict_tile``) vs a
per-patch ``model.predict`` loop.

Workload: ``build_resnet50_fcn`` (6 classes, random init; speed does not depend on weights), one
tile of seeded random IRRG pixels, 1024 x 1280 px with 256 px windows (quick: 256 x 320, 64 px),
window overlap 0.5 (``segmentation.evaluate.overlap``), batch 16.

* ``predict_tile``: the package's function (``evaluate-fcn``): windows stacked into batches of 16
  (last one padded), ``predict_on_batch``, softmax summed and divided by the per-pixel count;
* ``per-patch loop`` (baseline, same run): the same windows, one ``model.predict(x[None])`` each,
  same averaging.

Both produce the same probabilities (checked). Each side warmed up first; interleaved; medians.
Figure: ratio = tile pixels/s of predict_tile / per-patch loop (target >= 1.5).
"""

from __future__ import annotations

import sys
import time

import _common as C

TARGET = 1.5


def per_patch(model, channels, patch, overlap):  # type: ignore[no-untyped-def]
    import numpy as np

    from rstransfer.studies.segmentation import data as vh
    from rstransfer.studies.segmentation.patches import normalize

    h, w = channels.shape[:2]
    x = normalize(channels)
    acc = np.zeros((h, w, 6), np.float32)
    count = np.zeros((h, w), np.float32)
    for r, c in vh.grid_origins((h, w), patch, overlap):
        acc[r : r + patch, c : c + patch] += model.predict(x[None, r : r + patch, c : c + patch], verbose=0)[0]
        count[r : r + patch, c : c + patch] += 1
    return acc / count[..., None]


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    C.pin_threads(args.threads)
    import numpy as np

    C.setup_tf(args.threads, args.seed)
    from rstransfer.studies.segmentation import data as vh
    from rstransfer.studies.segmentation.model import build_resnet50_fcn
    from rstransfer.studies.segmentation.evaluate import predict_tile

    patch = args.patch or (64 if args.quick else 256)
    h = args.height or (256 if args.quick else 1024)
    w = args.width or (320 if args.quick else 1280)
    tile = np.random.default_rng(args.seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    model = build_resnet50_fcn((patch, patch, 3), 6)
    windows = len(vh.grid_origins((h, w), patch, args.overlap))
    print(C.machine())
    small = tile[:patch, : patch * 2]
    predict_tile(model, small, patch, args.overlap, args.batch_size)  # warm-up (trace)
    per_patch(model, small, patch, args.overlap)
    t_b, t_l = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        loop = per_patch(model, tile, patch, args.overlap)
        t_l.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        batched = predict_tile(model, tile, patch, args.overlap, args.batch_size)
        t_b.append(time.perf_counter() - t0)
    np.testing.assert_allclose(batched, loop, rtol=1e-3, atol=1e-4)
    tb, tl = C.median(t_b), C.median(t_l)
    print(f"tile {h}x{w} px, window {patch}, overlap {args.overlap}: {windows} windows, batch {args.batch_size}")
    print(C.table(
        ["side", "seconds", "tile px/s", "windows/s"],
        [["predict_tile (batched)", tb, h * w / tb, windows / tb],
         ["per-patch predict loop (baseline)", tl, h * w / tl, windows / tl]],
    ))
    print(C.result_line("SEG-I whole-tile px/s, batched windows vs per-patch loop", tl / tb, TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
