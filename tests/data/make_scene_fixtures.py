#!/usr/bin/env python3
"""Write ONE small scene in every layout and format the generic readers take: tests/data/scene_formats/.

Run from anywhere: ``python tests/data/make_scene_fixtures.py``. The outputs are committed (with
``scene_formats/CHECKSUMS``); tests never regenerate them. The file and variable names are made up
on purpose (no reader knows them): only a declaration can read them.

The scene: 10 rows x 7 columns (not square, so a transposed reshape changes the shape), 16 bands of
seeded int16 values below 1000, with the marker ramp ``1000 + band`` at pixel (row 1, col 2). Labels:
3 classes in a pattern that depends on row and column, 0 = unlabelled. Abundances: 0.7 for the
pixel's class and 0.15 for the others; unlabelled pixels top out at 0.4, so ``purity: 0.5`` gives
back exactly the label map.

Files (each holds the same scene):

* ``campaign_refl.mat`` (v5): ``refl`` bands x pixels, MATLAB column-major, ``nR``/``nC``, a stale
  ``nb`` = 224 (the count before band removal) and ``lambda_nm``; ``campaign_truth.mat``: ``frac``
  (3 x pixels abundances) and ``mats`` (cell of names "1-Soil", ...). ``campaign_v73.mat``: both in
  one MAT v7.3 file.
* ``scene_rcb.mat``: ``cube`` (H, W, B) + ``gt`` (H, W); ``scene_brc.mat``: ``data`` (B, H, W) + ``gt_rows``
  (1 x pixels, row-major pixel vector).
* ``pixels_bands.npy`` (H*W, B) row-major + ``labels.npy`` (H, W); ``stack.npz``: ``X`` (2, B, H, W)
  (frame 1 is the scene) + ``y`` (H, W, 1) with the classes stored as 0, 1, 2 and 255 = unlabelled,
  + ``names``.
* ENVI: ``scene_bsq.hdr/.img`` (int16, little-endian), ``scene_bil.hdr`` + ``scene_bil`` (int16,
  big-endian), ``scene_bip.hdr/.dat`` (float32, 32-byte header offset, wavelengths in micrometers),
  ``classes.hdr/.img`` (ENVI Classification, uint8, class names with "Unclassified" first).
* TIFF: ``contig.tif`` (H, W, B, pixel-interleaved, deflate), ``planar.tif`` (B, H, W, planar),
  ``gt.tif`` (H, W) uint8.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_fixtures import save_v5, save_v73  # noqa: E402  (same folder)

OUT = HERE / "scene_formats"
SEED = 20261129
H, W, B = 10, 7, 16
NAMES = ["Soil", "Vegetation", "Water"]
MARKER = 1000


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cube int16 (H, W, B), labels uint8 (H, W), abundances float64 (3, H, W))."""
    rng = np.random.default_rng(SEED)
    cube = rng.integers(0, MARKER, size=(H, W, B)).astype(np.int16)
    cube[1, 2] = MARKER + np.arange(B)
    r, c = np.mgrid[0:H, 0:W]
    labels = (1 + (r // 3 + 2 * (c // 3)) % 3).astype(np.uint8)
    labels[(c == 6) & (r % 2 == 0)] = 0
    labels[9, 0] = 0
    abund = np.full((3, H, W), 0.15)
    for k in range(3):
        abund[k][labels == k + 1] = 0.7
    unl = labels == 0
    abund[:, unl] = np.array([[0.4], [0.3], [0.3]])
    return cube, labels, abund


def header(samples: int, lines: int, bands: int, dtype: int, interleave: str, **extra: str) -> str:
    fields = {
        "description": "{rstransfer test fixture}",
        "samples": samples,
        "lines": lines,
        "bands": bands,
        "header offset": 0,
        "file type": "ENVI Standard",
        "data type": dtype,
        "interleave": interleave,
        "byte order": 0,
        **extra,
    }
    return "ENVI\n" + "".join(f"{k} = {v}\n" for k, v in fields.items())


def build(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cube, labels, abund = scene()
    refl = cube.reshape(H * W, B, order="F").T.astype(np.float64)  # MATLAB: Y(b, r + c*H)
    frac = abund.reshape(3, H * W, order="F")
    wl = np.linspace(400.0, 2500.0, B)
    save_v5(
        out / "campaign_refl.mat",
        {"refl": refl, "nR": np.float64(H), "nC": np.float64(W), "nb": np.float64(224), "lambda_nm": wl.reshape(-1, 1)},
    )
    save_v5(
        out / "campaign_truth.mat",
        {"frac": frac, "mats": np.array([[f"{i}-{n}"] for i, n in enumerate(NAMES, 1)], dtype=object)},
    )
    save_v73(
        out / "campaign_v73.mat",
        {
            "refl": refl,
            "frac": frac,
            "nR": np.float64(H),
            "nC": np.float64(W),
            "mats": [f"{i}-{n}" for i, n in enumerate(NAMES, 1)],
        },
    )
    save_v5(out / "scene_rcb.mat", {"cube": cube, "gt": labels})
    save_v5(
        out / "scene_brc.mat",
        {"data": np.ascontiguousarray(np.moveaxis(cube, 2, 0)), "gt_rows": labels.reshape(1, H * W)},
    )
    np.save(out / "pixels_bands.npy", cube.reshape(H * W, B))
    np.save(out / "labels.npy", labels.astype(np.int16))
    noise = np.random.default_rng(SEED + 1).uniform(0, 1, (B, H, W)).astype(np.float32)
    stored = np.where(labels == 0, 255, labels - 1).astype(np.uint8)[:, :, None]
    np.savez(
        out / "stack.npz",
        X=np.stack([noise, np.moveaxis(cube, 2, 0).astype(np.float32)]),
        y=stored,
        names=np.array(NAMES),
    )

    bsq = np.ascontiguousarray(np.moveaxis(cube, 2, 0)).astype("<i2")
    (out / "scene_bsq.img").write_bytes(bsq.tobytes())
    (out / "scene_bsq.hdr").write_text(
        header(W, H, B, 2, "bsq", wavelength="{" + ", ".join(f"{v:.1f}" for v in wl) + "}")
    )
    bil = np.ascontiguousarray(np.transpose(cube, (0, 2, 1))).astype(">i2")
    (out / "scene_bil").write_bytes(bil.tobytes())
    (out / "scene_bil.hdr").write_text(header(W, H, B, 2, "bil").replace("byte order = 0", "byte order = 1"))
    bip = cube.astype("<f4")
    (out / "scene_bip.dat").write_bytes(b"\x00" * 32 + bip.tobytes())
    wl_um = "{\n " + ",\n ".join(f"{v / 1000:.4f}" for v in wl) + "}"
    text = header(W, H, B, 4, "bip", **{"wavelength units": "Micrometers", "wavelength": wl_um})
    (out / "scene_bip.hdr").write_text(text.replace("header offset = 0", "header offset = 32"))
    (out / "classes.img").write_bytes(labels.astype("u1").tobytes())
    (out / "classes.hdr").write_text(
        header(W, H, 1, 1, "bsq", classes="4", **{"class names": "{Unclassified, " + ", ".join(NAMES) + "}"}).replace(
            "ENVI Standard", "ENVI Classification"
        )
    )

    tifffile.imwrite(
        out / "contig.tif", cube, photometric="minisblack", planarconfig="contig", compression="zlib", metadata=None
    )
    tifffile.imwrite(
        out / "planar.tif", np.moveaxis(cube, 2, 0), photometric="minisblack", planarconfig="separate", metadata=None
    )
    tifffile.imwrite(out / "gt.tif", labels, photometric="minisblack", metadata=None)

    files = sorted(p for p in out.iterdir() if p.name != "CHECKSUMS")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in files]
    (out / "CHECKSUMS").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(files)} files, {sum(p.stat().st_size for p in files) / 1e3:.1f} kB, to {out}")


if __name__ == "__main__":
    build(OUT)
