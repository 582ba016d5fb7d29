"""ISPRS Vaihingen loader, patch cutting, the patch HDF5 file, augmentation, and bad input.

Fixtures: tests/data/vaihingen/ (written by tests/data/make_vaihingen_fixtures.py in the real
file format; 68x76 px tiles 1, 3 (train), 30 (val), 15 (test); marker pixel (1, 2)).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tifffile
import yaml

from rstransfer.core.config import validate
from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from rstransfer.studies.segmentation import data as vh
from rstransfer.studies.segmentation import patches as vp
from rstransfer.studies.segmentation import settings as vs

FIXTURES = Path(__file__).resolve().parent / "data" / "vaihingen"
H, W = 68, 76
ISPRS_COLOURS = [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)]


def seg_config(root: Path, results: Path, **seg: Any) -> dict[str, Any]:
    """A validated config whose segmentation section reads the tiles under ``root``."""
    base = {
        "results": str(results),
        "datasets": {"synthetic_source": {"reader": "synthetic_source"}, "synthetic_target": {"reader": "synthetic_target"}},
        "segmentation": {
            "enabled": True,
            "image_dir": str(root / "top"),
            "label_dir": str(root / "gts"),
            "dsm_dir": str(root / "dsm"),
            "tiles": {"train": [1, 3], "val": [30], "test": [15]},
            "patch_size": 64,
            "overlap": 0.5,
            **seg,
        },
    }
    return validate(base)


@pytest.fixture
def source() -> vh.TileSource:
    return vh.TileSource(FIXTURES / "top", FIXTURES / "gts", FIXTURES / "dsm")


def test_fixture_checksums() -> None:
    for line in (FIXTURES / "CHECKSUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == digest, name


def test_read_tile_shape_dtype_ids_and_marker(source: vh.TileSource) -> None:
    tile = vh.read_tile(source, 1)
    assert tile.image.shape == (H, W, 3) and tile.image.dtype == np.uint8
    assert tile.mask is not None and tile.mask.shape == (H, W) and tile.mask.dtype == np.uint8
    assert set(np.unique(tile.mask)) == set(range(6))  # every class, ids 0..5 only
    assert tuple(tile.image[1, 2]) == (11, 22, 33)
    assert tile.mask[1, 2] == 4  # car, (255, 255, 0)
    assert tile.dsm is not None and tile.dsm.dtype == np.float32 and tile.dsm.shape == (H, W)
    assert tile.dsm[1, 2] == pytest.approx(271.25)


def test_dsm_channel_is_scaled_per_tile(source: vh.TileSource) -> None:
    tile = vh.read_tile(source, 3)
    channels = tile.channels()
    assert channels.shape == (H, W, 4) and channels.dtype == np.uint8
    np.testing.assert_array_equal(channels[..., :3], tile.image)
    assert channels[..., 3].min() == 0 and channels[..., 3].max() == 255
    no_dsm = vh.read_tile(vh.TileSource(source.image_dir, source.label_dir, None), 3)
    assert no_dsm.dsm is None and no_dsm.channels().shape == (H, W, 3)


def test_label_colours_map_to_class_ids_in_order() -> None:
    rgb = np.array([ISPRS_COLOURS], dtype=np.uint8)
    np.testing.assert_array_equal(vh.decode_labels(rgb), [[0, 1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(vh.encode_labels(np.arange(6, dtype=np.uint8)[None]), rgb)
    assert vh.CLASSES == ("impervious", "building", "low_vegetation", "tree", "car", "clutter")


def test_unknown_colour_names_file_colour_and_count() -> None:
    rgb = np.full((4, 5, 3), 255, dtype=np.uint8)
    rgb[0, :3] = (0, 0, 0)
    rgb[1, 0] = (7, 8, 9)
    with pytest.raises(DataFormatError) as info:
        vh.decode_labels(rgb, "gts/x.tif")
    msg = str(info.value)
    assert "gts/x.tif" in msg and "(0, 0, 0) in 3 pixels" in msg and "2 unknown colour(s), 4 pixels in all" in msg
    assert "\n" not in msg


def test_grid_covers_the_tile_with_a_flush_last_window() -> None:
    origins = vh.grid_origins((H, W), 32, 0.5)
    rows, cols = sorted(set(origins[:, 0])), sorted(set(origins[:, 1]))
    assert rows == [0, 16, 32, 36] and cols == [0, 16, 32, 44]
    assert vh.stride_for(256, 0.6) == 102
    covered = np.zeros((H, W), dtype=bool)
    for r, c in origins:
        covered[r : r + 32, c : c + 32] = True
    assert covered.all()
    with pytest.raises(ConfigError, match=r"segmentation.patch_size: 96 px patches do not fit"):
        vh.grid_origins((H, W), 96, 0.5)


def test_cut_patches_equals_slicing(source: vh.TileSource) -> None:
    tile = vh.read_tile(source, 1)
    origins = vh.grid_origins(tile.shape, 32, 0.25)
    images = vh.cut_patches(tile.channels(), origins, 32)
    masks = vh.cut_patches(tile.mask, origins, 32)
    assert images.shape == (len(origins), 32, 32, 4) and masks.shape == (len(origins), 32, 32)
    for i, (r, c) in enumerate(origins):
        np.testing.assert_array_equal(images[i], tile.channels()[r : r + 32, c : c + 32])
        np.testing.assert_array_equal(masks[i], tile.mask[r : r + 32, c : c + 32])


def test_prepare_writes_chunked_compressed_patches_with_origins_and_config(tmp_path: Path, source: vh.TileSource) -> None:
    cfg = seg_config(FIXTURES, tmp_path / "results", dsm=True)
    outs = {"train": tmp_path / "train.hdf5", "val": tmp_path / "val.hdf5"}
    summary = vp.prepare_vaihingen(cfg, outs)
    assert summary["stride"] == 32 and summary["channels"] == 4
    with h5py.File(outs["train"], "r") as f:
        images, masks, origins = f["images"], f["masks"], f["origins"]
        assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 4)
        assert images.chunks == (1, 64, 64, 4) and images.compression == "gzip"
        assert masks.chunks == (1, 64, 64) and masks.compression == "gzip"
        assert images.shape[0] == masks.shape[0] == origins.shape[0] == 8  # 2 x 2 windows per tile
        assert set(origins[:, 0]) == {1, 3}
        assert json.loads(f.attrs["config"])["segmentation"] == cfg["segmentation"]
        assert json.loads(f.attrs["class_names"]) == list(vh.CLASSES)
        assert f.attrs["split"] == "train"
        masks_all, images_all, origins_all = masks[...], images[...], origins[...]
    assert masks_all.max() <= 5
    for i, (n, r, c) in enumerate(origins_all):
        tile = vh.read_tile(source, int(n))
        np.testing.assert_array_equal(masks_all[i], tile.mask[r : r + 64, c : c + 64])
        np.testing.assert_array_equal(images_all[i], tile.channels()[r : r + 64, c : c + 64])
    val = vp.load_patches(outs["val"])
    assert len(val) == 4 and set(val.origins[:, 0]) == {30} and val.input_shape == (64, 64, 4)
    shard = vp.load_patches(outs["train"], shard=(2, 1))
    np.testing.assert_array_equal(shard.origins, origins_all[1::2])


def _dihedral_variants(a: np.ndarray) -> list[np.ndarray]:
    out = []
    for k in range(4):
        r = np.rot90(a, k, axes=(0, 1))
        out += [r, r[:, ::-1]]
    return out


def test_augmentation_in_tf_data_applies_one_transform_to_image_and_mask() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    masks = rng.integers(0, 6, (6, 32, 32), dtype=np.uint8)
    patches = vp.PatchSet(images, masks, np.zeros((6, 3), np.int32), {"class_names": json.dumps(list(vh.CLASSES))})
    plain = [x for x, _ in vp.patch_dataset(patches, 6).unbatch().as_numpy_iterator()]
    np.testing.assert_allclose(plain[0], vp.normalize(images[0]))
    seen = set()
    for x, y in vp.patch_dataset(patches, 3, augment=True, seed=1, steps_per_epoch=2).take(8).unbatch():
        x, y = x.numpy(), y.numpy()
        i = next(i for i in range(6) if any(np.array_equal(v, y) for v in _dihedral_variants(masks[i].astype(np.int32))))
        xs, ys = _dihedral_variants(vp.normalize(images[i])), _dihedral_variants(masks[i].astype(np.int32))
        k = next(k for k in range(8) if np.allclose(xs[k], x))
        np.testing.assert_array_equal(ys[k], y)  # the mask got the image's transform
        seen.add(k)
    assert len(seen) > 2  # rotations and flips actually happen
    # epoch-structured: the same (seed, epoch) gives the same batches (resume-safe)
    a = next(iter(vp.patch_dataset(patches, 3, augment=True, seed=1, steps_per_epoch=2, first_epoch=1)))
    b = list(vp.patch_dataset(patches, 3, augment=True, seed=1, steps_per_epoch=2).take(3))[2]
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())


def test_synthetic_tiles_are_deterministic_and_in_the_isprs_format(tmp_path: Path) -> None:
    from rstransfer.studies.segmentation.synthetic import write_synthetic_tiles

    a = write_synthetic_tiles(tmp_path / "a", [1, 15], 64, 80, seed=3)
    b = write_synthetic_tiles(tmp_path / "b", [1, 15], 64, 80, seed=3)
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
    tile = vh.read_tile(vh.TileSource(tmp_path / "a" / "top", tmp_path / "a" / "gts", tmp_path / "a" / "dsm"), 15)
    assert tile.image.dtype == np.uint8 and tile.image.shape[2] == 3 and tile.dsm is not None
    assert len(np.unique(tile.mask)) >= 4


def test_config_rejects_tiles_in_two_splits(tmp_path: Path) -> None:
    tiles = {"train": [1, 3], "val": [3], "test": [15]}
    with pytest.raises(ConfigError, match="tile 3 is in both train and val"):
        vs.check_tiles({"segmentation": {"tiles": tiles}})
    # the study's cross-key check runs when the config is validated (CLI and Snakefile alike)
    with pytest.raises(ConfigError, match="segmentation.tiles: tile 3 is in both train and val"):
        seg_config(FIXTURES, tmp_path, tiles=tiles)


def test_missing_tile_is_dataset_not_found(source: vh.TileSource) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"tile 99 \(segmentation.tiles.test\): image file .*area99.tif not found"):
        source.check_exists([15, 99], "test")


def test_missing_folder_config_names_the_key(tmp_path: Path) -> None:
    cfg = seg_config(FIXTURES, tmp_path, image_dir="")
    with pytest.raises(ConfigError, match="segmentation.image_dir: empty"):
        vh.TileSource.from_config(cfg)


# ---------------------------------------------------------------------------------------------
# bad input through the CLI: exit 2, one line, no output and no temporary file


@pytest.fixture
def bad_tiles(tmp_path: Path) -> Path:
    root = tmp_path / "tiles"
    shutil.copytree(FIXTURES, root)
    return root


@pytest.fixture
def prepare_cli(tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]) -> Callable[..., tuple[int, str, Path]]:
    """``rstransfer prepare --study segmentation --out <folder>/prepare``; returns the folder
    that holds the run folder (and its ``.prepare.staging`` sibling while the step runs)."""

    def run(root: Path, **seg: Any) -> tuple[int, str, Path]:
        cfg = seg_config(root, tmp_path / "results", **seg)
        path = tmp_path / "seg.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        rc, _, stderr = run_cli("prepare", "--study", "segmentation", "--config", path, "--out", out / "prepare")
        return rc, stderr, out

    return run


def test_cli_prepare_writes_the_run_folder(
    tmp_path: Path, prepare_cli: Callable[..., tuple[int, str, Path]], run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    """The good case of the fixture above: the run folder holds both patch files, nothing else
    is left beside it (the staging folder became the run folder by one rename)."""
    rc, stderr, out = prepare_cli(FIXTURES)
    assert rc == 0, stderr
    assert [p.name for p in out.iterdir()] == ["prepare"]
    assert sorted(p.name for p in (out / "prepare").iterdir()) == ["vaihingen_train.hdf5", "vaihingen_val.hdf5"]
    assert len(vp.load_patches(out / "prepare" / "vaihingen_train.hdf5")) == 8
    assert len(vp.load_patches(out / "prepare" / "vaihingen_val.hdf5")) == 4


def _assert_clean_failure(rc: int, stderr: str, out: Path, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert rc == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("rstransfer: error: "), stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert list(out.iterdir()) == []  # neither the run folder nor its staging folder nor a temporary file


def test_cli_size_mismatch(bad_tiles: Path, prepare_cli: Callable[..., tuple[int, str, Path]]) -> None:
    label = bad_tiles / "gts" / "top_mosaic_09cm_area30.tif"
    tifffile.imwrite(label, tifffile.imread(label)[:60], photometric="rgb")
    rc, stderr, out = prepare_cli(bad_tiles)
    _assert_clean_failure(rc, stderr, out, str(label), "60x76", "68x76")


def test_cli_unknown_label_colour(bad_tiles: Path, prepare_cli: Callable[..., tuple[int, str, Path]]) -> None:
    label = bad_tiles / "gts" / "top_mosaic_09cm_area3.tif"
    rgb = tifffile.imread(label)
    rgb[10:12, 10:15] = (12, 34, 56)
    tifffile.imwrite(label, rgb, photometric="rgb")
    rc, stderr, out = prepare_cli(bad_tiles)
    _assert_clean_failure(rc, stderr, out, str(label), "(12, 34, 56)", "10 pixels")


def test_cli_missing_tile_number(bad_tiles: Path, prepare_cli: Callable[..., tuple[int, str, Path]]) -> None:
    rc, stderr, out = prepare_cli(bad_tiles, tiles={"train": [1, 99], "val": [30], "test": [15]})
    _assert_clean_failure(rc, stderr, out, "tile 99", "segmentation.tiles.train", "top_mosaic_09cm_area99.tif")


def test_cli_patch_larger_than_tile(bad_tiles: Path, prepare_cli: Callable[..., tuple[int, str, Path]]) -> None:
    rc, stderr, out = prepare_cli(bad_tiles, patch_size=96)
    _assert_clean_failure(rc, stderr, out, "segmentation.patch_size", "96 px", "tile 1", "68x76")


def test_cli_corrupt_tiff(bad_tiles: Path, prepare_cli: Callable[..., tuple[int, str, Path]]) -> None:
    image = bad_tiles / "top" / "top_mosaic_09cm_area30.tif"
    image.write_bytes(image.read_bytes()[:200])
    rc, stderr, out = prepare_cli(bad_tiles)
    _assert_clean_failure(rc, stderr, out, str(image), "not a readable TIFF")


def test_cli_not_a_tiff_at_all(bad_tiles: Path, prepare_cli: Callable[..., tuple[int, str, Path]]) -> None:
    label = bad_tiles / "gts" / "top_mosaic_09cm_area1.tif"
    label.write_text("this is not a TIFF\n")
    rc, stderr, out = prepare_cli(bad_tiles)
    _assert_clean_failure(rc, stderr, out, str(label), "not a readable TIFF")
