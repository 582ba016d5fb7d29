"""The embedded default: two synthetic hyperspectral scenes, generated deterministically.

Both scenes draw from one continuous spectral library (reflectance as a function of
wavelength), sampled on two different sensor grids, so that:

* ``synthetic_source``: 8 classes, 100 bands over 400-2500 nm, 128x128 px;
* ``synthetic_target``: 4 classes, 80 bands over 430-2430 nm, 96x96 px. Target classes 1 and 2
  are source classes 1 and 2 (same spectra, other sensor); classes 3 and 4 are new.

Regions are spatially coherent: each class owns a smooth random field and a pixel belongs to
the class whose field is highest. Spectra are mixed by a softmax over the fields, so borders
are mixed pixels (left unlabelled, as in real ground truth). A smooth illumination field,
within-class variants and sensor noise keep the task from being trivial.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from .scene import Scene

LIBRARY_SEED = 20261120
N_LIBRARY = 12  # spectra in the library; source uses 0..7, target uses 0, 1, 8, 9

SOURCE_CLASSES = ("Asphalt", "Meadow", "Bare soil", "Water", "Roof tiles", "Forest", "Corn", "Gravel")
TARGET_CLASSES = ("Asphalt", "Meadow", "Wheat", "Metal roof")
TARGET_LIBRARY_IDS = (0, 1, 8, 9)


def _library(wavelengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two variants (e.g. wet/dry) of each library spectrum at ``wavelengths`` (nm)."""
    rng = np.random.default_rng(LIBRARY_SEED)
    lam = (wavelengths[None, :] - 400.0) / 2100.0  # 0..1
    # one shared shape (materials in a scene look alike) plus small class-specific features
    shared = 0.25 + 0.1 * np.sin(2.5 * np.pi * lam) * np.exp(-lam)
    spectra = []
    for _ in range(2):
        base = shared + rng.uniform(-0.05, 0.05, (N_LIBRARY, 1)) + rng.uniform(-0.06, 0.06, (N_LIBRARY, 1)) * lam
        for _ in range(4):  # absorption/reflection features
            centre = rng.uniform(0.0, 1.0, (N_LIBRARY, 1))
            width = rng.uniform(0.02, 0.12, (N_LIBRARY, 1))
            depth = rng.uniform(-0.04, 0.04, (N_LIBRARY, 1))
            base = base + depth * np.exp(-0.5 * ((lam - centre) / width) ** 2)
        spectra.append(np.clip(base, 0.01, 0.95))
    return spectra[0], 0.6 * spectra[0] + 0.4 * spectra[1]


def _scene(
    name: str,
    library_ids: tuple[int, ...],
    class_names: tuple[str, ...],
    wavelengths: np.ndarray,
    shape: tuple[int, int],
    seed: int,
    smoothness: float,
    noise: float,
) -> Scene:
    rng = np.random.default_rng(seed)
    h, w = shape
    k = len(library_ids)
    fields = np.stack(
        [gaussian_filter(rng.standard_normal((h, w)), smoothness, mode="wrap") for _ in range(k)]
    )
    fields /= fields.std(axis=(1, 2), keepdims=True)
    abundance = np.exp(4.0 * fields)
    abundance /= abundance.sum(axis=0, keepdims=True)

    v1, v2 = _library(wavelengths)
    variant = gaussian_filter(rng.uniform(0, 1, (h, w)), smoothness / 2, mode="wrap")
    variant = (variant - variant.min()) / (np.ptp(variant) + 1e-9)
    class_spectra = (
        v1[list(library_ids)][:, None, None, :] * (1 - variant[None, :, :, None])
        + v2[list(library_ids)][:, None, None, :] * variant[None, :, :, None]
    )  # (k, h, w, bands)
    cube = np.einsum("khw,khwb->hwb", abundance, class_spectra)
    illumination = 1.0 + 0.15 * gaussian_filter(rng.standard_normal((h, w)), 2 * smoothness, mode="wrap")
    cube = cube * illumination[:, :, None] + noise * rng.standard_normal(cube.shape)
    cube = (10000.0 * cube).astype(np.float32)  # reflectance x 10^4, like AVIRIS products

    labels = abundance.argmax(axis=0).astype(np.int32) + 1
    labels[abundance.max(axis=0) < 0.7] = 0  # mixed border pixels stay unlabelled
    return Scene(
        name=name,
        cube=cube,
        labels=labels,
        class_names=class_names,
        wavelengths=wavelengths.astype(np.float32),
        notes={"generator": "rstransfer.data.synthetic", "seed": str(seed)},
    )


def synthetic_source(root: Path | None = None, *, seed: int = 1, size: int = 128) -> Scene:
    """Synthetic source scene: 8 classes, 100 bands (400-2500 nm). ``root`` is unused."""
    return _scene(
        "synthetic_source",
        tuple(range(len(SOURCE_CLASSES))),
        SOURCE_CLASSES,
        np.linspace(400.0, 2500.0, 100),
        (size, size),
        seed,
        smoothness=7.0,
        noise=0.04,
    )


def synthetic_target(root: Path | None = None, *, seed: int = 2, size: int = 96) -> Scene:
    """Synthetic target scene: 4 classes (2 shared with the source), 80 bands (430-2430 nm)."""
    return _scene(
        "synthetic_target",
        TARGET_LIBRARY_IDS,
        TARGET_CLASSES,
        np.linspace(430.0, 2430.0, 80),
        (size, size),
        seed,
        smoothness=6.0,
        noise=0.06,
    )
