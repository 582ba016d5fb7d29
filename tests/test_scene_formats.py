"""Generic scene readers (mat, npy, envi, geotiff): any scene by declaration alone.

One small scene is stored in every layout and format under tests/data/scene_formats (written by
tests/data/make_scene_fixtures.py, names no reader knows). Every declaration must give back the
identical cube and label map; every declaration error must be one line naming the file, the
variable and the config key; the presets must be plain declarations of the generic reader; the
real Urban, Salinas-A and Sentinel-2 files must load through declarations too.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io as sio
import yaml

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from rstransfer.data.inspect import inspect_dataset
from rstransfer.data.presets import PRESETS, expand
from rstransfer.data.readers import (
    READERS,
    check_entry,
    dataset_files,
    dataset_schema,
    load_dataset,
    load_ground_truth,
    options_schema,
    read_ground_truth,
)

FIXTURES = Path(__file__).resolve().parent / "data"
FORMATS = FIXTURES / "scene_formats"
H, W, B = 10, 7, 16
NAMES = ("Soil", "Vegetation", "Water")
DEFAULT_NAMES = ("class 1", "class 2", "class 3")


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, np.ndarray]:
    """The scene as written: (H, W, B) cube and (H, W) labels, read with scipy alone."""
    raw = sio.loadmat(FORMATS / "scene_rcb.mat")
    return raw["cube"].astype(np.float32), raw["gt"].astype(np.int32)


@contextlib.contextmanager
def one_line_error(exc_type: type[BaseException], *parts: str) -> Iterator[None]:
    """The error is of ``exc_type``, one line, and contains every part (file, variable, key)."""
    with pytest.raises(exc_type) as info:
        yield
    text = str(info.value)
    assert "\n" not in text, text
    for part in parts:
        assert part in text, f"{part!r} not in: {text}"


def _declarations() -> dict[str, tuple[dict[str, Any], tuple[str, ...], bool]]:
    """id -> (entry, expected class names, expects a warning), from tests/data/scene_formats.yaml."""
    out = {}
    for case, entry in yaml.safe_load((FIXTURES / "scene_formats.yaml").read_text())["datasets"].items():
        names = tuple(entry.pop("expect_names", DEFAULT_NAMES))
        out[case] = (entry, names, bool(entry.pop("expect_warning", False)))
    return out


DECLARATIONS = _declarations()
#: the done-when scene: a bands x pixels matrix with abundance ground truth, unknown names
CAMPAIGN: dict[str, Any] = DECLARATIONS["mat-bands_pixels-abundances"][0]


@pytest.mark.parametrize("case", list(DECLARATIONS))
def test_every_format_loads_the_same_scene(
    case: str, reference: tuple[np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    entry, names, warns = DECLARATIONS[case]
    entry = copy.deepcopy(entry)
    with caplog.at_level(logging.WARNING, logger="rstransfer.data"):
        scene = load_dataset("scene", entry, FIXTURES)
    cube, labels = reference
    assert scene.cube.shape == (H, W, B) and scene.cube.dtype == np.float32
    np.testing.assert_array_equal(scene.cube, cube)
    np.testing.assert_array_equal(scene.labels, labels)
    np.testing.assert_array_equal(scene.cube[1, 2], 1000 + np.arange(B))  # the marker pixel
    assert scene.class_names == names
    assert bool(caplog.records) == warns == ("warnings" in scene.notes)


def test_bands_pixels_abundances_by_declaration_alone(
    reference: tuple[np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    """Done-when of issue 15: unknown file/variable names, bands x pixels, abundance GT, stale metadata."""
    with caplog.at_level(logging.WARNING, logger="rstransfer.data"):
        scene = load_dataset("campaign", CAMPAIGN, FIXTURES)
    [record] = caplog.records  # one warning, one line, naming the variable and the key
    line = record.getMessage()
    assert "\n" not in line
    for part in ("campaign_refl.mat", "'nb'", "224 bands", "has 16", "using the array", "options.cube.band_count"):
        assert part in line, line
    assert scene.notes["warnings"] == line
    np.testing.assert_allclose(scene.wavelengths, np.linspace(400, 2500, B), rtol=1e-6)
    assert "argmax of the 3 abundances" in scene.notes["labels"] and scene.notes["purity"] == "0.5"
    np.testing.assert_array_equal(scene.labels, reference[1])
    # purity 0: the plain argmax labels every pixel (unlabelled pixels lean to class 1 at 0.4)
    plain = copy.deepcopy(CAMPAIGN)
    plain["options"]["labels"]["purity"] = 0.0
    labels = load_dataset("campaign", plain, FIXTURES).labels
    assert labels.min() == 1 and np.array_equal(labels[reference[1] > 0], reference[1][reference[1] > 0])
    only_gt, names = load_ground_truth("campaign", CAMPAIGN, FIXTURES)
    np.testing.assert_array_equal(only_gt, reference[1])
    assert names == NAMES


def test_band_subset_and_wavelengths(reference: tuple[np.ndarray, np.ndarray]) -> None:
    entry = copy.deepcopy(CAMPAIGN)
    entry["options"]["cube"]["bands"] = [0, "3:6", 15]
    scene = load_dataset("campaign", entry, FIXTURES)
    np.testing.assert_array_equal(scene.cube, reference[0][..., [0, 3, 4, 5, 15]])
    np.testing.assert_allclose(scene.wavelengths, np.linspace(400, 2500, B)[[0, 3, 4, 5, 15]], rtol=1e-6)
    envi = load_dataset("e", DECLARATIONS["envi-bip-float-offset"][0], FIXTURES)  # micrometers -> nm
    np.testing.assert_allclose(envi.wavelengths, np.linspace(400, 2500, B), atol=0.06)


def with_options(entry: dict[str, Any], block: str, **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(entry)
    out["options"][block].update(changes)
    return out


def copy_formats(tmp_path: Path) -> Path:
    shutil.copytree(FORMATS, tmp_path / "scene_formats")
    return tmp_path


K = "datasets.camp.options"


@pytest.mark.parametrize(
    ("change", "exc", "parts"),
    [
        (
            ("cube", {"variable": "reflectance"}),
            DataFormatError,
            ["campaign_refl.mat", "'reflectance'", f"{K}.cube.variable", "refl float64"],
        ),
        (
            ("cube", {"rows": 9}),
            DataFormatError,
            ["campaign_refl.mat", "'refl'", "9x7 = 63", "70 pixels", f"{K}.cube.rows"],
        ),
        (
            ("cube", {"rows": None, "cols": None}),
            ConfigError,
            ["campaign_refl.mat", "'refl'", f"{K}.cube.rows", f"{K}.cube.cols"],
        ),
        (("cube", {"rows": "nRows"}), DataFormatError, ["campaign_refl.mat", "'nRows'", f"{K}.cube.rows"]),
        (
            ("cube", {"layout": "bands_cols_rows"}),
            ConfigError,
            ["campaign_refl.mat", "refl", f"{K}.cube.layout", "'bands_cols_rows' is not one of"],
        ),
        (("cube", {"bands": [16]}), ConfigError, ["campaign_refl.mat", "'refl'", "band 16", f"{K}.cube.bands"]),
        (("cube", {"variabel": "refl"}), ConfigError, [f"{K}.cube", "unknown key 'variabel'", "campaign_refl.mat"]),
        (
            ("labels", {"variable": "fractions"}),
            DataFormatError,
            ["campaign_truth.mat", "'fractions'", f"{K}.labels.variable"],
        ),
        (
            ("labels", {"kind": "map"}),
            DataFormatError,
            ["campaign_truth.mat", "'frac'", "non-integer", f"{K}.labels.kind"],
        ),
        (
            ("labels", {"names": ["a", "b"]}),
            ConfigError,
            ["campaign_truth.mat", "2 class names for 3 classes", f"{K}.labels.names"],
        ),
        (
            ("labels", {"layout": "rows_cols"}),
            ConfigError,
            ["campaign_truth.mat", "label-map layout", f"{K}.labels.layout"],
        ),
        (
            ("labels", {"file": "campaign_truth.xyz"}),
            DatasetNotFoundError,
            ["campaign_truth.xyz", "datasets.camp.path"],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_declaration_errors(change: tuple[str, dict[str, Any]], exc: type[Exception], parts: list[str]) -> None:
    with one_line_error(exc, *parts):
        load_dataset("camp", with_options(CAMPAIGN, change[0], **change[1]), FIXTURES)


def test_declaration_errors_needing_files(tmp_path: Path) -> None:
    root = copy_formats(tmp_path)
    folder = root / "scene_formats"
    # abundance matrix of the wrong shape (60 pixels for a 10x7 cube)
    truth = sio.loadmat(folder / "campaign_truth.mat")
    sio.savemat(folder / "campaign_truth.mat", {"frac": truth["frac"][:, :60], "mats": truth["mats"]})
    with one_line_error(DataFormatError, "campaign_truth.mat", "'frac'", "(3, 60)", "10x7", f"{K}.labels.layout"):
        load_dataset("camp", CAMPAIGN, root)
    # label map and cube of different sizes
    np.save(folder / "labels.npy", np.ones((9, 7), np.int16))
    entry = DECLARATIONS["envi-bip-float-offset"][0]
    parts = [
        "scene_bip.dat",
        "cube/GT shape mismatch: cube is 10x7, ground truth is 9x7",
        "labels.npy",
        "datasets.x.options.labels",
    ]
    with one_line_error(DataFormatError, *parts):
        load_dataset("x", entry, root)
    # a label file whose format the suffix does not tell
    (folder / "labels.txt").write_text("1 2 3\n")
    with one_line_error(ConfigError, "labels.txt", "datasets.x.options.labels.file"):
        load_dataset("x", with_options(entry, "labels", file="labels.txt"), root)
    # truncated ENVI binary: names the binary, the header and what it needs
    data = (folder / "scene_bsq.img").read_bytes()
    (folder / "scene_bsq.img").write_bytes(data[:1000])
    with one_line_error(
        DataFormatError, "scene_bsq.img", "scene_bsq.hdr", "10 lines x 7 samples x 16 bands", "truncated"
    ):
        load_dataset("x", DECLARATIONS["envi-bsq-classification"][0], root)
    (folder / "scene_bsq.img").unlink()
    with one_line_error(DatasetNotFoundError, "ENVI binary not found", "scene_bsq.img", "datasets.x.path"):
        load_dataset("x", DECLARATIONS["envi-bsq-classification"][0], root)


def test_label_value_errors() -> None:
    npz = DECLARATIONS["npz-frame-ids-ignore"][0]
    with one_line_error(
        DataFormatError, "stack.npz", "label(s) [2] outside the class list", "datasets.s.options.labels.ids"
    ):
        load_dataset("s", with_options(npz, "labels", ids=[0, 1], names_variable=None), FIXTURES)
    with one_line_error(DataFormatError, "stack.npz", "value(s) [0]", "datasets.s.options.labels.ignore", "labels.ids"):
        load_dataset("s", with_options(npz, "labels", ids=[], names_variable=None), FIXTURES)
    npy = DECLARATIONS["npy-pixels_bands-row"][0]
    with one_line_error(ConfigError, "pixels_bands.npy", "holds one array", "datasets.s.options.cube.variable"):
        load_dataset("s", with_options(npy, "cube", variable="X"), FIXTURES)
    with one_line_error(ConfigError, "stack.npz", "index 2 is out of range", "datasets.s.options.cube.index"):
        load_dataset("s", with_options(npz, "cube", index=[2]), FIXTURES)
    with one_line_error(DataFormatError, "pixels_bands.npy", "do not divide by 3", "datasets.s.options.cube.cols"):
        load_dataset("s", with_options(npy, "cube", rows=3), FIXTURES)


def test_metadata_disagreeing_with_a_3d_array(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = copy_formats(tmp_path) / "scene_formats"
    raw = sio.loadmat(folder / "scene_rcb.mat")
    sio.savemat(folder / "scene_rcb.mat", {"cube": raw["cube"], "gt": raw["gt"], "lines": 12.0})
    entry = with_options(DECLARATIONS["mat-rows_cols_bands"][0], "cube", rows="lines")
    with caplog.at_level(logging.WARNING, logger="rstransfer.data"):
        scene = load_dataset("s", entry, tmp_path)
    assert scene.cube.shape == (H, W, B)  # the array wins
    assert (
        "variable 'lines' says 12 rows but the array has 10; using the array (datasets.s.options.cube.rows)"
        in scene.notes["warnings"]
    )
    with one_line_error(
        ConfigError, "scene_rcb.mat", "says 12 rows but the array has 10", "datasets.s.options.cube.rows"
    ):
        load_dataset("s", with_options(entry, "cube", rows=12), tmp_path)


# ------------------------------------------------------------------------------------------
# presets are declarations; the schema is the one source of options
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_generic_declarations(name: str) -> None:
    spec = options_schema(name).get("properties", {})
    params = {k: v["default"] for k, v in spec.items()}
    declaration = expand(PRESETS[name].options, params)
    filled = check_entry("p", {"reader": PRESETS[name].reader, "path": "x", "options": declaration})
    assert set(filled["options"]) == {"cube", "labels"}


@pytest.mark.parametrize(
    ("name", "folder", "params"),
    [("salinas_a", "salinas_a", {}), ("urban", "urban", {"purity": 0.5}), ("urban_rebuilt", "urban", {})],
)
def test_preset_equals_its_declaration(name: str, folder: str, params: dict[str, Any]) -> None:
    preset = load_dataset("p", {"reader": name, "path": folder, "options": params}, FIXTURES)
    spec = options_schema(name)["properties"]
    declaration = expand(PRESETS[name].options, {**{k: v["default"] for k, v in spec.items()}, **params})
    generic = load_dataset("p", {"reader": "mat", "path": folder, "options": declaration}, FIXTURES)
    np.testing.assert_array_equal(preset.cube, generic.cube)
    np.testing.assert_array_equal(preset.labels, generic.labels)
    assert preset.class_names == generic.class_names and preset.stand_in == generic.stand_in


def test_preset_error_names_the_preset(tmp_path: Path) -> None:
    folder = tmp_path / "sa"
    folder.mkdir()
    sio.savemat(folder / "SalinasA_corrected.mat", {"a": np.ones((4, 4, 3)), "b": np.ones((4, 4, 3))})
    sio.savemat(folder / "SalinasA_gt.mat", {"salinasA_gt": np.ones((4, 4), np.uint8)})
    parts = [
        "SalinasA_corrected.mat",
        "'salinasA_corrected'",
        "2 (a, b)",
        "datasets.sa.reader: preset salinas_a fixes cube.variable",
    ]
    with one_line_error(DataFormatError, *parts):
        load_dataset("sa", {"reader": "salinas_a", "path": str(folder)}, tmp_path)
    # a re-saved copy with a renamed cube variable still loads, never silently
    sio.savemat(folder / "SalinasA_corrected.mat", {"salinasA": np.ones((4, 4, 3))})
    scene = load_dataset("sa", {"reader": "salinas_a", "path": str(folder)}, tmp_path)
    assert scene.cube.shape == (4, 4, 3)
    assert "'salinasA_corrected' not found; using 'salinasA'" in scene.notes["warnings"]


def _walk(schema: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        for key, sub in schema.get("properties", {}).items():
            if isinstance(sub, dict):
                yield f"{path}.{key}", sub
                yield from _walk(sub, f"{path}.{key}")
        for i, branch in enumerate(schema.get("allOf", [])):
            yield from _walk(branch["then"], f"{path}[{i}]")


def test_schema_documents_every_option() -> None:
    schema = dataset_schema()
    assert schema["properties"]["reader"]["enum"] == list(READERS)
    for where, sub in _walk(schema, "entry"):
        assert sub.get("description"), f"{where}: no description"
        no_default = (
            where.endswith(".file") and "labels" not in where or ".split." in where or where.endswith(".reader")
        )
        no_default |= where.endswith(".options") or where.endswith(".cube") or where.endswith(".labels")
        assert no_default or "default" in sub, f"{where}: no default"
    filled = check_entry("s", {"reader": "synthetic_target"})
    assert filled["options"] == {"seed": 2, "size": 96} and filled["path"] == ""
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "src/rstransfer/data/dataset.schema.yaml").read_text())
    assert "$schema" not in raw  # nested $schema would switch off default filling in the config schema


def test_dataset_files_and_fixture_checksums() -> None:
    files = dataset_files("e", DECLARATIONS["envi-bsq-classification"][0], FIXTURES)
    assert [p.name for p in files] == ["scene_bsq.hdr", "scene_bsq.img", "classes.hdr", "classes.img"]
    assert [p.name for p in dataset_files("u", {"reader": "urban", "path": "urban"}, FIXTURES)] == [
        "Urban_F210.mat",
        "end4_groundTruth.mat",
    ]
    assert dataset_files("s", {"reader": "synthetic_source"}, FIXTURES) == []
    for line in (FORMATS / "CHECKSUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        assert (
            hashlib.sha256((FORMATS / name).read_bytes()).hexdigest() == digest
        ), f"{name}: rerun make_scene_fixtures.py"


def test_inspect_text() -> None:
    text = inspect_dataset("campaign", CAMPAIGN, FIXTURES)
    assert "10 rows x 7 cols x 16 bands" in text
    assert "stored float64 (16, 70), layout bands_pixels, column-major pixels, rows 10, cols 7" in text
    assert "3 classes, 64 of 70 px labelled" in text
    assert "WARNING   " in text and "'nb'" in text
    assert "waves     400 .. 2500 nm (16 bands)" in text
    with pytest.raises(DataFormatError):
        inspect_dataset("campaign", with_options(CAMPAIGN, "cube", variable="nope"), FIXTURES)


# ------------------------------------------------------------------------------------------
# real files (../shared/data)
# ------------------------------------------------------------------------------------------


def test_real_urban_ground_truth_by_declaration(shared_data: Path) -> None:
    """The real end4 ground truth through a hand-written declaration equals the urban preset."""
    entry = {
        "reader": "mat",
        "path": str(shared_data / "urban"),
        "options": {
            "cube": {
                "file": "end4_groundTruth.mat",
                "variable": "M",
                "mix_abundances": True,
                "layout": "bands_pixels",
                "rows": "nRow",
                "cols": "nCol",
            },
            "labels": {"variable": "A", "kind": "abundances", "names_variable": "cood"},
        },
    }
    scene = load_dataset("u", entry, shared_data)
    assert scene.stand_in and scene.cube.shape == (307, 307, 162)
    assert np.bincount(scene.labels.ravel()).tolist() == [0, 29954, 32328, 24805, 7162]
    labels, names = read_ground_truth("urban", shared_data / "urban")
    np.testing.assert_array_equal(scene.labels, labels)
    assert scene.class_names == names == ("Asphalt Road", "Grass", "Tree", "Roof")


def test_real_salinas_a_by_declaration(shared_data: Path) -> None:
    entry = {
        "reader": "mat",
        "path": str(shared_data / "salinas_a"),
        "options": {
            "cube": {"file": "SalinasA_corrected.mat", "variable": "salinasA_corrected"},
            "labels": {"file": "SalinasA_gt.mat", "variable": "salinasA_gt", "ids": [1, 10, 11, 12, 13, 14]},
        },
    }
    generic = load_dataset("sa", entry, shared_data)
    preset = load_dataset("sa", {"reader": "salinas_a", "path": "salinas_a"}, shared_data)
    np.testing.assert_array_equal(generic.cube, preset.cube)
    np.testing.assert_array_equal(generic.labels, preset.labels)
    assert np.bincount(generic.labels.ravel()).tolist() == [1790, 391, 1343, 616, 1525, 674, 799]
    assert "5348 of 7138 px labelled" in inspect_dataset(
        "sa", {"reader": "salinas_a", "path": "salinas_a"}, shared_data
    )


def test_real_sentinel2_stack_by_declaration(shared_data: Path) -> None:
    """A (time, rows, cols, bands) .npy stack and a sparse-id (rows, cols, 1) land-cover mask."""
    entry = {
        "reader": "npy",
        "path": str(shared_data / "s2_eopatch"),
        "options": {
            "cube": {"file": "REFERENCE_SCENES.npy", "index": [2]},
            "labels": {"file": "TestEOPatch/mask_timeless/LULC.npy", "ids": [1, 2, 3, 4, 8]},
        },
    }
    scene = load_dataset("s2", entry, shared_data)
    assert scene.cube.shape == (101, 100, 13)
    assert np.bincount(scene.labels.ravel()).tolist() == [155, 11, 7601, 1777, 358, 198]
    assert scene.notes["label_map"] == "1->1, 2->2, 3->3, 4->4, 8->5"
