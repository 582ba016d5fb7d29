"""Tests for rstransfer.data.readers and rstransfer.data.matfile.

Three groups: the committed fixtures in tests/data (real layouts, seeded cubes, crops of the real
GT maps; see tests/data/make_fixtures.py), the real files in ../shared/data (skipped when absent),
and bad input, where every error must be one line that says what to fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io as sio

from rstransfer.data import readers
from rstransfer.data.matfile import column_major_cube, column_major_map, find_variable, load_mat
from rstransfer.data.readers import READERS, download, get_reader, load_dataset, read_ground_truth
from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError

FIXTURES = Path(__file__).resolve().parent / "data"
MARKER = 1000  # make_fixtures.py: cube[1, 2, b] == MARKER + b in every fixture cube


def shared_data(*parts: str) -> Path:
    """A path in the real data folder, or skip the test when it is not there."""
    env = os.environ.get("RSTRANSFER_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (set RSTRANSFER_SHARED_DATA to the shared/data folder)")
    return path


@contextlib.contextmanager
def one_line_error(exc_type: type[BaseException], match: str) -> Iterator[None]:
    """``pytest.raises`` that also requires a single-line message."""
    with pytest.raises(exc_type, match=match) as info:
        yield
    assert "\n" not in str(info.value), str(info.value)


def copy_fixture(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest)
    return dest


# ------------------------------------------------------------------------------------------
# fixtures in the real layouts
# ------------------------------------------------------------------------------------------

# reader, folder, options, cube shape, classes, labelled px, {(row, col): label}, marker band offset
Case = tuple[str, str, dict[str, Any], tuple[int, int, int], int, int, dict[tuple[int, int], int], int]
FIXTURE_CASES: list[Case] = [
    ("indian_pines", "indian_pines", {}, (20, 24, 200), 16, 297, {(1, 2): 3, (10, 20): 12, (19, 3): 0}, 0),
    ("indian_pines", "indian_pines_v73", {}, (20, 24, 200), 16, 297, {(1, 2): 3, (10, 20): 12, (19, 3): 0}, 0),
    ("paviau", "paviau", {}, (20, 24, 103), 9, 72, {(1, 2): 0}, 0),
    ("salinas", "salinas", {}, (20, 24, 204), 16, 314, {(1, 2): 15, (10, 20): 4}, 0),
    # Salinas ids 12 and 14 become 4 and 6.
    ("salinas_a", "salinas_a", {}, (20, 24, 204), 6, 333, {(1, 2): 4, (10, 20): 6}, 0),
    # Column-major: (8, 7) is pixel 8 + 7*14 = 106, the crop's only Roof pixel.
    ("urban", "urban", {}, (14, 12, 210), 4, 168, {(8, 7): 4, (10, 3): 1, (1, 2): 2}, 0),
    ("urban", "urban_v73", {}, (14, 12, 210), 4, 168, {(8, 7): 4, (10, 3): 1, (1, 2): 2}, 0),
    # R162 starts at HYDICE band 5, so its band 0 is F210 band 4.
    ("urban", "urban", {"cube_file": "Urban_R162.mat"}, (14, 12, 162), 4, 168, {(8, 7): 4}, 4),
    # Top abundances: (1, 2) 0.56 kept, (10, 3) 0.47 and (8, 7) 0.35 dropped.
    ("urban", "urban", {"purity": 0.5}, (14, 12, 210), 4, 125, {(1, 2): 2, (10, 3): 0, (8, 7): 0}, 0),
    ("urban", "urban", {"endmembers": 6}, (14, 12, 210), 6, 168, {}, 0),
]


@pytest.mark.parametrize(
    ("reader", "folder", "options", "shape", "n_classes", "n_labelled", "pixels", "offset"),
    FIXTURE_CASES,
    ids=[f"{c[1]}{'-' + '-'.join(f'{k}={v}' for k, v in c[2].items()) if c[2] else ''}" for c in FIXTURE_CASES],
)
def test_reader_on_fixture(
    reader: str,
    folder: str,
    options: dict[str, Any],
    shape: tuple[int, int, int],
    n_classes: int,
    n_labelled: int,
    pixels: dict[tuple[int, int], int],
    offset: int,
) -> None:
    scene = READERS[reader](FIXTURES / folder, **options)
    assert scene.cube.shape == shape
    assert scene.cube.dtype == np.float32
    assert scene.labels.dtype == np.int32
    assert scene.labels.shape == shape[:2]
    assert scene.n_classes == n_classes == len(scene.class_names)
    assert 0 <= scene.labels.min() and scene.labels.max() <= n_classes
    assert int((scene.labels > 0).sum()) == n_labelled
    for (r, c), label in pixels.items():
        assert scene.labels[r, c] == label, (r, c)
    # The marker ramp sits at (1, 2) only if rows, columns and bands all landed where they belong.
    np.testing.assert_array_equal(scene.cube[1, 2, :5], MARKER + offset + np.arange(5))
    assert scene.cube[2, 1, 0] < MARKER and scene.cube[1, 2, 0] != scene.cube[2, 1, 0]
    assert not scene.stand_in


def test_class_names() -> None:
    ip = READERS["indian_pines"](FIXTURES / "indian_pines")
    assert ip.class_names[:2] == ("Alfalfa", "Corn-notill") and ip.class_names[-1] == "Stone-Steel-Towers"
    pu = READERS["paviau"](FIXTURES / "paviau")
    assert pu.class_names == (
        "Asphalt", "Meadows", "Gravel", "Trees", "Painted metal sheets",
        "Bare Soil", "Bitumen", "Self-Blocking Bricks", "Shadows",
    )  # fmt: skip
    sa = READERS["salinas_a"](FIXTURES / "salinas_a")
    assert sa.class_names == (
        "Brocoli_green_weeds_1", "Corn_senesced_green_weeds", "Lettuce_romaine_4wk",
        "Lettuce_romaine_5wk", "Lettuce_romaine_6wk", "Lettuce_romaine_7wk",
    )  # fmt: skip
    assert sa.notes["original_ids"] == "1,10,11,12,13,14"
    urban = READERS["urban"](FIXTURES / "urban")
    assert urban.class_names == ("Asphalt Road", "Grass", "Tree", "Roof")
    assert READERS["urban"](FIXTURES / "urban", endmembers=6).class_names[-2:] == ("Metal", "Dirt")


def test_urban_rebuilt_on_fixture() -> None:
    scene = READERS["urban_rebuilt"](FIXTURES / "urban")
    assert scene.cube.shape == (14, 12, 162) and scene.cube.dtype == np.float32
    assert scene.stand_in and "rebuilt from the real Urban endmembers" in scene.notes["stand_in"]
    raw = sio.loadmat(FIXTURES / "urban" / "end4_groundTruth.mat")
    # Pixel (row 1, col 2) is MATLAB column 1 + 2 * nRow of A.
    np.testing.assert_allclose(scene.cube[1, 2], raw["M"] @ raw["A"][:, 1 + 2 * 14], rtol=1e-6)
    np.testing.assert_array_equal(scene.labels, READERS["urban"](FIXTURES / "urban").labels)


@pytest.mark.parametrize("name", ["indian_pines", "salinas_a", "urban"])
def test_read_ground_truth_matches_reader(name: str) -> None:
    labels, names = read_ground_truth(name, FIXTURES / name)
    scene = READERS[name](FIXTURES / name)
    np.testing.assert_array_equal(labels, scene.labels)
    assert names == scene.class_names


@pytest.mark.parametrize("reader", ["indian_pines", "urban"])
def test_v5_and_v73_read_identically(reader: str) -> None:
    v5, v73 = reader, f"{reader}_v73"
    for path in (FIXTURES / v73).glob("*.mat"):
        assert path.read_bytes()[:10] == b"MATLAB 7.3"
        a, b = load_mat(FIXTURES / v5 / path.name), load_mat(path)
        assert set(b) <= set(a)
        for key, value in b.items():
            if value.dtype == object:  # cells: compare decoded strings
                assert [x.tolist() for x in value.ravel()] == [x.tolist() for x in a[key].ravel()]
            else:
                assert value.dtype == a[key].dtype and value.shape == a[key].shape, key
                np.testing.assert_array_equal(value, a[key])
    s5, s73 = READERS[reader](FIXTURES / v5), READERS[reader](FIXTURES / v73)
    np.testing.assert_array_equal(s5.cube, s73.cube)
    np.testing.assert_array_equal(s5.labels, s73.labels)
    assert s5.class_names == s73.class_names


def test_load_dataset_on_fixture() -> None:
    entry = {"reader": "salinas_a", "path": "salinas_a", "class_names": list("ABCDEF")}
    scene = load_dataset("sa", entry, FIXTURES)
    assert scene.name == "sa" and scene.class_names == tuple("ABCDEF")
    assert scene.cube.dtype == np.float32 and scene.labels.dtype == np.int32
    absolute = load_dataset("ip", {"reader": "indian_pines", "path": str(FIXTURES / "indian_pines")}, Path("/nowhere"))
    assert absolute.cube.shape == (20, 24, 200)


@pytest.mark.parametrize("key", ["synthetic_source", "synthetic_target"])
def test_synthetic_entries(key: str) -> None:
    scene = load_dataset(key, {"reader": key, "options": {"size": 16}}, FIXTURES)
    assert scene.name == key and scene.cube.dtype == np.float32 and scene.cube.shape[:2] == (16, 16)


def test_fixture_checksums() -> None:
    lines = (FIXTURES / "CHECKSUMS").read_text().split("\n")
    entries = [line.split("  ", 1) for line in lines if line]
    assert len(entries) == 17
    for digest, rel in entries:
        actual = hashlib.sha256((FIXTURES / rel).read_bytes()).hexdigest()
        assert actual == digest, f"{rel} changed: rerun tests/data/make_fixtures.py and commit"


def test_column_major_helpers() -> None:
    # MATLAB: Y(b, p) with p = r + c*nRow (0-based) is pixel (r, c) of band b.
    Y = np.arange(2 * 6).reshape(2, 6)
    cube = column_major_cube(Y, 2, 3)
    assert cube.shape == (2, 3, 2)
    for r in range(2):
        for c in range(3):
            np.testing.assert_array_equal(cube[r, c], Y[:, r + c * 2])
    np.testing.assert_array_equal(column_major_map(np.arange(6), 2, 3), [[0, 2, 4], [1, 3, 5]])
    with one_line_error(DataFormatError, r"expected \(bands, 4\*3=12\)"):
        column_major_cube(Y, 4, 3)


def test_find_variable_fallback(tmp_path: Path) -> None:
    path = tmp_path / "renamed.mat"
    sio.savemat(path, {"indian_pines": np.ones((3, 4, 5)), "n": 1})
    assert find_variable(load_mat(path), path, "indian_pines_corrected", 3, "cube").shape == (3, 4, 5)
    sio.savemat(path, {"a": np.ones((3, 4, 5)), "b": np.ones((3, 4, 5))})
    with one_line_error(DataFormatError, r"cube not found: expected variable 'indian_pines_corrected'.*2 \(a, b\)"):
        find_variable(load_mat(path), path, "indian_pines_corrected", 3, "cube")
    sio.savemat(path, {"indian_pines_corrected": np.ones((3, 4))})
    with one_line_error(DataFormatError, r"'indian_pines_corrected' \(cube\) should be a 3-D numeric array"):
        find_variable(load_mat(path), path, "indian_pines_corrected", 3, "cube")


# ------------------------------------------------------------------------------------------
# real files (../shared/data); skipped when absent
# ------------------------------------------------------------------------------------------


def test_real_indian_pines_gt() -> None:
    labels, names = read_ground_truth("indian_pines", shared_data("indian_pines", "Indian_pines_gt.mat").parent)
    assert labels.shape == (145, 145) and len(names) == 16
    assert int((labels > 0).sum()) == 10249
    counts = [46, 1428, 830, 237, 483, 730, 28, 478, 20, 972, 2455, 593, 205, 1265, 386, 93]
    assert np.bincount(labels.ravel(), minlength=17)[1:].tolist() == counts


@pytest.mark.parametrize(
    ("name", "file", "shape", "n_classes", "n_labelled"),
    [
        ("paviau", "PaviaU_gt.mat", (610, 340), 9, 42776),
        ("salinas", "Salinas_gt.mat", (512, 217), 16, 54129),
        ("salinas_a", "SalinasA_gt.mat", (83, 86), 6, 5348),
    ],
)
def test_real_ground_truth(name: str, file: str, shape: tuple[int, int], n_classes: int, n_labelled: int) -> None:
    labels, names = read_ground_truth(name, shared_data(name, file).parent)
    assert labels.shape == shape and len(names) == n_classes
    assert int((labels > 0).sum()) == n_labelled
    assert set(np.unique(labels).tolist()) == set(range(n_classes + 1))


def test_real_salinas_a_cube() -> None:
    folder = shared_data("salinas_a", "SalinasA_corrected.mat").parent
    scene = load_dataset("salinas_a", {"reader": "salinas_a", "path": str(folder)}, Path("."))
    assert scene.cube.shape == (83, 86, 204) and scene.cube.dtype == np.float32
    assert scene.cube.min() == -9 and scene.cube.max() == 8373
    assert int((scene.labels > 0).sum()) == 5348 and scene.n_classes == 6
    assert np.bincount(scene.labels.ravel()).tolist() == [1790, 391, 1343, 616, 1525, 674, 799]


def test_real_urban_argmax_and_purity() -> None:
    folder = shared_data("urban", "end4_groundTruth.mat").parent
    labels, names = read_ground_truth("urban", folder)
    assert labels.shape == (307, 307)
    assert names == ("Asphalt Road", "Grass", "Tree", "Roof")
    assert np.bincount(labels.ravel()).tolist() == [0, 29954, 32328, 24805, 7162]
    pure, _ = read_ground_truth("urban", folder, purity=0.5)
    assert int((pure > 0).sum()) == 83704


def test_real_urban_rebuilt() -> None:
    folder = shared_data("urban", "end4_groundTruth.mat").parent
    scene = load_dataset("urban_rebuilt", {"reader": "urban_rebuilt", "path": str(folder)}, Path("."))
    assert scene.cube.shape == (307, 307, 162) and scene.stand_in
    raw = sio.loadmat(folder / "end4_groundTruth.mat")
    np.testing.assert_allclose(scene.cube[1, 2], raw["M"] @ raw["A"][:, 1 + 2 * 307], rtol=1e-5)


# ------------------------------------------------------------------------------------------
# bad input: one-line messages that say what to fix
# ------------------------------------------------------------------------------------------

IP = {"reader": "indian_pines", "path": "indian_pines"}


@pytest.mark.parametrize("folder", ["indian_pines", "indian_pines_v73"])
def test_truncated_mat(tmp_path: Path, folder: str) -> None:
    root = copy_fixture(folder, tmp_path)
    cube = root / "Indian_pines_corrected.mat"
    data = cube.read_bytes()
    cube.write_bytes(data[: len(data) // 2])
    msg = r"Indian_pines_corrected\.mat: not a readable MAT file \(truncated or corrupt\): "
    with one_line_error(DataFormatError, msg):
        load_dataset("indian_pines", {**IP, "path": folder}, tmp_path)


@pytest.mark.parametrize("content", [b"", b"garbage! " * 200, b"MATLAB 5.0 MAT-file" + bytes(range(256)) * 4])
def test_garbage_mat(tmp_path: Path, content: bytes) -> None:
    root = copy_fixture("indian_pines", tmp_path)
    (root / "Indian_pines_gt.mat").write_bytes(content)
    with one_line_error(DataFormatError, r"Indian_pines_gt\.mat: not a readable MAT file \(truncated or corrupt\)"):
        load_dataset("indian_pines", IP, tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with one_line_error(
        DatasetNotFoundError,
        r"dataset 'ip' \(reader indian_pines\) not found: folder .*nope does not exist; "
        r"expected files: Indian_pines_corrected\.mat \(variable indian_pines_corrected\), "
        r"Indian_pines_gt\.mat \(variable indian_pines_gt\).*set datasets\.ip\.path in config\.yaml",
    ):
        load_dataset("ip", {**IP, "path": "nope"}, tmp_path)
    with pytest.raises(FileNotFoundError):  # DatasetNotFoundError is also a FileNotFoundError
        load_dataset("ip", {**IP, "path": "nope"}, tmp_path)


def test_missing_file_and_missing_path(tmp_path: Path) -> None:
    root = copy_fixture("indian_pines", tmp_path)
    (root / "Indian_pines_corrected.mat").unlink()
    msg = r"Indian_pines_corrected\.mat not found in .*datasets\.indian_pines\.path"
    with one_line_error(DatasetNotFoundError, msg):
        load_dataset("indian_pines", IP, tmp_path)
    with one_line_error(DatasetNotFoundError, r"no folder given.*datasets\.ip\.path"):
        load_dataset("ip", {"reader": "indian_pines"}, tmp_path)
    with one_line_error(DatasetNotFoundError, r"end4_groundTruth\.mat not found"):
        read_ground_truth("urban", tmp_path)


def test_cube_gt_shape_mismatch(tmp_path: Path) -> None:
    root = copy_fixture("indian_pines", tmp_path)
    gt = sio.loadmat(root / "Indian_pines_gt.mat")["indian_pines_gt"]
    sio.savemat(root / "Indian_pines_gt.mat", {"indian_pines_gt": gt[:19]})
    with one_line_error(DataFormatError, r"cube/GT shape mismatch: cube is 20x24, ground truth is 19x24"):
        load_dataset("indian_pines", IP, tmp_path)


def test_nan_in_band(tmp_path: Path) -> None:
    root = copy_fixture("indian_pines", tmp_path)
    cube = sio.loadmat(root / "Indian_pines_corrected.mat")["indian_pines_corrected"].astype(np.float64)
    cube[3, 4, 7] = np.nan
    sio.savemat(root / "Indian_pines_corrected.mat", {"indian_pines_corrected": cube})
    with one_line_error(DataFormatError, r"Indian_pines_corrected\.mat: NaN or Inf in 1 values, bands \[7\]"):
        load_dataset("indian_pines", IP, tmp_path)


def test_label_outside_class_list(tmp_path: Path) -> None:
    root = copy_fixture("indian_pines", tmp_path)
    gt = sio.loadmat(root / "Indian_pines_gt.mat")["indian_pines_gt"]
    gt[0, 0] = 17
    sio.savemat(root / "Indian_pines_gt.mat", {"indian_pines_gt": gt})
    with one_line_error(DataFormatError, r"label\(s\) \[17\] outside the class list \(0 = unlabelled, 1\.\.16"):
        load_dataset("indian_pines", IP, tmp_path)
    # Salinas-A ids are remapped, so an id outside {1, 10..14} is caught by the reader itself.
    root = copy_fixture("salinas_a", tmp_path)
    gt = sio.loadmat(root / "SalinasA_gt.mat")["salinasA_gt"]
    gt[0, 0] = 5
    sio.savemat(root / "SalinasA_gt.mat", {"salinasA_gt": gt})
    with one_line_error(DataFormatError, r"SalinasA_gt\.mat: label\(s\) \[5\] outside the class list"):
        load_dataset("salinas_a", {"reader": "salinas_a", "path": "salinas_a"}, tmp_path)


def test_unknown_reader() -> None:
    msg = r"datasets\.mystery\.reader: unknown reader 'hdf9'; valid readers: indian_pines, paviau"
    with one_line_error(ConfigError, msg):
        load_dataset("mystery", {"reader": "hdf9", "path": "x"}, FIXTURES)
    with pytest.raises(KeyError, match="valid readers: indian_pines"):
        get_reader("hdf9")
    with pytest.raises(KeyError, match="no ground-truth reader 'synthetic_source'"):
        read_ground_truth("synthetic_source", FIXTURES)
    assert get_reader("urban") is readers.read_urban


def test_bad_options_and_class_names() -> None:
    msg = r"datasets\.ip\.options: unknown option\(s\) \['purity'\] for reader indian_pines"
    with one_line_error(ConfigError, msg):
        load_dataset("ip", {**IP, "options": {"purity": 0.5}}, FIXTURES)
    with one_line_error(ConfigError, r"datasets\.u\.options: option endmembers=7: must be one of \[4, 5, 6\]"):
        load_dataset("u", {"reader": "urban", "path": "urban", "options": {"endmembers": 7}}, FIXTURES)
    with one_line_error(ConfigError, r"datasets\.u\.options: option cube_file='Urban\.mat'"):
        load_dataset("u", {"reader": "urban", "path": "urban", "options": {"cube_file": "Urban.mat"}}, FIXTURES)
    with one_line_error(ConfigError, r"datasets\.ip\.class_names: 2 names given, reader indian_pines has 16 classes"):
        load_dataset("ip", {**IP, "class_names": ["a", "b"]}, FIXTURES)


# ------------------------------------------------------------------------------------------
# download (opt-in; file:// URLs only here)
# ------------------------------------------------------------------------------------------


def test_download_good_and_bad_checksum(tmp_path: Path) -> None:
    src = tmp_path / "src" / "Indian_pines_gt.mat"
    src.parent.mkdir()
    shutil.copy(FIXTURES / "indian_pines" / "Indian_pines_gt.mat", src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()

    dest = tmp_path / "good"
    got = download({"url": src.as_uri(), "sha256": digest}, dest, key="ip")
    assert got == dest / "Indian_pines_gt.mat" and got.read_bytes() == src.read_bytes()

    bad = tmp_path / "bad"
    msg = r"dataset 'ip': .* has sha256 [0-9a-f]{64}, expected 0{64} \(datasets\.ip\.sha256\)"
    with one_line_error(DataFormatError, msg):
        download({"url": src.as_uri(), "sha256": "0" * 64}, bad, key="ip")
    assert not bad.exists() or list(bad.iterdir()) == []

    with one_line_error(ConfigError, r"datasets\.ip\.sha256: a 64-digit hex checksum is required"):
        download({"url": src.as_uri()}, bad, key="ip")
    with one_line_error(DatasetNotFoundError, r"could not download"):
        download({"url": (tmp_path / "absent.mat").as_uri(), "sha256": digest}, bad, key="ip")
    assert list(bad.iterdir()) == []
