"""SEG-P: Vaihingen patch extraction throughput and HDF5 size per tile (``prepare_vaihingen``).

Workload: synthetic tiles in the exact ISPRS format (``vaihingen.write_synthetic_tiles``), at the
real tile size by default (1900 x 2500 px; quick: 400 x 500), cut into 256 px patches (quick 64)
with overlap 0.6 (the tutorial's), IRRG (3 channels) + mask, gzip level 4 chunks of one patch.

* ``prepare`` (the figure): the package's step end to end: read + decode each tile, cut all its
  windows, append them to the HDF5 datasets in one block per tile;
* ``per-patch write loop`` (baseline, same run, same files, chunking and compression): the usual
  tutorial loop, one ``dataset[i] = patch`` per window. Files compared (identical patches).
* reported for context: the cut alone (memory copies) and the same block write without
  compression, i.e. how much of the time gzip takes; HDF5 MiB per tile against the raw uint8
  size of the patches (what the 0.6 overlap costs on disk).

Figure: ratio = patches/s of prepare / patches/s of the per-patch write loop (target >= 1).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import _common as C

TARGET = 1.0


def per_patch_loop(source, tiles, patch, overlap, out):  # type: ignore[no-untyped-def]
    import h5py
    import numpy as np

    from rstransfer.studies.segmentation import data as vh

    with h5py.File(out, "w") as f:
        opts = {"compression": "gzip", "compression_opts": 4}
        img = f.create_dataset("images", (0, patch, patch, 3), np.uint8, maxshape=(None, patch, patch, 3),
                               chunks=(1, patch, patch, 3), **opts)
        msk = f.create_dataset("masks", (0, patch, patch), np.uint8, maxshape=(None, patch, patch),
                               chunks=(1, patch, patch), **opts)
        n = 0
        for t in tiles:
            tile = vh.read_tile(source, t)
            for r, c in vh.grid_origins(tile.shape, patch, overlap):
                img.resize(n + 1, axis=0)
                msk.resize(n + 1, axis=0)
                img[n] = tile.image[r : r + patch, c : c + patch]
                msk[n] = tile.mask[r : r + patch, c : c + patch]
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=None, help="tiles (default 2, quick 1)")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--patch", type=int, default=None)
    parser.add_argument("--overlap", type=float, default=0.6)
    args = parser.parse_args(argv)
    C.pin_threads(args.threads)
    import h5py
    import numpy as np

    from rstransfer.core.config import validate
    from rstransfer.studies.segmentation import data as vh
    from rstransfer.studies.segmentation.patches import prepare_vaihingen
    from rstransfer.studies.segmentation.synthetic import write_synthetic_tiles

    n_tiles = args.tiles or (1 if args.quick else 2)
    height = args.height or (400 if args.quick else 1900)
    width = args.width or (500 if args.quick else 2500)
    patch = args.patch or (64 if args.quick else 256)
    tiles = list(range(1, n_tiles + 1))
    print(C.machine())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tiles"
        write_synthetic_tiles(root, [*tiles, 99], height, width, args.seed)
        source = vh.TileSource(root / "top", root / "gts", None)
        cfg = validate({
            "datasets": {"synthetic_source": {"reader": "synthetic_source"}, "synthetic_target": {"reader": "synthetic_target"}},
            "segmentation": {"image_dir": str(root / "top"), "label_dir": str(root / "gts"), "patch_size": patch,
                             "overlap": args.overlap, "tiles": {"train": tiles, "val": [99], "test": [100]}},
        })
        rows = []
        for _ in range(2):  # interleaved: loop, prepare, loop, prepare
            t0 = time.perf_counter()
            n_loop = per_patch_loop(source, tiles, patch, args.overlap, Path(tmp) / "loop.h5")
            t_loop = time.perf_counter() - t0
            t0 = time.perf_counter()
            summary = prepare_vaihingen(cfg, {"train": Path(tmp) / "train.h5"}, source)
            t_prep = time.perf_counter() - t0
            rows.append((t_loop, t_prep))
        n = summary["splits"]["train"]["patches"]
        assert n == n_loop
        with h5py.File(Path(tmp) / "train.h5") as a, h5py.File(Path(tmp) / "loop.h5") as b:
            assert np.array_equal(a["images"][...], b["images"][...]) and np.array_equal(a["masks"][...], b["masks"][...])
        size = (Path(tmp) / "train.h5").stat().st_size
        raw = n * patch * patch * 4  # 3 image bytes + 1 mask byte per pixel
        tile = vh.read_tile(source, tiles[0])
        origins = vh.grid_origins(tile.shape, patch, args.overlap)
        t0 = time.perf_counter()
        ci, cm = vh.cut_patches(tile.image, origins, patch), vh.cut_patches(tile.mask, origins, patch)
        t_cut = time.perf_counter() - t0
        t0 = time.perf_counter()
        with h5py.File(Path(tmp) / "raw.h5", "w") as f:
            f.create_dataset("images", data=ci, chunks=(1, patch, patch, 3))
            f.create_dataset("masks", data=cm, chunks=(1, patch, patch))
        t_raw = time.perf_counter() - t0
    t_loop = C.median([r[0] for r in rows])
    t_prep = C.median([r[1] for r in rows])
    print(f"{n_tiles} tile(s) {height}x{width} px, patch {patch}, overlap {args.overlap} "
          f"(stride {vh.stride_for(patch, args.overlap)}): {n} patches, {n // n_tiles} per tile")
    n1 = len(origins)
    print(C.table(
        ["side", "seconds", "patches/s", "tile px/s"],
        [["prepare end to end (read, cut, gzip-4 write)", t_prep, n / t_prep, n_tiles * height * width / t_prep],
         ["per-patch write loop (baseline)", t_loop, n / t_loop, n_tiles * height * width / t_loop],
         ["context: cut only (1 tile)", t_cut, n1 / t_cut, height * width / t_cut],
         ["context: block write, no compression (1 tile)", t_raw, n1 / t_raw, height * width / t_raw]],
    ))
    print(f"HDF5 per tile: {size / n_tiles / 2**20:.1f} MiB (raw uint8 patches {raw / n_tiles / 2**20:.1f} MiB, "
          f"source tile {height * width * 4 / 2**20:.1f} MiB; compressed/raw {size / raw:.2f})")
    print(C.result_line("SEG-P patch extraction patches/s, prepare vs per-patch write loop", t_loop / t_prep, TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
