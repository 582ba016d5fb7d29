"""The competition tasks ``hsi`` and ``vaihingen`` (the studies' ``board.py``): the participant's
side (a faked evaluated run folder -> ``Prediction``) and the organiser's (``truth`` from a real
prepare run on the synthetic demo data, no TensorFlow; ``score`` against it), with every
rejection a one-line ``SubmissionError``.

Everything is written under ``tmp_path``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import REPO_ROOT, cli_env, tiny_settings
from rstransfer.core.config import validate
from rstransfer.core.paths import Layout
from rstransfer.core.study import run_step
from rstransfer.data.prepare import Prepared, load_prepared
from rstransfer.data.splits import TEST, TRAIN, VAL
from rstransfer.leaderboard.tasks import SubmissionError, Task, Truth
from rstransfer.studies import get_study
from rstransfer.studies.hsi.board import TASKS as HSI_TASKS
from rstransfer.studies.hsi.evaluate import save_scene_map
from rstransfer.studies.segmentation import data as vh
from rstransfer.studies.segmentation.board import TASKS as SEG_TASKS
from rstransfer.studies.segmentation.evaluate import save_label_map

HSI: Task = HSI_TASKS["hsi"]
VAIHINGEN: Task = SEG_TASKS["vaihingen"]
VAIHINGEN_FIXTURES = REPO_ROOT / "tests" / "data" / "vaihingen"  # real ISPRS format; tiles 1, 3, 30, 15


def train_json(policy: str = "Network_2", seed: int = 0, **extra: Any) -> dict[str, Any]:
    """The fine-tuning's train.json as ``rstransfer finetune`` writes it (the fields a task reads)."""
    return {
        "policy": policy, "seed": seed, "model": "hybridsn", "train_seconds": 12.5, "gpu_hours": 0.01,
        "trainable_params": 516, "total_params": 518772, "run": {"slurm_job_id": "4711"}, **extra,
    }  # fmt: skip


def one_line(exc: pytest.ExceptionInfo[SubmissionError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# ================================================================================== hsi
@pytest.fixture(scope="module")
def hsi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny config; the organiser's target scene prepared for real (synthetic_target, 72 x 72)."""
    root = tmp_path_factory.mktemp("hsi")
    cfg = validate(tiny_settings(root / "results", {"hsi": {"policies": ["Network_2"], "seeds": [0]}}))
    layout = Layout.from_config(cfg)
    run_step(cfg, get_study("hsi"), "prepare", {"dataset": cfg["hsi"]["target"]}, layout)
    prepared = load_prepared(Path(layout.run_dir("hsi", "prepare", cfg["hsi"]["target"])) / "prepared.h5")
    return {"cfg": cfg, "layout": layout, "prepared": prepared, "truth": HSI.truth(cfg, layout)}


def perfect_map(prepared: Prepared) -> np.ndarray:
    """The true class id (1..C) at every labelled pixel, class 1 on the unlabelled ones."""
    return np.where(prepared.labels > 0, prepared.labels, 1).astype(np.int16)


def flat(prepared: Prepared, which: int) -> set[int]:
    return set(np.flatnonzero(prepared.split.ravel() == which).tolist())


def test_hsi_truth_holds_the_test_pixels_only(hsi: dict[str, Any]) -> None:
    prepared, truth = hsi["prepared"], hsi["truth"]
    h, w = prepared.labels.shape
    index, label = truth.arrays["index"], truth.arrays["label"]
    assert index.dtype == np.int64 and label.dtype == np.int16 and len(index) == len(label) > 0
    assert set(index.tolist()) == flat(prepared, TEST)
    assert not set(index.tolist()) & (flat(prepared, TRAIN) | flat(prepared, VAL))  # no training pixel
    assert np.array_equal(label, prepared.labels.ravel()[index] - 1)
    assert truth.meta == {
        "benchmark": f"synthetic_target, disjoint split, {len(index)} test px",
        "shape": [h, w],
        "class_names": ["Asphalt", "Meadow", "Wheat", "Metal roof"],
        "dataset": "synthetic_target",
    }
    assert HSI.truth_inputs(hsi["cfg"], hsi["layout"]) == [hsi["layout"].run_dir("hsi", "prepare", "synthetic_target")]


def test_hsi_truth_needs_no_tensorflow(hsi: dict[str, Any]) -> None:
    code = (
        "import sys\n"
        "from rstransfer.core.config import validate\n"
        "from rstransfer.core.paths import Layout\n"
        "from rstransfer.studies.hsi.board import TASKS\n"
        "import json\n"
        f"cfg = validate(json.loads({json.dumps(hsi['cfg'])!r}))\n"
        "truth = TASKS['hsi'].truth(cfg, Layout.from_config(cfg))\n"
        "assert len(truth.arrays['index']) > 0\n"
        "print('tensorflow' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_hsi_perfect_map_scores_one_and_only_test_pixels_count(hsi: dict[str, Any]) -> None:
    prepared, truth = hsi["prepared"], hsi["truth"]
    result = HSI.score({"map": perfect_map(prepared)}, truth)
    assert result["scores"] == {"OA": 1.0, "AA": 1.0, "Kappa": 1.0}
    cm = np.asarray(result["confusion_matrix"])
    assert cm.sum() == len(truth.arrays["index"]) and (cm == np.diag(np.diag(cm))).all()
    assert result["per_class"] == {name: 1.0 for name in prepared.class_names}
    # every training and validation pixel wrong: the score does not move
    scene = perfect_map(prepared)
    c = prepared.n_classes
    for which in (TRAIN, VAL):
        scene[prepared.split == which] = scene[prepared.split == which] % c + 1
    assert HSI.score({"map": scene}, truth)["scores"]["OA"] == 1.0


def test_hsi_known_wrong_map_on_the_real_truth(hsi: dict[str, Any]) -> None:
    """Every test pixel of class 1 predicted as class 3: OA = 1 - n1 / n, class 1's accuracy 0."""
    prepared, truth = hsi["prepared"], hsi["truth"]
    scene = perfect_map(prepared)
    scene[(prepared.split == TEST) & (prepared.labels == 1)] = 3
    n1 = int(((prepared.split == TEST) & (prepared.labels == 1)).sum())
    n = len(truth.arrays["index"])
    result = HSI.score({"map": scene}, truth)
    assert 0 < n1 < n
    assert result["scores"]["OA"] == pytest.approx(1 - n1 / n)
    assert result["scores"]["AA"] == pytest.approx(0.75)  # 4 classes, one of them all wrong
    assert result["per_class"]["Asphalt"] == 0.0 and result["confusion_matrix"][0][2] == n1


def small_truth() -> Truth:
    """3 x 4 scene, 3 classes; test pixels 0, 1 (class 0), 5, 6 (class 1), 10, 11 (class 2)."""
    return Truth(
        meta={"benchmark": "t", "shape": [3, 4], "class_names": ["a", "b", "c"], "dataset": "t"},
        arrays={"index": np.array([0, 1, 5, 6, 10, 11], dtype=np.int64), "label": np.array([0, 0, 1, 1, 2, 2], dtype=np.int16)},
    )


def test_hsi_score_by_hand() -> None:
    scene = np.ones((3, 4), dtype=np.int16)  # 1-based ids; pixels not tested stay 1
    scene.flat[[0, 1, 5, 6, 10, 11]] = [1, 2, 2, 2, 3, 1]  # right: 0, 5, 6, 10 -> 4 / 6
    result = HSI.score({"map": scene}, small_truth())
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    pe = (2 * 2 + 2 * 3 + 2 * 1) / 36  # row sums x column sums / n^2
    assert result["scores"] == pytest.approx({"OA": 4 / 6, "AA": (0.5 + 1 + 0.5) / 3, "Kappa": (4 / 6 - pe) / (1 - pe)})
    assert result["per_class"] == {"a": 0.5, "b": 1.0, "c": 0.5}


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"map": np.ones((3, 5), dtype=np.int16)}, r"^map: shape 3x5, the test set needs 3x4$"),
        ({"map": np.ones((12,), dtype=np.int16)}, r"^map: shape 12, the test set needs 3x4$"),
        ({"map": np.zeros((3, 4), dtype=np.int16)}, r"^map: values 0\.\.0 outside the classes 1\.\.3$"),
        ({"map": np.full((3, 4), 4, dtype=np.int16)}, r"^map: values 4\.\.4 outside the classes 1\.\.3$"),
        ({"map": np.ones((3, 4), dtype=np.float32)}, r"^map: expected an integer array, got float32$"),
        ({"map": [[1] * 4] * 3}, r"^map: expected an integer array, got list$"),
        ({}, r"^missing array 'map'"),
        ({"map": np.ones((3, 4), dtype=np.int16), "probs": np.ones(3)}, r"^unexpected array\(s\) 'probs'"),
    ],
)
def test_hsi_score_rejects(arrays: dict[str, Any], match: str) -> None:
    with pytest.raises(SubmissionError, match=match) as exc:
        HSI.score(arrays, small_truth())
    one_line(exc)


def hsi_run(cfg: dict[str, Any], scene: np.ndarray | None, **metrics: Any) -> Path:
    """An ``rstransfer evaluate`` folder of the hsi study: metrics.json and prediction.npy."""
    run = Path(Layout.from_config(cfg).run_dir("hsi", "evaluate", "Network_2/seed0"))
    run.mkdir(parents=True, exist_ok=True)
    m = {"policy": "Network_2", "seed": 0, "model": "hybridsn", "dataset": "synthetic_target", "OA": 0.9,
         "train": train_json(), **metrics}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(m))
    if scene is not None:
        save_scene_map(run / "prediction.npy", scene)
    return run


def test_hsi_predictions_round_trip(hsi: dict[str, Any]) -> None:
    cfg, layout, prepared = hsi["cfg"], hsi["layout"], hsi["prepared"]
    scene = perfect_map(prepared)
    run = hsi_run(cfg, scene)
    assert str(run) in HSI.runs(cfg, layout) and str(run) in HSI.inputs(cfg, layout)
    pred = HSI.predictions(run, cfg, layout)
    assert pred.meta == {
        "entry": "Network_2 seed 0",
        "model": "hybridsn",
        "details": {"policy": "Network_2", "seed": 0, "source": "synthetic_source", "target": "synthetic_target"},
        "cost": {"train_seconds": 12.5, "gpu_hours": 0.01, "trainable_params": 516, "total_params": 518772,
                 "slurm_job_ids": ["4711"]},
    }  # fmt: skip
    assert list(pred.arrays) == ["map"] and pred.arrays["map"].dtype == np.int16
    assert np.array_equal(pred.arrays["map"], scene)
    assert not list(run.glob(".*tmp*"))  # the atomic write left no temporary file
    json.dumps(pred.meta)  # JSON-able
    assert HSI.score(pred.arrays, hsi["truth"])["scores"]["OA"] == 1.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("no_map", r"prediction\.npy: not found"),
        ("garbage_map", r"prediction\.npy: not a readable \.npy array"),
        ("pickled_map", r"prediction\.npy: not a readable \.npy array"),
        ("float_map", r"prediction\.npy: expected a 2-D integer label map, got float64"),
        ("no_metrics", r"metrics\.json: not found"),
        ("bad_json", r"metrics\.json: not valid JSON"),
        ("no_train", r"metrics\.json: missing key 'train'"),
        ("other_seed", r"metrics\.json: train\.policy/seed Network_2/1 differ from policy/seed Network_2/0"),
        ("other_dataset", r"metrics\.json: dataset 'synthetic_source' is not the config's hsi\.target"),
        ("markup_model", r"metrics\.json: model: .* is not plain text"),
        ("negative_time", r"metrics\.json: train_seconds = -1\.0 is out of range"),
    ],
)
def test_hsi_predictions_reject_a_broken_run_in_one_line_naming_the_file(
    hsi: dict[str, Any], tmp_path: Path, change: str, match: str
) -> None:
    cfg = validate(tiny_settings(tmp_path / "results", {"hsi": {"policies": ["Network_2"], "seeds": [0]}}))
    scene = perfect_map(hsi["prepared"])
    metrics: dict[str, Any] = {
        "other_seed": {"train": train_json(seed=1)},
        "other_dataset": {"dataset": "synthetic_source"},
        "markup_model": {"model": "<script>x</script>"},
        "negative_time": {"train": train_json(train_seconds=-1.0)},
    }.get(change, {})
    run = hsi_run(cfg, None if change == "no_map" else scene, **metrics)
    if change == "garbage_map":
        (run / "prediction.npy").write_bytes(b"not an array")
    elif change == "pickled_map":
        np.save(run / "prediction.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif change == "float_map":
        np.save(run / "prediction.npy", scene.astype(np.float64))
    elif change == "no_metrics":
        (run / "metrics.json").unlink()
    elif change == "bad_json":
        (run / "metrics.json").write_text("{")
    elif change == "no_train":
        m = json.loads((run / "metrics.json").read_text())
        del m["train"]
        (run / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(SubmissionError, match=match) as exc:
        HSI.predictions(run, cfg, Layout.from_config(cfg))
    assert str(run) in one_line(exc)


# ============================================================================ vaihingen
def seg_cfg(results: Path, **seg: Any) -> dict[str, Any]:
    return validate({
        "results": str(results),
        "datasets": {"synthetic_source": {"reader": "synthetic_source"}, "synthetic_target": {"reader": "synthetic_target"}},
        "segmentation": {"enabled": True, "tiles": {"train": [1], "val": [3], "test": [15, 23]}, "patch_size": 64,
                         "overlap": 0.5, **seg},
    })  # fmt: skip


@pytest.fixture(scope="module")
def vaihingen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The synthetic demo tile set made by a real prepare run (64 px tiles 1, 3, 15, 23)."""
    root = tmp_path_factory.mktemp("vaihingen")
    cfg = seg_cfg(root / "results", synthetic={"enabled": True, "height": 64, "width": 64, "seed": 0})
    layout = Layout.from_config(cfg)
    run_step(cfg, get_study("segmentation"), "prepare", {}, layout)
    tiles = Path(layout.run_dir("segmentation", "prepare", file="tiles"))
    source = vh.TileSource(tiles / "top", tiles / "gts", None)
    masks = {n: vh.read_tile(source, n).mask for n in (15, 23)}
    return {"cfg": cfg, "layout": layout, "masks": masks, "truth": VAIHINGEN.truth(cfg, layout)}


def test_vaihingen_truth_from_the_synthetic_prepare_run(vaihingen: dict[str, Any]) -> None:
    truth, masks, layout = vaihingen["truth"], vaihingen["masks"], vaihingen["layout"]
    assert VAIHINGEN.truth_inputs(vaihingen["cfg"], layout) == [layout.run_dir("segmentation", "prepare")]
    assert truth.meta == {
        "benchmark": "synthetic Vaihingen test areas 15, 23",
        "tiles": [15, 23],
        "rank_tile": 15,
        "class_names": list(vh.CLASSES),
    }
    assert sorted(truth.arrays) == ["area15", "area23"]
    for n in (15, 23):
        assert truth.arrays[f"area{n}"].dtype == np.uint8
        assert np.array_equal(truth.arrays[f"area{n}"], masks[n])
    assert masks[15].shape != masks[23].shape  # the tiles differ in size, as in ISPRS


def test_vaihingen_truth_reads_the_isprs_label_files_only(tmp_path: Path) -> None:
    """Real-format tiles: truth_inputs are the test tiles' label files (not the images); the
    rank tile is the first test tile when 15 is not one of them."""
    f = VAIHINGEN_FIXTURES
    cfg = seg_cfg(tmp_path / "results", image_dir=str(f / "top"), label_dir=str(f / "gts"),
                  tiles={"train": [1], "val": [3], "test": [30, 15]})  # fmt: skip
    layout = Layout.from_config(cfg)
    assert VAIHINGEN.truth_inputs(cfg, layout) == [str(f / "gts" / f"top_mosaic_09cm_area{n}.tif") for n in (15, 30)]
    truth = VAIHINGEN.truth(cfg, layout)
    source = vh.TileSource(f / "top", f / "gts", None)
    assert truth.meta["benchmark"] == "Vaihingen test areas 15, 30" and truth.meta["rank_tile"] == 15
    for n in (15, 30):
        assert np.array_equal(truth.arrays[f"area{n}"], vh.read_tile(source, n).mask)
    cfg30 = seg_cfg(tmp_path / "r2", image_dir=str(f / "top"), label_dir=str(f / "gts"),
                    tiles={"train": [1], "val": [3], "test": [30]})  # fmt: skip
    assert VAIHINGEN.truth(cfg30, Layout.from_config(cfg30)).meta["rank_tile"] == 30


def wrong_on(mask: np.ndarray, rows: int) -> tuple[np.ndarray, float]:
    """``mask`` with its first ``rows`` rows one class off; and the OA that gives, counted by hand."""
    pred = mask.copy()
    pred[:rows] = (pred[:rows] + 1) % 6
    return pred, 1 - rows * mask.shape[1] / mask.size


def test_vaihingen_ranks_on_tile_15_and_reports_tile_23(vaihingen: dict[str, Any]) -> None:
    masks, truth = vaihingen["masks"], vaihingen["truth"]
    pred23, oa23 = wrong_on(masks[23], 20)
    result = VAIHINGEN.score({"area15": masks[15].copy(), "area23": pred23}, truth)
    s = result["scores"]
    assert (s["OA"], s["AA"], s["Kappa"]) == (1.0, 1.0, 1.0)  # tile 15 alone, not the two pooled
    assert s["OA_area15"] == s["OA"] and s["Kappa_area15"] == s["Kappa"]
    assert s["OA_area23"] == pytest.approx(oa23) and s["Kappa_area23"] < 1.0
    assert np.asarray(result["confusion_matrix"]).sum() == masks[15].size  # tile 15's matrix
    pred15, oa15 = wrong_on(masks[15], 8)
    s = VAIHINGEN.score({"area15": pred15, "area23": masks[23]}, truth)["scores"]
    assert s["OA"] == pytest.approx(oa15) and s["OA_area23"] == 1.0
    # the board's columns are score keys: OA of area 15, OA of area 23, Kappa of area 15
    assert [k for k, _ in VAIHINGEN.columns] == ["OA", "OA_area23", "Kappa"]
    assert all(k in s for k, _ in VAIHINGEN.columns) and VAIHINGEN.metric == "OA"
    assert all(k in HSI.score({"map": np.ones((3, 4), dtype=np.int16)}, small_truth())["scores"] for k, _ in HSI.columns)


def test_vaihingen_score_by_hand() -> None:
    truth = Truth(
        meta={"benchmark": "t", "tiles": [15, 23], "rank_tile": 15, "class_names": list(vh.CLASSES)},
        arrays={"area15": np.array([[0, 0], [1, 1]], dtype=np.uint8), "area23": np.array([[2, 2, 2]], dtype=np.uint8)},
    )
    result = VAIHINGEN.score(
        {"area15": np.array([[0, 1], [1, 1]], dtype=np.uint8), "area23": np.array([[2, 5, 2]], dtype=np.int64)}, truth
    )
    pe = (2 * 1 + 2 * 3) / 16
    assert result["scores"] == pytest.approx({
        "OA": 0.75, "AA": 0.75, "Kappa": (0.75 - pe) / (1 - pe),
        "OA_area15": 0.75, "Kappa_area15": (0.75 - pe) / (1 - pe), "OA_area23": 2 / 3, "Kappa_area23": 0.0,
    })  # fmt: skip
    assert result["confusion_matrix"][:2] == [[1, 1, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0]]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("shape", r"^area23: shape 10x10, the test set needs \d+x\d+$"),
        ("class6", r"^area15: values \d\.\.6 outside the classes 0\.\.5$"),
        ("negative", r"^area15: values -1\.\.\d outside the classes 0\.\.5$"),
        ("float", r"^area23: expected an integer array, got float32$"),
        ("missing", r"^missing array\(s\) 'area23'"),
        ("extra", r"^unexpected array\(s\) 'area99'"),
    ],
)
def test_vaihingen_score_rejects(vaihingen: dict[str, Any], change: str, match: str) -> None:
    masks = vaihingen["masks"]
    arrays: dict[str, Any] = {"area15": masks[15].copy(), "area23": masks[23].copy()}
    if change == "shape":
        arrays["area23"] = np.zeros((10, 10), dtype=np.uint8)
    elif change == "class6":
        arrays["area15"][0, 0] = 6
    elif change == "negative":
        arrays["area15"] = arrays["area15"].astype(np.int8)
        arrays["area15"][0, 0] = -1
    elif change == "float":
        arrays["area23"] = arrays["area23"].astype(np.float32)
    elif change == "missing":
        del arrays["area23"]
    elif change == "extra":
        arrays["area99"] = masks[15]
    with pytest.raises(SubmissionError, match=match) as exc:
        VAIHINGEN.score(arrays, vaihingen["truth"])
    one_line(exc)


def seg_run(cfg: dict[str, Any], maps: dict[int, np.ndarray | None], experiment: str = "scratch_aug",
            train: dict[int, dict[str, Any]] | None = None) -> Path:  # fmt: skip
    """An experiment's evaluate folder: area<N>/metrics.json and area<N>/prediction.npy per tile."""
    run = Path(Layout.from_config(cfg).run_dir("segmentation", "evaluate", experiment))
    for n, pred in maps.items():
        t = train_json(model="resnet50_fcn", pretrained="/home/team/weights/start.h5", augment=True, policy="fcn_all")
        t.update((train or {}).get(n, {}))
        folder = run / f"area{n}"
        folder.mkdir(parents=True, exist_ok=True)
        m = {"experiment": experiment, "tile": n, "tile_split": "test", "OA": 0.5, "train": t}
        (folder / "metrics.json").write_text(json.dumps(m))
        if pred is not None:
            save_label_map(folder / "prediction.npy", pred)
    return run


def test_vaihingen_predictions_round_trip(vaihingen: dict[str, Any], tmp_path: Path) -> None:
    cfg, masks = vaihingen["cfg"], vaihingen["masks"]
    cfg = validate({**cfg, "results": str(tmp_path / "results")})
    layout = Layout.from_config(cfg)
    run = seg_run(cfg, {15: masks[15], 23: masks[23]})
    assert str(run) in VAIHINGEN.runs(cfg, layout)
    pred = VAIHINGEN.predictions(run, cfg, layout)
    assert pred.meta == {
        "entry": "scratch_aug",
        "model": "resnet50_fcn",
        "details": {"experiment": "scratch_aug", "tiles": [15, 23], "pretrained": "start.h5", "augment": "yes",
                    "policy": "fcn_all"},
        "cost": {"train_seconds": 12.5, "gpu_hours": 0.01, "trainable_params": 516, "total_params": 518772,
                 "slurm_job_ids": ["4711"]},
    }  # fmt: skip
    assert sorted(pred.arrays) == ["area15", "area23"]
    for n in (15, 23):
        assert pred.arrays[f"area{n}"].dtype == np.uint8 and np.array_equal(pred.arrays[f"area{n}"], masks[n])
    json.dumps(pred.meta)
    assert VAIHINGEN.score(pred.arrays, vaihingen["truth"])["scores"]["OA_area23"] == 1.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("no_map", r"area23/prediction\.npy: not found"),
        ("other_training", r"area23/metrics\.json: train differs from the other tiles'"),
        ("other_tile", r"area23/metrics\.json: experiment/tile/split scratch_aug/15/test is not scratch_aug/23/test"),
        ("float_map", r"area15/prediction\.npy: expected a 2-D integer label map, got float32"),
        ("markup_policy", r"area23/metrics\.json: train\.policy: .* is not plain text"),
    ],
)
def test_vaihingen_predictions_reject_a_broken_run(vaihingen: dict[str, Any], tmp_path: Path, change: str, match: str) -> None:
    cfg = validate({**vaihingen["cfg"], "results": str(tmp_path / "results")})
    masks = vaihingen["masks"]
    maps: dict[int, np.ndarray | None] = {15: masks[15], 23: None if change == "no_map" else masks[23]}
    train = {"other_training": {23: {"train_seconds": 99.0}}, "markup_policy": {15: {"policy": "<b>"}, 23: {"policy": "<b>"}}}
    run = seg_run(cfg, maps, train=train.get(change))
    if change == "other_tile":
        m = json.loads((run / "area23" / "metrics.json").read_text())
        m["tile"] = 15
        (run / "area23" / "metrics.json").write_text(json.dumps(m))
    elif change == "float_map":
        np.save(run / "area15" / "prediction.npy", masks[15].astype(np.float32))
    with pytest.raises(SubmissionError, match=match) as exc:
        VAIHINGEN.predictions(run, cfg, Layout.from_config(cfg))
    assert str(run) in one_line(exc)


# ============================================================== a sealed HSI competition
def test_sealed_competition_teams_train_on_public_labels_without_the_hidden_test_set(
    hsi: dict[str, Any], tmp_path: Path
) -> None:
    """`rstransfer ground-truth --public`: the teams get the target's labels minus the organiser's
    test pixels; a team's own prepare (npy reader) then never sees a hidden test pixel, and its
    scene map is scored by the organiser on exactly those."""
    from rstransfer.data.readers import load_dataset
    from rstransfer.data.splits import TEST, TRAIN, VAL

    cfg, prepared, truth = hsi["cfg"], hsi["prepared"], hsi["truth"]
    public = truth.public["target_labels"]
    hidden = set(truth.arrays["index"].tolist())
    labelled = set(np.flatnonzero(public.ravel()).tolist())
    assert labelled == flat(prepared, TRAIN) | flat(prepared, VAL) and not labelled & hidden
    assert np.array_equal(public.ravel()[list(labelled)], prepared.labels.ravel()[list(labelled)])

    # a team: the same cube, the public labels, its own split
    target = cfg["hsi"]["target"]
    scene = load_dataset(target, cfg["datasets"][target], Path(cfg["data_root"]))
    np.save(tmp_path / "cube.npy", scene.cube)
    np.save(tmp_path / "labels.npy", public)
    team = tiny_settings(tmp_path / "team", {"hsi": {"policies": ["Network_2"], "seeds": [0], "target": "sealed"}})
    team["datasets"]["sealed"] = {"reader": "npy", "path": str(tmp_path),
                                  "options": {"cube": {"file": "cube.npy"}, "labels": {"file": "labels.npy"}},
                                  "class_names": list(prepared.class_names)}  # fmt: skip
    team_cfg = validate(team)
    team_layout = Layout.from_config(team_cfg)
    run_step(team_cfg, get_study("hsi"), "prepare", {"dataset": "sealed"}, team_layout)
    mine = load_prepared(Path(team_layout.run_dir("hsi", "prepare", "sealed")) / "prepared.h5")
    used = {i for code in (TRAIN, VAL, TEST) for i in flat(mine, code)}
    assert used and not used & hidden  # nothing the team trains, selects or tests on is hidden
    # its map (here: the public label where known, class 1 elsewhere) scored on the hidden pixels only
    guess = np.where(public > 0, public, 1).astype(np.int16)
    result = HSI.score({"map": guess}, truth)
    expected = float(np.mean(truth.arrays["label"] == 0))  # class 1 everywhere on the hidden pixels
    assert result["scores"]["OA"] == pytest.approx(expected)


def test_cli_ground_truth_writes_hidden_labels_privately_and_public_labels_openly(hsi: dict[str, Any], tmp_path: Path) -> None:
    import stat

    import yaml

    from conftest import run_cli_in

    cfg = {**hsi["cfg"], "segmentation": {**hsi["cfg"]["segmentation"], "enabled": False},
           "multilabel": {**hsi["cfg"]["multilabel"], "enabled": False}}  # fmt: skip
    (tmp_path / "org.yaml").write_text(yaml.safe_dump(cfg))
    gt, pub = tmp_path / "organiser" / "gt", tmp_path / "public"
    rc, out, err = run_cli_in(tmp_path, "ground-truth", "--config", tmp_path / "org.yaml", "--out", gt, "--public", pub)
    assert rc == 0, err
    assert sorted(p.name for p in gt.iterdir()) == ["hsi.npz"] and stat.S_IMODE(gt.stat().st_mode) == 0o700
    assert stat.S_IMODE((gt / "hsi.npz").stat().st_mode) == 0o600
    labels = np.load(pub / "hsi_target_labels.npy")
    assert np.array_equal(labels, hsi["truth"].public["target_labels"]) and "labels without the hidden test set" in out
    rc, out, _ = run_cli_in(tmp_path, "ground-truth", "--config", tmp_path / "org.yaml", "--out", gt, "--if-missing")
    assert rc == 0 and "exists (kept)" in out
