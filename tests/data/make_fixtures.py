#!/usr/bin/env python3
"""Write the small reader fixtures under tests/data/ in the exact layouts of the real files.

Run from anywhere: ``python tests/data/make_fixtures.py``. The outputs are committed, so tests
never regenerate them; rerun only when a layout changes, then commit the new files and CHECKSUMS.

What is real and what is made up:

* cubes are seeded random integers (never copied from the real scenes), in the real dtype and with
  the real band count. Pixel (row 1, col 2) of every cube holds a marker ramp, ``MARKER + band``, so a
  test can check one known pixel and catch an axis or ``order='F'`` slip;
* label maps are crops of the real ground-truth maps from ``../shared/data`` when that folder exists
  (the window with the most classes), otherwise a seeded synthetic map. The Urban abundances ``A``
  are the same crop of the real end4/5/6 abundances; the endmember spectra ``M`` are synthetic.

Layouts written (MAT v5 through :func:`scipy.io.savemat`, zlib-compressed like the originals):

* ``indian_pines/``  Indian_pines_corrected.mat ``indian_pines_corrected`` (20,24,200) uint16,
  Indian_pines_gt.mat ``indian_pines_gt`` (20,24) uint8;
* ``paviau/``  PaviaU.mat ``paviaU`` (20,24,103) uint16, PaviaU_gt.mat ``paviaU_gt`` uint8;
* ``salinas/``  Salinas_corrected.mat ``salinas_corrected`` (20,24,204) int16, Salinas_gt.mat;
* ``salinas_a/``  SalinasA_corrected.mat ``salinasA_corrected`` (20,24,204) int16, SalinasA_gt.mat
  with the Salinas ids {1,10,...,14};
* ``urban/``  Urban_F210.mat (``Y`` 210 x nRow*nCol double, column-major pixels, ``nRow`` = 14,
  ``nCol`` = 12, ``nBand``, ``SlectBands``, ``maxValue``), Urban_R162.mat (the 162 selected bands),
  end4/5/6_groundTruth.mat (``A`` k x pixels, ``M`` 162 x k, ``cood`` cell of names, ``nEnd``,
  ``nRow``, ``nCol``). nRow != nCol on purpose: a transposed reshape changes the shape.

MAT v7.3 variants (HDF5 written as MATLAB does: 512-byte header userblock, every array stored
with its axes reversed, ``MATLAB_class`` attributes, char arrays as uint16, cells as object
references into ``#refs#``): ``indian_pines_v73/`` and ``urban_v73/`` (Urban_F210.mat and
end4_groundTruth.mat), holding the same arrays as their v5 twins.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import scipy.io as sio

HERE = Path(__file__).resolve().parent
SEED = 20240521
H, W = 20, 24  # EHU-style crops
URBAN_ROWS, URBAN_COLS = 14, 12  # deliberately not square
MARKER = 1000  # cube[1, 2, b] = MARKER + b; random values stay below MARKER
MARKER_PIXEL = (1, 2)
# Bands dropped from the 210 HYDICE bands to get the usual 162 (water absorption, noise).
URBAN_DROPPED = [*range(1, 5), 76, 87, *range(101, 112), *range(136, 154), *range(198, 211)]
URBAN_NAMES = {
    4: ["1-Asphalt Road", "2-Grass", "3-Tree", "4-Roof"],
    5: ["1-Asphalt Road", "2-Grass", "3-Tree", "4-Roof", "5-Dirt"],
    6: ["1-Asphalt Road", "2-Grass", "3-Tree", "4-Roof", "5-Metal", "6-Dirt"],
}
FIXTURE_DIRS = ("indian_pines", "indian_pines_v73", "paviau", "salinas", "salinas_a", "urban", "urban_v73")
V5_HEADER = b"MATLAB 5.0 MAT-file, written by rstransfer tests/data/make_fixtures.py (test fixture)"
V73_HEADER = b"MATLAB 7.3 MAT-file, written by rstransfer tests/data/make_fixtures.py, HDF5 schema 1.00 ."


def shared_data() -> Path:
    """The read-only real data folder (``../shared/data`` next to the repository)."""
    env = os.environ.get("RSTRANSFER_SHARED_DATA")
    return Path(env) if env else HERE.parents[2] / "shared" / "data"


# ------------------------------------------------------------------------------------------
# writers
# ------------------------------------------------------------------------------------------


def save_v5(path: Path, variables: dict[str, object]) -> None:
    """MAT v5 via scipy, with a fixed header text so the bytes (and CHECKSUMS) are reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.savemat(str(path), variables, do_compression=True, oned_as="column")
    with open(path, "r+b") as fh:
        fh.write(V5_HEADER.ljust(116, b" "))  # scipy puts the current time here


_MATLAB_CLASS = {
    np.dtype("float64"): b"double",
    np.dtype("float32"): b"single",
    np.dtype("uint8"): b"uint8",
    np.dtype("uint16"): b"uint16",
    np.dtype("int16"): b"int16",
    np.dtype("int32"): b"int32",
}


def save_v73(path: Path, variables: dict[str, object]) -> None:
    """MAT v7.3 the way MATLAB writes it.

    Numeric arrays are stored transposed (HDF5 is row-major). A ``str`` becomes a 1 x n char
    array (uint16 code units); a ``list[str]`` becomes a k x 1 cell array of char arrays.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        refs = None
        for name, value in variables.items():
            if isinstance(value, list):
                refs = refs if refs is not None else f.create_group("#refs#")
                targets = []
                for i, text in enumerate(value):
                    ds = _char_dataset(refs, f"s{i}", text)
                    targets.append(ds.ref)
                # MATLAB (k, 1) cell -> HDF5 (1, k) of references.
                cell = f.create_dataset(name, data=np.array([targets], dtype=h5py.ref_dtype), track_times=False)
                cell.attrs["MATLAB_class"] = np.bytes_(b"cell")
            elif isinstance(value, str):
                _char_dataset(f, name, value)
            else:
                arr = np.asarray(value)
                arr = arr.reshape(1, 1) if arr.ndim == 0 else arr
                big = arr.size > 1000
                ds = f.create_dataset(
                    name,
                    data=np.ascontiguousarray(arr.T),
                    compression="gzip" if big else None,
                    chunks=True if big else None,
                    track_times=False,
                )
                ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[arr.dtype])
    header = V73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as fh:
        fh.write(header.ljust(512, b"\x00"))


def _char_dataset(group: h5py.Group, name: str, text: str) -> h5py.Dataset:
    codes = np.array([[ord(c)] for c in text], dtype=np.uint16)  # MATLAB 1 x n -> HDF5 n x 1
    ds = group.create_dataset(name, data=codes, track_times=False)
    ds.attrs["MATLAB_class"] = np.bytes_(b"char")
    ds.attrs["MATLAB_int_decode"] = np.int32(2)
    return ds


# ------------------------------------------------------------------------------------------
# content
# ------------------------------------------------------------------------------------------


def marked_cube(rng: np.random.Generator, shape: tuple[int, int, int], dtype: str, low: int) -> np.ndarray:
    """Seeded random cube in ``[low, MARKER)`` with the marker ramp at ``MARKER_PIXEL``."""
    cube = rng.integers(low, MARKER, size=shape).astype(dtype)
    cube[MARKER_PIXEL] = (MARKER + np.arange(shape[2])).astype(dtype)
    return cube


def best_window(class_map: np.ndarray, h: int, w: int, stride: int) -> tuple[int, int]:
    """Top-left corner of the h x w window with the most distinct classes (first one on ties)."""
    best, corner = -1, (0, 0)
    for r in range(0, class_map.shape[0] - h + 1, stride):
        for c in range(0, class_map.shape[1] - w + 1, stride):
            n = np.unique(class_map[r : r + h, c : c + w]).size
            if n > best:
                best, corner = n, (r, c)
    return corner


def gt_crop(
    rng: np.random.Generator, folder: str, file: str, var: str, ids: list[int], stride: int
) -> tuple[np.ndarray, str]:
    """Crop of the real GT map when available, else a seeded blocky map over ``ids``."""
    real = shared_data() / folder / file
    if real.is_file():
        gt = sio.loadmat(str(real))[var]
        r, c = best_window(gt, H, W, stride)
        return gt[r : r + H, c : c + W].astype(np.uint8), f"crop [{r}:{r + H}, {c}:{c + W}] of the real {file}"
    blocks = rng.choice([0, *ids], size=(H // 4 + 1, W // 4 + 1))
    return np.kron(blocks, np.ones((4, 4), int))[:H, :W].astype(np.uint8), "seeded synthetic map"


def urban_truth(rng: np.random.Generator) -> tuple[dict[int, np.ndarray], str]:
    """Abundances (k, nRow*nCol) for k = 4, 5, 6, column-major, cropped from the real files."""
    folder = shared_data() / "urban"
    n_px = URBAN_ROWS * URBAN_COLS
    if all((folder / f"end{k}_groundTruth.mat").is_file() for k in URBAN_NAMES):
        mats = {k: sio.loadmat(str(folder / f"end{k}_groundTruth.mat")) for k in URBAN_NAMES}
        n_row, n_col = int(mats[4]["nRow"][0, 0]), int(mats[4]["nCol"][0, 0])
        maps = {k: m["A"].reshape(k, n_row, n_col, order="F") for k, m in mats.items()}
        r, c = best_window(maps[4].argmax(0), URBAN_ROWS, URBAN_COLS, stride=5)
        out = {
            k: a[:, r : r + URBAN_ROWS, c : c + URBAN_COLS].reshape(k, n_px, order="F") for k, a in maps.items()
        }
        return out, f"crop [{r}:{r + URBAN_ROWS}, {c}:{c + URBAN_COLS}] of the real end4/5/6 abundances"
    out = {k: rng.dirichlet(np.full(k, 0.3), size=n_px).T for k in URBAN_NAMES}
    return out, "seeded Dirichlet abundances"


def build(out: Path) -> list[str]:
    """Write every fixture under ``out``; return one provenance line per scene."""
    rng = np.random.default_rng(SEED)
    log: list[str] = []

    ehu: list[tuple[str, str, str, str, str, int, str, int, list[int], int]] = [
        # folder, cube file, cube var, gt file, gt var, bands, dtype, low, ids, search stride
        ("indian_pines", "Indian_pines_corrected.mat", "indian_pines_corrected", "Indian_pines_gt.mat",
         "indian_pines_gt", 200, "uint16", 0, list(range(1, 17)), 1),
        ("paviau", "PaviaU.mat", "paviaU", "PaviaU_gt.mat", "paviaU_gt", 103, "uint16", 0, list(range(1, 10)), 4),
        ("salinas", "Salinas_corrected.mat", "salinas_corrected", "Salinas_gt.mat", "salinas_gt", 204, "int16",
         -9, list(range(1, 17)), 4),
        ("salinas_a", "SalinasA_corrected.mat", "salinasA_corrected", "SalinasA_gt.mat", "salinasA_gt", 204,
         "int16", -9, [1, 10, 11, 12, 13, 14], 1),
    ]
    for folder, cube_file, cube_var, gt_file, gt_var, bands, dtype, low, ids, stride in ehu:
        cube = marked_cube(rng, (H, W, bands), dtype, low)
        gt, how = gt_crop(rng, folder, gt_file, gt_var, ids, stride)
        save_v5(out / folder / cube_file, {cube_var: cube})
        save_v5(out / folder / gt_file, {gt_var: gt})
        if folder == "indian_pines":
            save_v73(out / f"{folder}_v73" / cube_file, {cube_var: cube})
            save_v73(out / f"{folder}_v73" / gt_file, {gt_var: gt})
        log.append(f"{folder}: cube {cube.shape} {dtype} seeded; labels: {how}")

    # Urban: cube stored as Y (bands x pixels), pixels in MATLAB column-major order.
    cube = marked_cube(rng, (URBAN_ROWS, URBAN_COLS, 210), "float64", 0)
    Y = cube.reshape(URBAN_ROWS * URBAN_COLS, 210, order="F").T
    select = np.array([b for b in range(1, 211) if b not in URBAN_DROPPED], dtype=np.float64)
    assert select.size == 162
    common = {"nRow": np.float64(URBAN_ROWS), "nCol": np.float64(URBAN_COLS), "maxValue": np.float64(MARKER + 209)}
    f210 = {"Y": Y, "SlectBands": select.reshape(-1, 1), "nBand": np.float64(210), **common}
    r162 = {"Y": Y[select.astype(int) - 1], "SlectBands": select.reshape(-1, 1), "nBand": np.float64(162), **common}
    save_v5(out / "urban" / "Urban_F210.mat", f210)
    save_v5(out / "urban" / "Urban_R162.mat", r162)
    save_v73(out / "urban_v73" / "Urban_F210.mat", f210)

    abundances, how = urban_truth(rng)
    for k, A in abundances.items():
        names = URBAN_NAMES[k]
        M = np.round(rng.uniform(0.01, 0.6, size=(162, k)), 3)  # synthetic spectra, real magnitude
        gt = {
            "cood": np.array([[n] for n in names], dtype=object),
            "A": A,
            "M": M,
            "nEnd": np.uint8(k),
            "nRow": np.uint16(URBAN_ROWS),
            "nCol": np.uint16(URBAN_COLS),
        }
        save_v5(out / "urban" / f"end{k}_groundTruth.mat", gt)
        if k == 4:
            save_v73(out / "urban_v73" / "end4_groundTruth.mat", {**gt, "cood": names})
    log.append(f"urban: Y (210, {URBAN_ROWS}*{URBAN_COLS}) seeded; abundances: {how}; M synthetic")
    return log


def write_checksums(out: Path) -> None:
    """sha256 of every fixture, in ``sha256sum`` format, paths relative to ``out``."""
    lines = []
    for path in sorted(p for d in FIXTURE_DIRS for p in (out / d).glob("*.mat")):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(out).as_posix()}")
    (out / "CHECKSUMS").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None, echo: Callable[[str], None] = print) -> None:
    """Write the fixtures and CHECKSUMS (default: next to this script)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: tests/data)")
    args = parser.parse_args(argv)
    for line in build(args.out):
        echo(line)
    write_checksums(args.out)
    total = sum(p.stat().st_size for d in FIXTURE_DIRS for p in (args.out / d).glob("*.mat"))
    echo(f"wrote {args.out / 'CHECKSUMS'}; {total / 1e6:.2f} MB of fixtures")


if __name__ == "__main__":
    main()
