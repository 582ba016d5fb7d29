"""P1: lazy patch serving (``patch_dataset``) vs materialising every patch (``reference_patches``).

Workload: a 145x145xB float32 cube (seeded random values, B=200 by default) and the labelled
pixels of the Indian Pines ground truth (10249 px; a synthetic map with as many when the real
file is absent). Both sides produce every 25x25xB window of every labelled pixel once:

* ``patch_dataset``: build the tf.data pipeline and iterate all batches once (build time
  included; the loop drops each batch before fetching the next, as ``model.fit`` does);
* ``reference``: ``reference_patches``, the HybridSN-reference Python loop that fills one
  (N, 25, 25, B) array (~5 GB at B=200).

Each side runs in its own fresh interpreter. Wall time excludes imports, TF runtime start-up and
cube creation (the pipeline build, map tracing and every batch are included); the
memory figure is the peak RSS at the end minus the peak RSS after set-up (imports, cube, labels),
from ``getrusage(RUSAGE_SELF).ru_maxrss``. Sides are interleaved (ref, tf, ref, tf, ...) and the
median is reported.

Figures: speed ratio = t_reference / t_patch_dataset (target >= 20);
RSS ratio = dRSS_patch_dataset / dRSS_reference (target <= 0.1).
Also printed (not a figure): time to the first batch, which for the baseline is its whole run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import _common as C

SPEED_TARGET = 20.0
RSS_TARGET = 0.1


def child(args) -> None:
    C.pin_threads(args.threads)
    import numpy as np

    C.setup_tf(args.threads, args.seed)
    import tensorflow as tf

    # Both sides pay for the same imports and start the TF runtime (eager context, thread pools)
    # before the clock starts: that is process set-up, like the imports, not patch serving.
    float(tf.reduce_sum(tf.ones((8, 8))))

    from rstransfer.data.patches import patch_dataset, reference_patches

    gt, _ = C.label_map(args.seed)
    rows, cols = np.nonzero(gt)
    labels = (gt[rows, cols] - 1).astype(np.int32)
    keep = C.subsample(len(rows), args.pixels)
    rows, cols, labels = rows[keep], cols[keep], labels[keep]
    cube = C.random_cube(args.bands, args.seed)
    base_peak, base_now = C.peak_rss_mib(), C.current_rss_mib()

    checksum = 0.0
    t0 = time.perf_counter()
    if args.child == "reference":
        patches = reference_patches(cube, rows, cols, args.window)
        n = len(patches)
        wall = first = time.perf_counter() - t0  # no batch can be served before the loop ends
        checksum = float(patches[:, args.window // 2, args.window // 2, 0].sum())
    else:
        ds = patch_dataset(cube, rows, cols, labels, args.window, args.batch_size)
        n = 0
        first = None
        it = iter(ds)
        while (batch := next(it, None)) is not None:
            xb = batch[0]
            n += int(xb.shape[0])
            checksum += float(xb[:, args.window // 2, args.window // 2, 0, 0].numpy().sum())
            del batch, xb  # drop this batch before asking for the next, as fit's in-graph iterator does
            if first is None:
                first = time.perf_counter() - t0
        wall = time.perf_counter() - t0
    peak = C.peak_rss_mib()
    expected = float(cube[rows, cols, 0].sum())  # the centre pixel of every window, band 0
    C.emit({
        "side": args.child,
        "n": n,
        "wall_s": wall,
        "first_batch_s": first,
        "delta_peak_rss_mib": peak - base_peak,
        "base_rss_mib": base_now,
        "peak_rss_mib": peak,
        "centre_ok": bool(np.isclose(checksum, expected, rtol=1e-4, atol=1e-2)),
    })


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--bands", type=int, default=200)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=256, help="patch_dataset batch size (train default)")
    parser.add_argument("--pixels", type=int, default=None, help="labelled pixels to use (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="fresh processes per side (default 5, quick 1)")
    parser.add_argument("--child", choices=["reference", "patch_dataset"], help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.quick and args.pixels is None:
        args.pixels = 2000
    repeats = args.repeats or (1 if args.quick else 5)
    C.pin_threads(args.threads)

    gt, source = C.label_map(args.seed)
    n_pixels = min(args.pixels or int((gt > 0).sum()), int((gt > 0).sum()))
    print(f"P1 patch serving | {C.machine()} | threads={args.threads}")
    print(
        f"cube 145x145x{args.bands} float32 (seeded random), labels: {source}; {n_pixels} px, "
        f"window {args.window}, batch {args.batch_size}, repeats {repeats} (fresh process each)"
    )
    raw = {"reference": [], "patch_dataset": []}
    common = [
        "--bands", str(args.bands), "--window", str(args.window), "--batch-size", str(args.batch_size),
        "--threads", str(args.threads), "--seed", str(args.seed),
    ] + (["--pixels", str(args.pixels)] if args.pixels else [])
    script = Path(__file__).resolve()
    for _ in range(repeats):
        for side in ("reference", "patch_dataset"):
            res = C.run_child(script, ["--child", side, *common])
            if not res["centre_ok"] or res["n"] != n_pixels:
                raise SystemExit(f"{side}: wrong output ({res})")
            raw[side].append(res)

    rows = []
    summary = {}
    for side, runs in raw.items():
        wall = C.median([r["wall_s"] for r in runs])
        rss = C.median([r["delta_peak_rss_mib"] for r in runs])
        summary[side] = (wall, rss)
        rows.append([
            side, n_pixels, wall, n_pixels / wall, C.median([r["first_batch_s"] for r in runs]), rss,
            C.median([r["base_rss_mib"] for r in runs]),
            " ".join(f"{r['wall_s']:.2f}" for r in runs),
        ])
    print(C.table(
        ["side", "pixels", "wall s", "patches/s", "1st batch s", "dRSS MiB", "base MiB", "wall s (all runs)"], rows
    ))
    speed = summary["reference"][0] / summary["patch_dataset"][0]
    rss = summary["patch_dataset"][1] / max(summary["reference"][1], 1e-9)
    gb = n_pixels * args.window**2 * args.bands * 4 / 1e9
    print(f"materialised patch array: {gb:.2f} GB; speed ratio (ref/tf.data) {speed:.3g}x; RSS ratio (tf.data/ref) {rss:.3g}x")
    print(C.result_line("P1-speed", speed, SPEED_TARGET))
    print(C.result_line("P1-rss", rss, RSS_TARGET, higher_is_better=False))
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
