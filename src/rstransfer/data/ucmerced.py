"""UC Merced Land Use (Yang & Newsam 2010) with the 17 multi-labels of Chaudhuri et al. (2018).

Layout (the original archive, ``UCMerced_LandUse.zip``)::

    <image_dir>/<class>/<class>NN.tif      21 class folders x 100 RGB uint8 TIFFs (0.3 m)
    <labels_txt>                           LandUse_Multilabeled.txt (optional)

* **Single label** = the folder name (21 classes, sorted alphabetically -> ``class_ids``).
* **Multi-labels** are read from ``LandUse_Multilabeled.txt`` (tab-separated, CRLF, header
  ``IMAGE\\LABEL`` + 17 label names, one 0/1 row per image). We use the ``.txt``, not
  ``LandUse_multilabels.mat``: the two differ in one cell (``tenniscourt97``/``field``: 0 in the
  ``.txt``, 1 in the ``.mat``), and the ``.txt`` names every row, so a row can never be matched to
  the wrong image. Every loaded image must have a row (extra rows are ignored).
* **Size.** 44 of the 2100 images are not 256x256 (e.g. 247x256, 257x257). Every image is
  centre-cropped to its largest square, then resized to ``size`` x ``size`` with PIL's bilinear
  filter (antialiased when shrinking); a square image of side ``size`` is returned unchanged.
  Images are read with tifffile (the files carry ~13 KB of Photoshop/XMP metadata before the
  pixels; never compute offsets by hand).

Errors are one line naming the file: a missing folder/file (DatasetNotFoundError), an unreadable or
non-RGB TIFF, a file name that does not match its folder, a missing label row, a malformed label
file (DataFormatError), an unknown class name in ``classes`` (ConfigError).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError

LABELS_FILE = "LandUse_Multilabeled.txt"
HEADER_FIRST = "IMAGE\\LABEL"
#: the 17 labels of Chaudhuri et al., in the file's column order
LABEL_NAMES = (
    "airplane",
    "bare-soil",
    "buildings",
    "cars",
    "chaparral",
    "court",
    "dock",
    "field",
    "grass",
    "mobile-home",
    "pavement",
    "sand",
    "sea",
    "ship",
    "tanks",
    "trees",
    "water",
)
#: the 21 scene classes (folder names)
CLASS_NAMES = (
    "agricultural",
    "airplane",
    "baseballdiamond",
    "beach",
    "buildings",
    "chaparral",
    "denseresidential",
    "forest",
    "freeway",
    "golfcourse",
    "harbor",
    "intersection",
    "mediumresidential",
    "mobilehomepark",
    "overpass",
    "parkinglot",
    "river",
    "runway",
    "sparseresidential",
    "storagetanks",
    "tenniscourt",
)


@dataclass(frozen=True)
class SceneSet:
    """A stack of equally sized RGB scenes with single labels and (optionally) multi-labels."""

    images: np.ndarray  # (N, size, size, 3) uint8
    names: tuple[str, ...]  # file stems, e.g. "airplane07"
    classes: tuple[str, ...]  # folder classes (sorted), index = class id
    class_ids: np.ndarray  # (N,) int64 into ``classes``
    multilabels: np.ndarray | None  # (N, L) uint8 0/1, or None without a label file
    label_names: tuple[str, ...]  # the L label names ("" tuple without a label file)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: Sequence[int] | np.ndarray) -> SceneSet:
        """The scenes at ``index`` (same classes and label names)."""
        idx = np.asarray(index, dtype=np.int64)
        return SceneSet(
            self.images[idx],
            tuple(self.names[i] for i in idx),
            self.classes,
            self.class_ids[idx],
            None if self.multilabels is None else self.multilabels[idx],
            self.label_names,
        )


def read_multilabels(path: str | Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """``(label_names, {image name: 0/1 uint8 row})`` from a ``LandUse_Multilabeled.txt``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: multi-label file not found (expected {LABELS_FILE})")
    try:
        lines = [ln.rstrip("\r\n") for ln in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: unreadable label file ({exc})") from None
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise DataFormatError(f"{path}: empty label file")
    header = lines[0].split("\t")
    if header[0].strip() != HEADER_FIRST or len(header) < 2:
        raise DataFormatError(
            f"{path}: header must be {HEADER_FIRST!r} + tab-separated label names, got {lines[0][:60]!r}"
        )
    names = tuple(h.strip() for h in header[1:])
    rows: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DataFormatError(f"{path}:{lineno}: {len(cells) - 1} label values, expected {len(names)}")
        try:
            values = np.array([int(c) for c in cells[1:]], dtype=np.int64)
        except ValueError:
            raise DataFormatError(f"{path}:{lineno}: label values must be 0 or 1") from None
        if ((values != 0) & (values != 1)).any():
            raise DataFormatError(f"{path}:{lineno}: label values must be 0 or 1")
        rows[cells[0].strip()] = values.astype(np.uint8)
    return names, rows


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to the largest square, then resize to ``size`` x ``size`` (PIL bilinear)."""
    from PIL import Image

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR))


def read_tif(path: Path) -> np.ndarray:
    """One RGB uint8 image (H, W, 3); DataFormatError for anything else."""
    import tifffile

    try:
        image = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise DataFormatError(f"{path}: unreadable TIFF ({type(exc).__name__}: {str(exc)[:80]})") from None
    if image.size == 0:  # tifffile logs a warning and returns nothing for a broken first page
        raise DataFormatError(f"{path}: unreadable TIFF (no image data)")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataFormatError(f"{path}: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return image


def list_images(
    image_dir: str | Path, classes: Sequence[str] | None = None, per_class: int | None = None
) -> list[tuple[str, Path]]:
    """``[(class, file), ...]`` in class order, then file order; checks the names."""
    root = Path(image_dir)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"UC Merced: image folder {str(root)!r} not found (expected <class>/<class>NN.tif inside, "
            "e.g. UCMerced_LandUse/Images; `rstransfer download` fetches it)"
        )
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not found:
        raise DatasetNotFoundError(f"UC Merced: no class folders in {str(root)!r} (expected <class>/<class>NN.tif)")
    chosen = sorted(classes) if classes else found
    for name in chosen:
        if name not in found:
            raise ConfigError(f"unknown class name {name!r}: no folder {root / name} (found: {', '.join(found)})")
    out: list[tuple[str, Path]] = []
    for name in chosen:
        pattern = re.compile(re.escape(name) + r"\d+")
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        if not files:
            raise DatasetNotFoundError(f"UC Merced: no .tif files in {root / name}")
        for f in files:
            if not pattern.fullmatch(f.stem):
                raise DataFormatError(f"{f}: file name does not match its class folder ({name}NN.tif)")
        out += [(name, f) for f in files[:per_class]]
    return out


def load_ucmerced(
    image_dir: str | Path,
    labels_txt: str | Path | None = None,
    size: int = 256,
    *,
    classes: Sequence[str] | None = None,
    per_class: int | None = None,
) -> SceneSet:
    """Read ``<image_dir>/<class>/<class>NN.tif`` into a :class:`SceneSet`.

    Args:
        image_dir: the ``Images`` folder.
        labels_txt: ``LandUse_Multilabeled.txt``; ``None`` -> ``multilabels`` is None.
        size: output side in pixels (centre-crop to square, then bilinear resize).
        classes: only these folder classes (default: every folder).
        per_class: only the first ``per_class`` files of each class (in name order).

    Raises:
        DatasetNotFoundError, DataFormatError, ConfigError: see the module docstring.
    """
    if size < 8:
        raise ConfigError(f"UC Merced: size must be >= 8 px, got {size}")
    files = list_images(image_dir, classes, per_class)
    label_names: tuple[str, ...] = ()
    rows: dict[str, np.ndarray] = {}
    if labels_txt is not None:
        label_names, rows = read_multilabels(labels_txt)
        for _, f in files:  # check every row before reading any pixels
            if f.stem not in rows:
                raise DataFormatError(f"{labels_txt}: no label row for image {f.stem!r} ({f})")
    class_names = tuple(sorted({c for c, _ in files}))
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, (_, f) in enumerate(files):
        images[i] = square_resize(read_tif(f), size)
    names = tuple(f.stem for _, f in files)
    return SceneSet(
        images=images,
        names=names,
        classes=class_names,
        class_ids=np.array([class_names.index(c) for c, _ in files], dtype=np.int64),
        multilabels=np.stack([rows[n] for n in names]) if labels_txt is not None else None,
        label_names=label_names,
    )


def write_multilabels(path: str | Path, label_names: Sequence[str], rows: dict[str, np.ndarray]) -> None:
    """Write a ``LandUse_Multilabeled.txt`` in the original format (tabs, CRLF)."""
    from rstransfer.core.io import write_text

    lines = ["\t".join([HEADER_FIRST, *label_names])]
    lines += ["\t".join([name, *(str(int(v)) for v in row)]) for name, row in rows.items()]
    write_text(path, "\r\n".join(lines) + "\r\n")
