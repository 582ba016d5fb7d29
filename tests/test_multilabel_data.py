"""UC Merced reader (real shared images and generated fixtures), the generated demo set, bad
input, and the DenseNet encoder builder."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from rstransfer.data.synthetic_scenes import CLASS_LABELS, write_synthetic_ucmerced
from rstransfer.data.ucmerced import CLASS_NAMES, LABEL_NAMES, load_ucmerced, read_multilabels, square_resize

pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")


def _real(shared_data: Path) -> tuple[Path, Path]:
    return shared_data / "ucmerced" / "Images", shared_data / "ucmerced_multilabel" / "multilabels" / "LandUse_Multilabeled.txt"


def test_real_images_and_labels(shared_data: Path) -> None:
    images, labels = _real(shared_data)
    s = load_ucmerced(images, labels, size=64)
    assert s.images.shape == (420, 64, 64, 3) and s.images.dtype == np.uint8
    assert s.classes == CLASS_NAMES and s.label_names == LABEL_NAMES
    assert s.multilabels.shape == (420, 17) and set(np.unique(s.multilabels)) == {0, 1}
    assert np.bincount(s.class_ids).tolist() == [20] * 21
    assert s.multilabels.sum(axis=1).min() >= 1  # every image has at least one label
    i = s.names.index("airplane00")
    assert s.class_ids[i] == CLASS_NAMES.index("airplane")
    assert s.multilabels[i, LABEL_NAMES.index("airplane")] == 1
    # every harbor image shows docks and ships; beach = sand + sea
    harbor = s.class_ids == CLASS_NAMES.index("harbor")
    assert s.multilabels[harbor][:, [LABEL_NAMES.index("dock"), LABEL_NAMES.index("ship")]].all()
    # the .txt (our choice), not the .mat: tenniscourt97 has no field there
    _, rows = read_multilabels(labels)
    assert len(rows) == 2100 and rows["tenniscourt97"][LABEL_NAMES.index("field")] == 0


def test_real_odd_sized_images_are_cropped_then_resized(shared_data: Path) -> None:
    import tifffile

    images, _ = _real(shared_data)
    raw = tifffile.imread(images / "tenniscourt" / "tenniscourt14.tif")
    assert raw.shape == (256, 247, 3)
    s = load_ucmerced(images, None, size=256, classes=["tenniscourt"], per_class=15)
    assert s.multilabels is None and s.images.shape == (15, 256, 256, 3)
    assert np.array_equal(s.images[0], tifffile.imread(images / "tenniscourt" / "tenniscourt00.tif"))  # 256x256 as is
    expected = square_resize(raw, 256)
    assert np.array_equal(s.images[14], expected)
    assert np.array_equal(square_resize(raw, 247), raw[4:251])  # the centred square


def test_generated_set_is_read_by_the_loader_and_deterministic(tmp_path: Path) -> None:
    d1, t1 = write_synthetic_ucmerced(tmp_path / "a", per_class=3, size=48)
    d2, t2 = write_synthetic_ucmerced(tmp_path / "b", per_class=3, size=48)
    assert sorted(p.name for p in d1.iterdir()) == sorted(CLASS_NAMES)
    for f in sorted(d1.rglob("*.tif")):
        assert hashlib.sha256(f.read_bytes()).digest() == hashlib.sha256((d2 / f.relative_to(d1)).read_bytes()).digest()
    assert t1.read_bytes() == t2.read_bytes() and t1.read_bytes().startswith(b"IMAGE\\LABEL\tairplane")
    s = load_ucmerced(d1, t1, size=48)
    assert s.images.shape == (63, 48, 48, 3) and s.multilabels.shape == (63, 17)
    # labels follow the class table: a label with probability 0 for a class never appears
    for i, name in enumerate(s.names):
        cls = s.classes[s.class_ids[i]]
        present = {LABEL_NAMES[j] for j in np.flatnonzero(s.multilabels[i])}
        assert present and present <= set(CLASS_LABELS[cls])
    # visibly different classes: sea (beach) is blue, field (agricultural) green-yellow
    beach = s.images[s.class_ids == CLASS_NAMES.index("beach")].reshape(-1, 3).mean(axis=0)
    agri = s.images[s.class_ids == CLASS_NAMES.index("agricultural")].reshape(-1, 3).mean(axis=0)
    assert beach[2] > agri[2] + 40 and agri[1] > agri[2] + 40


def _fixture(tmp_path: Path) -> tuple[Path, Path]:
    return write_synthetic_ucmerced(tmp_path / "ucm", per_class=2, size=40, classes=("airplane", "beach", "harbor"))


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    images, labels = _fixture(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="not found"):
        load_ucmerced(tmp_path / "nowhere", labels)
    with pytest.raises(ConfigError, match="unknown class name 'forest'"):
        load_ucmerced(images, labels, classes=["forest"])
    # missing label row
    text = labels.read_text().replace("beach01\t", "beachXX\t")
    broken = tmp_path / "labels.txt"
    broken.write_text(text)
    with pytest.raises(DataFormatError, match="no label row for image 'beach01'") as err:
        load_ucmerced(images, broken)
    assert "\n" not in str(err.value)
    broken.write_text(labels.read_text().replace("airplane00\t1", "airplane00\t7"))
    with pytest.raises(DataFormatError, match="0 or 1"):
        load_ucmerced(images, broken)
    broken.write_text("name\tx\n")
    with pytest.raises(DataFormatError, match="header"):
        load_ucmerced(images, broken)
    # unreadable TIFF
    (images / "beach" / "beach01.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(DataFormatError, match=r"beach01\.tif: unreadable TIFF"):
        load_ucmerced(images, labels)
    # a file that does not belong to its folder
    shutil.copy(images / "airplane" / "airplane00.tif", images / "harbor" / "forest03.tif")
    with pytest.raises(DataFormatError, match="does not match its class folder"):
        load_ucmerced(images, labels, classes=["harbor"])


def test_densenet121_matches_keras_applications() -> None:
    from rstransfer.core.keras import keras
    from rstransfer.models.densenet import build_densenet_encoder, feature_dim

    ours = build_densenet_encoder((64, 64, 3))
    ref = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg")
    # Keras 3 names (tf_keras writes conv1/conv for conv1_conv); the paddings are unnamed there
    named = [layer.name.replace("/", "_") for layer in ref.layers
             if "zero_padding" not in layer.name and "input" not in layer.name]
    assert [layer.name for layer in ours.layers if not layer.name.endswith("_pad") and layer.name != "image"] == named
    assert ours.count_params() == ref.count_params() == 7_037_504
    assert ours.output_shape == (None, 1024) == (None, feature_dim((6, 12, 24, 16)))
    tiny = build_densenet_encoder((32, 32, 3), blocks=(2, 2, 2, 2), pooling="max", name="tiny")
    assert tiny.output_shape == (None, feature_dim((2, 2, 2, 2))) and tiny.layers[-1].name == "max_pool"
    assert tiny.get_layer("conv5_block2_concat") is not None
    with pytest.raises(DatasetNotFoundError, match="nothing is downloaded"):
        build_densenet_encoder((64, 64, 3), weights="/nonexistent/densenet121_notop.h5")
    with pytest.raises(ConfigError, match="H, W >= 32"):
        build_densenet_encoder((16, 16, 3))


def test_imagenet_file_is_copied_layer_by_layer(tmp_path: Path) -> None:
    """A local no-top file (here: random weights saved by keras.applications' own DenseNet121)
    is loaded through keras.applications and copied into our layers by name."""
    from rstransfer.core.keras import keras
    from rstransfer.models.densenet import build_densenet_encoder

    ref = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(64, 64, 3))
    path = tmp_path / "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ref.save_weights(str(path))
    ours = build_densenet_encoder((64, 64, 3), weights=str(path))
    for layer in (layer for layer in ref.layers if layer.weights):
        for a, b in zip(layer.get_weights(), ours.get_layer(layer.name.replace("/", "_")).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="ImageNet weights need"):
        build_densenet_encoder((64, 64, 3), weights=str(path), blocks=(2, 2, 2, 2))


# ---------------------------------------------------------------- rstransfer download --study
def _archive(tmp_path: Path, members: dict[str, bytes]) -> tuple[Path, str]:
    import hashlib
    import zipfile

    path = tmp_path / "srv" / "UCMerced_LandUse.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_study_fetches_checks_and_unpacks_the_archive(tmp_path: Path, run_cli: Any) -> None:
    """The archive (a file:// URL here: tests never touch the network) lands where `images` expects it."""
    sample = b"II*\x00 stand-in bytes of one TIFF"
    archive, digest = _archive(tmp_path, {"UCMerced_LandUse/Images/agricultural/agricultural00.tif": sample})
    data_root = tmp_path / "data"
    from conftest import tiny_settings

    cfg = tiny_settings(tmp_path / "results", {"multilabel": {"archive": {"url": archive.as_uri(), "sha256": digest}}})
    cfg["data_root"] = str(data_root)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    rc, out, err = run_cli("download", "--config", tmp_path / "c.yaml", "--study", "multilabel")
    assert rc == 0, err
    assert (data_root / "UCMerced_LandUse/Images/agricultural/agricultural00.tif").read_bytes() == sample
    assert "unpacked UCMerced_LandUse" in out

    cfg["multilabel"]["archive"]["sha256"] = "0" * 64  # a tampered archive: nothing written
    cfg["data_root"] = str(tmp_path / "data2")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    rc, out, err = run_cli("download", "--config", tmp_path / "c.yaml", "--study", "multilabel")
    assert rc != 0 and "multilabel.archive.sha256" in err and err.strip().count("\n") == 0
    assert not any((tmp_path / "data2").rglob("*.tif"))


def test_an_archive_escaping_its_folder_is_refused(tmp_path: Path) -> None:
    from rstransfer.data.fetch import extract_zip

    archive, _ = _archive(tmp_path, {"ok.txt": b"x", "../../evil.txt": b"y"})
    with pytest.raises(DataFormatError, match="outside"):
        extract_zip(archive, tmp_path / "dest")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "dest" / "ok.txt").exists()
