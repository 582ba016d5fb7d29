#!/usr/bin/env python3
"""Write the small ISPRS Vaihingen fixtures under tests/data/vaihingen/ in the real file format.

Run from anywhere: ``python tests/data/make_vaihingen_fixtures.py``. The outputs are committed,
so tests never regenerate them; rerun only when the layout changes, then commit the new files
and ``tests/data/vaihingen/CHECKSUMS``. ``--check`` compares the files on disk with a fresh
generation instead of writing.

What is real and what is made up: the real tiles (about 2000 x 2500 px) are not available
offline, so the content is seeded and synthetic; the *format* is the ISPRS one:

* ``top/top_mosaic_09cm_area{N}.tif``: IRRG image, (H, W, 3) uint8, RGB TIFF;
* ``gts/top_mosaic_09cm_area{N}.tif``: ground truth named like the image, (H, W, 3) uint8 RGB
  TIFF in the six ISPRS colours only;
* ``dsm/dsm_09cm_matching_area{N}.tif``: DSM, (H, W) float32, one-band TIFF.

Tiles 1 and 3 (train), 30 (val), 15 (test); 68 x 76 px (H != W on purpose: a transposed read
changes the shape). Every tile holds all six classes. Pixel (row 1, col 2) of every tile is a
marker: image (11, 22, 33), label car (255, 255, 0) = class 4, DSM 271.25.

The colour table is spelled out here on purpose (not imported from rstransfer), so a wrong
table in the package cannot agree with itself.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
ROOT = HERE / "vaihingen"
SEED = 20240607
H, W = 68, 76
TILES = (1, 3, 15, 30)
MARKER_PIXEL = (1, 2)
MARKER_IMAGE = (11, 22, 33)
MARKER_CLASS = 4  # car
MARKER_DSM = 271.25
# ISPRS: impervious, building, low vegetation, tree, car, clutter
COLOURS = np.array(
    [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)], dtype=np.uint8
)
BASE = np.array([(125, 128, 132), (175, 140, 135), (195, 115, 105), (140, 70, 60), (60, 60, 200), (90, 95, 115)])


def tile_arrays(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 HxWx3, class ids HxW, dsm float32 HxW) for tile ``n``."""
    rng = np.random.default_rng([SEED, n])
    # 4x4 px blocks of random classes, then one 2-row stripe per class so all six are present
    ids = np.repeat(np.repeat(rng.integers(0, 6, (H // 4 + 1, W // 4 + 1)), 4, 0), 4, 1)[:H, :W].astype(np.uint8)
    for k in range(6):
        ids[H - 12 + 2 * k : H - 10 + 2 * k, :] = k
    ids[MARKER_PIXEL] = MARKER_CLASS
    image = np.clip(BASE[ids] + rng.normal(0, 8, (H, W, 3)), 0, 255).astype(np.uint8)
    image[MARKER_PIXEL] = MARKER_IMAGE
    dsm = (260.0 + rng.uniform(0, 5, (H, W)) + np.where(np.isin(ids, (1, 3)), 8.0, 0.0)).astype(np.float32)
    dsm[MARKER_PIXEL] = MARKER_DSM
    return image, ids, dsm


def write(root: Path) -> list[Path]:
    files = []
    for n in TILES:
        image, ids, dsm = tile_arrays(n)
        for sub, name, data, photometric in (
            ("top", f"top_mosaic_09cm_area{n}.tif", image, "rgb"),
            ("gts", f"top_mosaic_09cm_area{n}.tif", COLOURS[ids], "rgb"),
            ("dsm", f"dsm_09cm_matching_area{n}.tif", dsm, "minisblack"),
        ):
            path = root / sub / name
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, data, photometric=photometric)
            files.append(path)
    return files


def checksums(root: Path, files: list[Path]) -> str:
    return "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root)}\n" for p in sorted(files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with a fresh generation, write nothing")
    args = parser.parse_args()
    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            fresh = checksums(Path(tmp), write(Path(tmp)))
        stored = (ROOT / "CHECKSUMS").read_text()
        raise SystemExit(0 if fresh == stored else "fixtures differ from a fresh generation")
    files = write(ROOT)
    (ROOT / "CHECKSUMS").write_text(checksums(ROOT, files))
    print(f"wrote {len(files)} files under {ROOT}")


if __name__ == "__main__":
    main()
