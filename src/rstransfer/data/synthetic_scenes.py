"""The embedded demo default for scene classification: a generated UC-Merced-like set, written
in the exact UC Merced layout so :func:`rstransfer.data.ucmerced.load_ucmerced` reads it::

    <root>/Images/<class>/<class>NN.tif     the 21 UC Merced class names, RGB uint8 TIFFs
    <root>/LandUse_Multilabeled.txt         header IMAGE\\LABEL + the 17 labels, tabs, CRLF

Each scene class draws its labels from a fixed table of per-class label probabilities (rounded
from the real UC Merced multi-labels), so the co-occurrence structure (dock with ship, sand with
sea, cars on pavement...) resembles the real one. Labels are visible: every *area* label
(field, grass, water, ...) owns a region with its own colour and texture (regions come from
smooth random fields, as in the synthetic hyperspectral scenes), every *object* label
(airplane, cars, tanks, ...) is drawn as shapes with its own colour on top. Random brightness,
noise and object positions keep the task from being trivial. Fully deterministic: the same
arguments give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from .ucmerced import CLASS_NAMES, LABEL_NAMES, write_multilabels

SEED = 20230716

#: P(label | class), rounded from the real multi-labels (labels not named: 0)
CLASS_LABELS: dict[str, dict[str, float]] = {
    "agricultural": {"field": 1.0, "trees": 0.1},
    "airplane": {"airplane": 1.0, "buildings": 0.3, "cars": 0.6, "grass": 0.1, "pavement": 1.0},
    "baseballdiamond": {"bare-soil": 1.0, "buildings": 0.5, "grass": 0.9, "pavement": 0.4, "trees": 0.5},
    "beach": {"sand": 1.0, "sea": 1.0},
    "buildings": {"buildings": 1.0, "cars": 0.4, "grass": 0.2, "pavement": 0.7, "trees": 0.5},
    "chaparral": {"bare-soil": 1.0, "chaparral": 0.9},
    "denseresidential": {"bare-soil": 0.3, "buildings": 1.0, "cars": 0.7, "grass": 0.5, "pavement": 0.9, "trees": 0.8},
    "forest": {"trees": 1.0},
    "freeway": {"bare-soil": 0.5, "cars": 0.9, "grass": 0.6, "pavement": 1.0, "trees": 0.5},
    "golfcourse": {"bare-soil": 0.5, "grass": 1.0, "pavement": 0.7, "sand": 0.7, "trees": 0.7},
    "harbor": {"dock": 1.0, "ship": 1.0, "water": 1.0},
    "intersection": {"bare-soil": 0.5, "buildings": 0.7, "cars": 1.0, "grass": 0.7, "pavement": 1.0, "trees": 0.8},
    "mediumresidential": {"bare-soil": 0.4, "buildings": 1.0, "cars": 0.9, "grass": 0.9, "pavement": 0.7, "trees": 0.9},
    "mobilehomepark": {"bare-soil": 0.3, "cars": 0.9, "grass": 0.5, "mobile-home": 1.0, "pavement": 1.0, "trees": 0.9},
    "overpass": {"bare-soil": 0.4, "cars": 0.9, "grass": 0.8, "pavement": 1.0, "trees": 0.2},
    "parkinglot": {"bare-soil": 0.1, "buildings": 0.1, "cars": 1.0, "grass": 0.2, "pavement": 1.0, "trees": 0.4},
    "river": {"bare-soil": 0.5, "grass": 0.6, "sand": 0.4, "trees": 0.8, "water": 1.0},
    "runway": {"grass": 0.5, "pavement": 1.0, "sand": 0.3},
    "sparseresidential": {"bare-soil": 0.5, "buildings": 1.0, "cars": 0.4, "grass": 0.8, "pavement": 0.9, "trees": 0.8},
    "storagetanks": {"bare-soil": 0.6, "buildings": 0.6, "cars": 0.3, "grass": 0.4, "pavement": 0.9, "tanks": 1.0},
    "tenniscourt": {"bare-soil": 0.4, "buildings": 0.6, "cars": 0.5, "court": 1.0, "grass": 0.9, "trees": 0.9},
}

#: area labels: (RGB colour 0..1, texture); texture draws a (size, size) modulation in [-1, 1]
AREAS: dict[str, tuple[tuple[float, float, float], str]] = {
    "sea": ((0.05, 0.2, 0.5), "waves"),
    "water": ((0.15, 0.35, 0.35), "smooth"),
    "field": ((0.55, 0.65, 0.2), "stripes"),
    "sand": ((0.9, 0.82, 0.6), "grain"),
    "bare-soil": ((0.6, 0.42, 0.28), "grain"),
    "chaparral": ((0.45, 0.45, 0.25), "speckle"),
    "grass": ((0.4, 0.7, 0.3), "smooth"),
    "trees": ((0.1, 0.3, 0.1), "blobs"),
    "pavement": ((0.5, 0.5, 0.52), "smooth"),
}
#: object labels: RGB colour of their shapes (drawn in this order, last on top)
OBJECTS: dict[str, tuple[float, float, float]] = {
    "court": (0.2, 0.55, 0.45),
    "dock": (0.45, 0.3, 0.15),
    "buildings": (0.75, 0.3, 0.25),
    "mobile-home": (0.95, 0.95, 0.9),
    "tanks": (0.85, 0.85, 0.85),
    "ship": (1.0, 1.0, 1.0),
    "airplane": (0.92, 0.92, 0.98),
    "cars": (0.9, 0.1, 0.1),
}


def _texture(kind: str, rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n] / scale
    if kind == "waves":
        return np.sin(2 * np.pi * (yy / 6 + 0.2 * np.sin(xx / 5)) + rng.uniform(0, 6))
    if kind == "stripes":
        angle = rng.choice([0.0, np.pi / 2, np.pi / 4])
        return np.sign(np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / 6 + rng.uniform(0, 6)))
    if kind == "grain":
        return rng.uniform(-1, 1, (n, n))
    if kind == "speckle":
        return np.where(rng.random((n, n)) < 0.25, -1.0, 0.3)
    if kind == "blobs":
        return np.clip(gaussian_filter(rng.normal(size=(n, n)), 1.2 * scale) * 6, -1, 1)
    return np.zeros((n, n))


def _rect(img: np.ndarray, y: int, x: int, h: int, w: int, colour: tuple[float, ...]) -> None:
    img[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)] = colour


def _disc(img: np.ndarray, cy: float, cx: float, r: float, colour: tuple[float, ...]) -> None:
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = colour


def _draw_object(img: np.ndarray, label: str, rng: np.random.Generator, s: float) -> None:
    n = img.shape[0]
    colour = OBJECTS[label]

    def pos(margin: float) -> tuple[int, int]:
        m = int(margin * s)
        return int(rng.integers(0, max(n - m, 1))), int(rng.integers(0, max(n - m, 1)))

    if label == "cars":
        for _ in range(int(rng.integers(4, 9))):
            y, x = pos(4)
            _rect(img, y, x, max(int(2 * s), 1), max(int(3 * s), 2), colour)
    elif label == "buildings":
        for _ in range(int(rng.integers(2, 5))):
            y, x = pos(12)
            h, w = int(rng.integers(7, 12) * s), int(rng.integers(7, 12) * s)
            _rect(img, y, x, h, w, colour)
            _rect(img, y + h // 2, x, max(int(s), 1), w, (0.5, 0.2, 0.15))  # roof ridge
    elif label == "mobile-home":
        y0, x0 = pos(30)
        for row in range(3):
            for col in range(4):
                _rect(img, y0 + int(row * 9 * s), x0 + int(col * 7 * s), int(3 * s), int(5 * s), colour)
    elif label == "tanks":
        for _ in range(int(rng.integers(2, 4))):
            y, x = pos(14)
            r = rng.uniform(4, 6) * s
            _disc(img, y + r, x + r, r, (0.3, 0.3, 0.3))
            _disc(img, y + r, x + r, r - max(s, 1), colour)
    elif label == "court":
        y, x = pos(24)
        h, w = int(22 * s), int(14 * s)
        _rect(img, y, x, h, w, colour)
        _rect(img, y + h // 2, x, max(int(s), 1), w, (1, 1, 1))
        _rect(img, y, x + w // 2, h, max(int(s), 1), (1, 1, 1))
    elif label == "dock":
        y, x = pos(40)
        _rect(img, y, x, int(40 * s), max(int(3 * s), 2), colour)
        for k in range(4):
            _rect(img, y + int(k * 10 * s), x, max(int(2 * s), 1), int(16 * s), colour)
    elif label == "ship":
        for _ in range(int(rng.integers(1, 4))):
            y, x = pos(14)
            _rect(img, y, x, int(4 * s), int(12 * s), colour)
    elif label == "airplane":
        y, x = pos(24)
        _rect(img, y, x + int(10 * s), int(24 * s), int(4 * s), colour)  # fuselage
        _rect(img, y + int(8 * s), x, int(4 * s), int(24 * s), colour)  # wings
        _rect(img, y + int(20 * s), x + int(6 * s), int(2 * s), int(12 * s), colour)  # tail


def render(labels: set[str], rng: np.random.Generator, size: int) -> np.ndarray:
    """One RGB uint8 scene (size, size, 3) showing exactly ``labels``."""
    s = size / 64.0
    areas = [a for a in AREAS if a in labels] or ["pavement"]
    fields = np.stack([gaussian_filter(rng.normal(size=(size, size)), 6 * s) for _ in areas])
    fields = (fields - fields.mean(axis=(1, 2), keepdims=True)) / fields.std(axis=(1, 2), keepdims=True)
    fields[0] += 0.3  # the first area (in AREAS order) gets the largest share; every area stays visible
    owner = fields.argmax(axis=0)
    img = np.zeros((size, size, 3))
    for k, area in enumerate(areas):
        colour, kind = AREAS[area]
        tex = _texture(kind, rng, size, s)
        shade = np.asarray(colour)[None, None] * (1 + 0.25 * tex[..., None])
        img[owner == k] = shade[owner == k]
    for obj in OBJECTS:
        if obj in labels:
            _draw_object(img, obj, rng, s)
    img *= rng.uniform(0.85, 1.15)  # illumination
    img += rng.normal(0, 0.03, img.shape)  # sensor noise
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def sample_labels(cls: str, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 row over LABEL_NAMES for one scene of class ``cls`` (never empty)."""
    probs = CLASS_LABELS[cls]
    row = np.array([rng.random() < probs.get(name, 0.0) for name in LABEL_NAMES], dtype=np.uint8)
    if not row.any():
        row[LABEL_NAMES.index(max(probs, key=probs.get))] = 1
    return row


def write_synthetic_ucmerced(
    root: str | Path, per_class: int = 10, size: int = 64, seed: int = SEED, classes: tuple[str, ...] = CLASS_NAMES
) -> tuple[Path, Path]:
    """Write the generated set under ``root``; return ``(images_dir, labels_txt)``.

    Byte-identical for the same arguments (per-image seeds; TIFFs without date metadata).
    """
    import tifffile

    root = Path(root)
    images_dir, labels_txt = root / "Images", root / "LandUse_Multilabeled.txt"
    rows: dict[str, np.ndarray] = {}
    for ci, cls in enumerate(classes):
        (images_dir / cls).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            rng = np.random.default_rng([seed, CLASS_NAMES.index(cls) if cls in CLASS_NAMES else 1000 + ci, k])
            row = sample_labels(cls, rng)
            image = render({LABEL_NAMES[i] for i in np.flatnonzero(row)}, rng, size)
            name = f"{cls}{k:02d}"
            tifffile.imwrite(images_dir / cls / f"{name}.tif", image, photometric="rgb", metadata=None)
            rows[name] = row
    write_multilabels(labels_txt, LABEL_NAMES, rows)
    return images_dir, labels_txt
