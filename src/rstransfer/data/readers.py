"""Readers for the public hyperspectral scenes, one small function per scene.

Every reader has the form ``read_<scene>(root, **options) -> Scene`` where ``root`` is the folder
holding the scene's files under their original names, and is registered in :data:`READERS`
under the name used by ``datasets.<key>.reader`` in config.yaml. :func:`load_dataset` turns a
config entry into a checked :class:`~rstransfer.data.scene.Scene`; :func:`read_ground_truth`
reads only the label files (the public ground-truth maps are small, the cubes are not).

MATLAB details (v5 vs v7.3, column-major pixel matrices, cell arrays) are handled in
:mod:`rstransfer.data.matfile` only. Nothing here downloads anything; :func:`download` is an
explicit, opt-in helper.

Sources: the Indian Pines, Pavia University, Salinas and Salinas-A scenes are distributed by the
UPV/EHU Computational Intelligence Group ("Hyperspectral Remote Sensing Scenes",
https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes); HYDICE Urban with its
end4/5/6 ground truth comes from F. Zhu's unmixing benchmark (arXiv:1708.05125).
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from .matfile import column_major_cube, column_major_map, find_variable, load_mat, scalar_int, strings
from .scene import Scene, check_scene

__all__ = [
    "GROUND_TRUTH",
    "INDIAN_PINES_CLASSES",
    "PAVIAU_CLASSES",
    "READERS",
    "SALINAS_A_IDS",
    "SALINAS_CLASSES",
    "download",
    "get_reader",
    "load_dataset",
    "read_ground_truth",
]

INDIAN_PINES_CLASSES: tuple[str, ...] = (
    "Alfalfa",
    "Corn-notill",
    "Corn-mintill",
    "Corn",
    "Grass-pasture",
    "Grass-trees",
    "Grass-pasture-mowed",
    "Hay-windrowed",
    "Oats",
    "Soybean-notill",
    "Soybean-mintill",
    "Soybean-clean",
    "Wheat",
    "Woods",
    "Buildings-Grass-Trees-Drives",
    "Stone-Steel-Towers",
)
PAVIAU_CLASSES: tuple[str, ...] = (
    "Asphalt",
    "Meadows",
    "Gravel",
    "Trees",
    "Painted metal sheets",
    "Bare Soil",
    "Bitumen",
    "Self-Blocking Bricks",
    "Shadows",
)
SALINAS_CLASSES: tuple[str, ...] = (
    "Brocoli_green_weeds_1",
    "Brocoli_green_weeds_2",
    "Fallow",
    "Fallow_rough_plow",
    "Fallow_smooth",
    "Stubble",
    "Celery",
    "Grapes_untrained",
    "Soil_vinyard_develop",
    "Corn_senesced_green_weeds",
    "Lettuce_romaine_4wk",
    "Lettuce_romaine_5wk",
    "Lettuce_romaine_6wk",
    "Lettuce_romaine_7wk",
    "Vinyard_untrained",
    "Vinyard_vertical_trellis",
)
#: Salinas-A keeps the Salinas class ids; they are remapped to 1..6 in this order.
SALINAS_A_IDS: tuple[int, ...] = (1, 10, 11, 12, 13, 14)
URBAN_CUBE_FILES: tuple[str, ...] = ("Urban_F210.mat", "Urban_R162.mat")
URBAN_ENDMEMBERS: tuple[int, ...] = (4, 5, 6)

Labels = tuple[np.ndarray, tuple[str, ...]]


@dataclass(frozen=True)
class _Layout:
    """The EHU layout: one cube file and one ground-truth file, one variable each."""

    cube_file: str
    cube_var: str
    gt_file: str
    gt_var: str
    class_names: tuple[str, ...]
    label_ids: tuple[int, ...] | None = None  # original ids when they are not 1..C


_INDIAN_PINES = _Layout(
    "Indian_pines_corrected.mat",
    "indian_pines_corrected",
    "Indian_pines_gt.mat",
    "indian_pines_gt",
    INDIAN_PINES_CLASSES,
)
_PAVIAU = _Layout("PaviaU.mat", "paviaU", "PaviaU_gt.mat", "paviaU_gt", PAVIAU_CLASSES)
_SALINAS = _Layout("Salinas_corrected.mat", "salinas_corrected", "Salinas_gt.mat", "salinas_gt", SALINAS_CLASSES)
_SALINAS_A = _Layout(
    "SalinasA_corrected.mat",
    "salinasA_corrected",
    "SalinasA_gt.mat",
    "salinasA_gt",
    tuple(SALINAS_CLASSES[i - 1] for i in SALINAS_A_IDS),
    SALINAS_A_IDS,
)


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _require(root: Path | str | None, expected: Mapping[str, str]) -> dict[str, Path]:
    """Check that every expected file exists before reading any (cubes are large).

    Args:
        root: the dataset folder.
        expected: file name -> variable name(s) it should hold, for the message.

    Raises:
        DatasetNotFoundError: no folder given, folder missing, or a file missing.
    """
    listing = ", ".join(f"{name} (variable {var})" for name, var in expected.items())
    if root is None or str(root) == "":
        raise DatasetNotFoundError(f"no folder given (path is empty); expected files: {listing}")
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"folder {folder} does not exist; expected files: {listing}")
    paths = {name: folder / name for name in expected}
    missing = [name for name, p in paths.items() if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{', '.join(missing)} not found in {folder}; expected files: {listing}"
        )
    return paths


def _as_labels(raw: np.ndarray, path: Path) -> np.ndarray:
    """GT map of any numeric class -> int32, refusing fractional or negative ids."""
    if raw.dtype.kind == "f" and not np.array_equal(raw, np.round(raw)):
        raise DataFormatError(f"{path}: ground truth holds non-integer values; expected class ids 0..C")
    labels = raw.astype(np.int32)
    if labels.size and labels.min() < 0:
        raise DataFormatError(f"{path}: ground truth holds negative values; expected class ids 0..C")
    return labels


def _remap(labels: np.ndarray, ids: tuple[int, ...], path: Path) -> np.ndarray:
    """Map original class ids (e.g. Salinas numbering) to 1..len(ids); 0 stays unlabelled."""
    present = {int(v) for v in np.unique(labels)} - {0}
    unknown = sorted(present - set(ids))
    if unknown:
        raise DataFormatError(
            f"{path}: label(s) {unknown[:10]} outside the class list (expected 0 or one of {list(ids)})"
        )
    lut = np.zeros(max(ids) + 1, dtype=np.int32)
    lut[list(ids)] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lut[labels]


def _layout_labels(layout: _Layout, path: Path) -> np.ndarray:
    labels = _as_labels(find_variable(load_mat(path), path, layout.gt_var, 2, "ground truth"), path)
    return labels if layout.label_ids is None else _remap(labels, layout.label_ids, path)


def _layout_ground_truth(layout: _Layout, root: Path | str | None) -> Labels:
    path = _require(root, {layout.gt_file: layout.gt_var})[layout.gt_file]
    return _layout_labels(layout, path), layout.class_names


def _read_layout(name: str, layout: _Layout, root: Path | str | None) -> Scene:
    paths = _require(root, {layout.cube_file: layout.cube_var, layout.gt_file: layout.gt_var})
    cube_path, gt_path = paths[layout.cube_file], paths[layout.gt_file]
    cube = find_variable(load_mat(cube_path), cube_path, layout.cube_var, 3, "cube")
    notes = {"source": str(cube_path), "ground_truth": str(gt_path)}
    if layout.label_ids is not None:
        notes["original_ids"] = ",".join(str(i) for i in layout.label_ids)
        notes["label_map"] = ", ".join(f"{i}->{k}" for k, i in enumerate(layout.label_ids, start=1))
    return Scene(
        name=name,
        cube=np.asarray(cube, dtype=np.float32),
        labels=_layout_labels(layout, gt_path),
        class_names=layout.class_names,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# EHU scenes
# --------------------------------------------------------------------------------------------


def read_indian_pines(root: Path) -> Scene:
    """Indian Pines (AVIRIS, 1992): 145x145 px, 200 bands after water-absorption removal.

    Files: ``Indian_pines_corrected.mat`` (``indian_pines_corrected``) and
    ``Indian_pines_gt.mat`` (``indian_pines_gt``); 16 classes, 10249 labelled px.

    Args:
        root: folder holding both files.

    Raises:
        DatasetNotFoundError: folder or file missing.
        DataFormatError: a file is unreadable or lacks the expected variable.
    """
    return _read_layout("indian_pines", _INDIAN_PINES, root)


def read_paviau(root: Path) -> Scene:
    """Pavia University (ROSIS): 610x340 px, 103 bands, 9 classes, 42776 labelled px.

    Files: ``PaviaU.mat`` (``paviaU``) and ``PaviaU_gt.mat`` (``paviaU_gt``).

    Args:
        root: folder holding both files.

    Raises:
        DatasetNotFoundError: folder or file missing.
        DataFormatError: a file is unreadable or lacks the expected variable.
    """
    return _read_layout("paviau", _PAVIAU, root)


def read_salinas(root: Path) -> Scene:
    """Salinas (AVIRIS): 512x217 px, 204 bands, 16 classes, 54129 labelled px.

    Files: ``Salinas_corrected.mat`` (``salinas_corrected``) and ``Salinas_gt.mat`` (``salinas_gt``).

    Args:
        root: folder holding both files.

    Raises:
        DatasetNotFoundError: folder or file missing.
        DataFormatError: a file is unreadable or lacks the expected variable.
    """
    return _read_layout("salinas", _SALINAS, root)


def read_salinas_a(root: Path) -> Scene:
    """Salinas-A, an 83x86 px subscene of Salinas: 204 bands, 6 classes, 5348 labelled px.

    Files: ``SalinasA_corrected.mat`` (``salinasA_corrected``, int16) and ``SalinasA_gt.mat``
    (``salinasA_gt``). The ground truth keeps the Salinas ids {1, 10, 11, 12, 13, 14}; they are
    remapped to 1..6 (names from Salinas) and the original ids are kept in ``notes``.

    Args:
        root: folder holding both files.

    Raises:
        DatasetNotFoundError: folder or file missing.
        DataFormatError: a file is unreadable, lacks the expected variable, or holds an id
            outside {0, 1, 10, 11, 12, 13, 14}.
    """
    return _read_layout("salinas_a", _SALINAS_A, root)


# --------------------------------------------------------------------------------------------
# Urban (HYDICE)
# --------------------------------------------------------------------------------------------


def _check_urban_options(endmembers: int, purity: float) -> None:
    if endmembers not in URBAN_ENDMEMBERS:
        raise ConfigError(f"option endmembers={endmembers!r}: must be one of {list(URBAN_ENDMEMBERS)}")
    if not isinstance(purity, (int, float)) or not 0.0 <= float(purity) < 1.0:
        raise ConfigError(f"option purity={purity!r}: must be a number in [0, 1)")


@dataclass(frozen=True)
class _UrbanTruth:
    path: Path
    abundances: np.ndarray  # (k, pixels), MATLAB column-major pixel order
    endmembers: np.ndarray  # (bands, k)
    n_row: int
    n_col: int
    class_names: tuple[str, ...]
    raw_names: tuple[str, ...]


def _urban_gt_name(endmembers: int) -> str:
    return f"end{endmembers}_groundTruth.mat"


def _load_urban_truth(path: Path, endmembers: int) -> _UrbanTruth:
    mat = load_mat(path)
    A = find_variable(mat, path, "A", 2, "abundances")
    M = find_variable(mat, path, "M", 2, "endmember spectra")
    n_row, n_col = scalar_int(mat, path, "nRow"), scalar_int(mat, path, "nCol")
    if A.shape != (endmembers, n_row * n_col):
        raise DataFormatError(
            f"{path}: abundances A have shape {A.shape}, expected ({endmembers}, nRow*nCol={n_row * n_col})"
        )
    if M.shape[1] != endmembers:
        raise DataFormatError(f"{path}: endmember matrix M has shape {M.shape}, expected (bands, {endmembers})")
    if "cood" not in mat:
        raise DataFormatError(f"{path}: variable 'cood' (class names) not found; variables: {', '.join(mat)}")
    try:
        raw = tuple(strings(mat["cood"]))
    except TypeError as exc:
        raise DataFormatError(f"{path}: 'cood' should hold the class names as strings: {exc}") from exc
    if len(raw) != endmembers:
        raise DataFormatError(f"{path}: 'cood' lists {len(raw)} names for {endmembers} endmembers")
    # cood entries read "1-Asphalt Road"; the numeric prefix is the class id, not the name.
    names = tuple(re.sub(r"^\s*\d+\s*-\s*", "", s) for s in raw)
    return _UrbanTruth(path, np.asarray(A, np.float64), np.asarray(M, np.float64), n_row, n_col, names, raw)


def _abundance_labels(truth: _UrbanTruth, purity: float) -> np.ndarray:
    """Argmax class map (1..k); pixels whose top abundance is not above ``purity`` become 0."""
    A = truth.abundances
    labels = np.argmax(A, axis=0).astype(np.int32) + 1
    labels[A.max(axis=0) <= purity] = 0
    return column_major_map(labels, truth.n_row, truth.n_col)


def _urban_notes(truth: _UrbanTruth, purity: float) -> dict[str, str]:
    return {
        "ground_truth": str(truth.path),
        "labels": f"argmax of the end{len(truth.class_names)} abundances; top abundance > {purity} kept",
        "purity": str(float(purity)),
        "cood": "; ".join(truth.raw_names),
    }


def _urban_ground_truth(root: Path | str | None, *, endmembers: int = 4, purity: float = 0.0) -> Labels:
    _check_urban_options(endmembers, purity)
    gt_name = _urban_gt_name(endmembers)
    path = _require(root, {gt_name: "A, M, cood, nRow, nCol"})[gt_name]
    truth = _load_urban_truth(path, endmembers)
    return _abundance_labels(truth, purity), truth.class_names


def read_urban(
    root: Path, *, cube_file: str = "Urban_F210.mat", endmembers: int = 4, purity: float = 0.0
) -> Scene:
    """HYDICE Urban: 307x307 px, 210 bands (``Urban_F210.mat``) or 162 (``Urban_R162.mat``).

    The cube file stores ``Y`` as bands x pixels with MATLAB column-major pixel order, plus
    ``nRow``/``nCol``. Urban has no label map of its own: the ground truth
    ``end{k}_groundTruth.mat`` holds abundances ``A`` (k x pixels, summing to 1), endmember
    spectra ``M`` and class names ``cood``. The class map is the argmax over ``A``.

    Purity: abundances are fractions, so many pixels are mixtures. ``purity`` sets how dominant
    the top endmember must be for a pixel to get a label: a pixel is labelled only when its
    largest abundance is strictly greater than ``purity``; all others become 0 (unlabelled).
    The default 0.0 is the plain argmax (every pixel labelled; end4 gives Asphalt 29954,
    Grass 32328, Tree 24805, Roof 7162 px). ``purity=0.5`` keeps 83704 of the 94249 end4 px.

    Args:
        root: folder holding ``cube_file`` and ``end{endmembers}_groundTruth.mat``.
        cube_file: ``"Urban_F210.mat"`` (all 210 bands) or ``"Urban_R162.mat"`` (162 bands).
        endmembers: 4, 5 or 6, selecting ``end4/5/6_groundTruth.mat``.
        purity: threshold on the top abundance, in [0, 1).

    Raises:
        ConfigError: an option has an invalid value.
        DatasetNotFoundError: folder or file missing.
        DataFormatError: a file is unreadable or its variables disagree in size.
    """
    _check_urban_options(endmembers, purity)
    if cube_file not in URBAN_CUBE_FILES:
        raise ConfigError(f"option cube_file={cube_file!r}: must be one of {list(URBAN_CUBE_FILES)}")
    gt_name = _urban_gt_name(endmembers)
    paths = _require(root, {cube_file: "Y, nRow, nCol", gt_name: "A, M, cood, nRow, nCol"})
    cube_path = paths[cube_file]
    mat = load_mat(cube_path)
    Y = find_variable(mat, cube_path, "Y", 2, "pixel matrix (bands x pixels)")
    n_row, n_col = scalar_int(mat, cube_path, "nRow"), scalar_int(mat, cube_path, "nCol")
    n_band = scalar_int(mat, cube_path, "nBand") if "nBand" in mat else Y.shape[0]
    if n_band != Y.shape[0]:
        raise DataFormatError(f"{cube_path}: Y has {Y.shape[0]} bands but nBand says {n_band}")
    try:
        cube = column_major_cube(np.asarray(Y, dtype=np.float32), n_row, n_col)
    except DataFormatError as exc:
        raise DataFormatError(f"{cube_path}: {exc}") from exc
    truth = _load_urban_truth(paths[gt_name], endmembers)
    return Scene(
        name="urban",
        cube=cube,
        labels=_abundance_labels(truth, purity),
        class_names=truth.class_names,
        notes={"source": str(cube_path), **_urban_notes(truth, purity)},
    )


def read_urban_rebuilt(root: Path, *, endmembers: int = 4, purity: float = 0.0) -> Scene:
    """STAND-IN Urban scene rebuilt from the ground truth alone: cube = ``M @ A``.

    For offline work where the HYDICE cube is unavailable. Each pixel is the linear mixture of
    the real endmember spectra ``M`` (162 bands, the R162 subset) with the real abundances
    ``A``, so it has no noise, no nonlinear mixing and no spectral variability. The scene is
    marked ``stand_in=True`` and must be reported as such. Labels and ``purity`` are as in
    :func:`read_urban`.

    Args:
        root: folder holding ``end{endmembers}_groundTruth.mat``.
        endmembers: 4, 5 or 6.
        purity: threshold on the top abundance, in [0, 1).

    Raises:
        ConfigError: an option has an invalid value.
        DatasetNotFoundError: folder or file missing.
        DataFormatError: the file is unreadable or its variables disagree in size.
    """
    _check_urban_options(endmembers, purity)
    gt_name = _urban_gt_name(endmembers)
    path = _require(root, {gt_name: "A, M, cood, nRow, nCol"})[gt_name]
    truth = _load_urban_truth(path, endmembers)
    mixed = (truth.endmembers @ truth.abundances).astype(np.float32)
    return Scene(
        name="urban_rebuilt",
        cube=column_major_cube(mixed, truth.n_row, truth.n_col),
        labels=_abundance_labels(truth, purity),
        class_names=truth.class_names,
        stand_in=True,
        notes={
            "source": str(path),
            "stand_in": (
                f"rebuilt from the real Urban endmembers and abundances (M @ A, {truth.endmembers.shape[0]} bands) "
                f"of {gt_name}; not the HYDICE cube"
            ),
            **_urban_notes(truth, purity),
        },
    )


# --------------------------------------------------------------------------------------------
# synthetic demo scenes (imported lazily: they need scipy.ndimage, the readers do not)
# --------------------------------------------------------------------------------------------


def read_synthetic_source(root: Path | None = None, **options: Any) -> Scene:
    """The synthetic source demo scene; see :func:`rstransfer.data.synthetic.synthetic_source`."""
    from .synthetic import synthetic_source

    return synthetic_source(root, **options)


def read_synthetic_target(root: Path | None = None, **options: Any) -> Scene:
    """The synthetic target demo scene; see :func:`rstransfer.data.synthetic.synthetic_target`."""
    from .synthetic import synthetic_target

    return synthetic_target(root, **options)


# --------------------------------------------------------------------------------------------
# registries and entry points
# --------------------------------------------------------------------------------------------

READERS: dict[str, Callable[..., Scene]] = {
    "indian_pines": read_indian_pines,
    "paviau": read_paviau,
    "salinas": read_salinas,
    "salinas_a": read_salinas_a,
    "urban": read_urban,
    "urban_rebuilt": read_urban_rebuilt,
    "synthetic_source": read_synthetic_source,
    "synthetic_target": read_synthetic_target,
}

#: Label-only readers, for scenes whose ground-truth file exists on its own.
GROUND_TRUTH: dict[str, Callable[..., Labels]] = {
    "indian_pines": lambda root: _layout_ground_truth(_INDIAN_PINES, root),
    "paviau": lambda root: _layout_ground_truth(_PAVIAU, root),
    "salinas": lambda root: _layout_ground_truth(_SALINAS, root),
    "salinas_a": lambda root: _layout_ground_truth(_SALINAS_A, root),
    "urban": _urban_ground_truth,
    "urban_rebuilt": _urban_ground_truth,
}


def get_reader(name: str) -> Callable[..., Scene]:
    """Look up a reader by name.

    Raises:
        KeyError: unknown name; the message lists the valid names.
    """
    try:
        return READERS[name]
    except KeyError:
        raise KeyError(f"unknown reader {name!r}; valid readers: {', '.join(sorted(READERS))}") from None


def read_ground_truth(name: str, root: Path, **options: Any) -> Labels:
    """Read only a scene's label map (no cube).

    Args:
        name: reader name with a label-only file (see :data:`GROUND_TRUTH`).
        root: folder holding the ground-truth file.
        **options: for Urban, ``endmembers`` and ``purity`` as in :func:`read_urban`.

    Returns:
        ``(labels, class_names)``: int32 (H, W) map with 0 = unlabelled, and one name per id.

    Raises:
        KeyError: ``name`` has no label-only reader.
        DatasetNotFoundError: folder or file missing.
        DataFormatError: the file is unreadable or holds unexpected ids.
    """
    if name not in GROUND_TRUTH:
        raise KeyError(f"no ground-truth reader {name!r}; valid: {', '.join(sorted(GROUND_TRUTH))}")
    return GROUND_TRUTH[name](root, **options)


def _check_options(key: str, reader_name: str, reader: Callable[..., Scene], options: Mapping[str, Any]) -> None:
    """Reject option names the reader does not take, naming the config key."""
    params = inspect.signature(reader).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return  # the reader validates its own options
    valid = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"datasets.{key}.options: unknown option(s) {unknown} for reader {reader_name}; "
            f"valid options: {valid if valid else 'none'}"
        )


def load_dataset(key: str, entry: Mapping[str, Any], base_dir: Path) -> Scene:
    """Read and check the dataset declared as ``datasets.<key>`` in config.yaml.

    Args:
        key: the dataset key (becomes ``Scene.name``).
        entry: ``{reader, path, options, class_names, url, sha256}``; ``path`` is relative to
            ``base_dir`` unless absolute, and may be empty for the synthetic readers.
        base_dir: folder that relative paths are resolved against (config ``data_root``).

    Returns:
        The checked scene: float32 cube, int32 labels.

    Raises:
        ConfigError: unknown reader, unknown option or a bad class-name override.
        DatasetNotFoundError: the folder or a file is missing; the message names the files, their
            variables and ``datasets.<key>.path``.
        DataFormatError: a file is unreadable, or the scene fails :func:`check_scene`.
    """
    if not isinstance(entry, Mapping):
        raise ConfigError(f"datasets.{key}: expected a mapping with at least 'reader', got {type(entry).__name__}")
    reader_name = entry.get("reader")
    if reader_name not in READERS:
        raise ConfigError(
            f"datasets.{key}.reader: unknown reader {reader_name!r}; valid readers: {', '.join(sorted(READERS))}"
        )
    reader = READERS[reader_name]
    options = entry.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"datasets.{key}.options: expected a mapping, got {type(options).__name__}")
    _check_options(key, reader_name, reader, options)

    raw_path = str(entry.get("path") or "")
    root = None if not raw_path else (Path(raw_path) if Path(raw_path).is_absolute() else Path(base_dir) / raw_path)
    try:
        scene = reader(root, **options)
    except DatasetNotFoundError as exc:
        hint = f"; or fetch it from datasets.{key}.url" if entry.get("url") else ""
        raise DatasetNotFoundError(
            f"dataset '{key}' (reader {reader_name}) not found: {exc}; searched {root if root else '(no path)'}; "
            f"set datasets.{key}.path in config.yaml to the folder holding these files{hint}"
        ) from exc
    except ConfigError as exc:
        raise ConfigError(f"datasets.{key}.options: {exc}") from exc

    names = tuple(scene.class_names)
    override = entry.get("class_names")
    if override:
        if len(override) != len(names):
            raise ConfigError(
                f"datasets.{key}.class_names: {len(override)} names given, reader {reader_name} has "
                f"{len(names)} classes ({', '.join(names)})"
            )
        names = tuple(str(n) for n in override)
    scene = replace(
        scene,
        name=key,
        cube=np.asarray(scene.cube, dtype=np.float32),
        labels=np.asarray(scene.labels, dtype=np.int32),
        class_names=names,
    )
    return check_scene(scene, origin=scene.notes.get("source", key))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(entry: Mapping[str, Any], dest_dir: Path, *, key: str = "<key>", timeout: float = 60.0) -> Path:
    """Fetch ``entry['url']`` into ``dest_dir`` and verify ``entry['sha256']``.

    Opt-in only: never called at import or by a reader. The file is written under a temporary
    name and renamed only once its checksum matches, so a failed or tampered download leaves
    nothing behind. A file already present with the right checksum is not fetched again.

    Args:
        entry: dataset entry with ``url`` and ``sha256`` (lower-case hex).
        dest_dir: folder to write into (created if needed); the file keeps the URL's base name.
        key: dataset key, for messages.
        timeout: network timeout in seconds.

    Returns:
        The downloaded file.

    Raises:
        ConfigError: ``url`` or ``sha256`` is missing.
        DatasetNotFoundError: the URL could not be fetched.
        DataFormatError: the checksum does not match.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    from rstransfer.core.io import atomic_path

    url, expected = entry.get("url"), str(entry.get("sha256") or "").lower()
    if not url:
        raise ConfigError(f"datasets.{key}.url: not set; nothing to download")
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ConfigError(f"datasets.{key}.sha256: a 64-digit hex checksum is required to download {url}")
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise ConfigError(f"datasets.{key}.url: {url} does not end in a file name")
    target = Path(dest_dir) / name
    if target.is_file() and _sha256(target) == expected:
        return target
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
        except (urllib.error.URLError, OSError) as exc:
            raise DatasetNotFoundError(f"dataset '{key}': could not download {url}: {exc}") from exc
        actual = _sha256(tmp)
        if actual != expected:
            raise DataFormatError(
                f"dataset '{key}': {url} has sha256 {actual}, expected {expected} "
                f"(datasets.{key}.sha256); file discarded"
            )
    return target
