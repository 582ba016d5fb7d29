"""Packaging and CI plumbing.

* A non-editable install (the wheel, installed into a bare folder) carries every data file of
  the package: the config schema, the dataset schema and every study's schema, so the config
  validates there exactly as in the source tree.
* ``RSTRANSFER_NO_SKIP=1`` (set by .ci/run) turns every skip into a failure and the summary
  prints the skip count.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT, TESTS, cli_env

PACKAGE = REPO_ROOT / "src" / "rstransfer"

CHECK_INSTALLED = """
import json, sys
from pathlib import Path
import rstransfer
from rstransfer.core import config
from rstransfer.studies import load_all

target = Path(sys.argv[1]).resolve()
assert Path(rstransfer.__file__).resolve().is_relative_to(target), rstransfer.__file__
assert config.SCHEMA_PATH.is_file() and config.DATASET_SCHEMA_PATH.is_file()
schema = config.load_schema()
studies = load_all()
for name, study in studies.items():
    assert schema["properties"][name]["properties"] == study.schema["properties"], name
    assert Path(sys.modules[type(study).__module__].__file__).resolve().is_relative_to(target)
cfg = config.load_config([sys.argv[2]])
print(json.dumps({"studies": sorted(studies), "keys": sorted(cfg),
                  "datasets_schema": "properties" in schema["properties"]["datasets"]["additionalProperties"]}))
"""


def test_wheel_install_ships_every_schema_and_validates_the_config(tmp_path: Path) -> None:
    """``pip wheel`` + ``pip install --no-deps --target``: the installed package (not the
    editable source) loads the config schema and every study's schema and validates config.yaml."""
    src = tmp_path / "src-copy"  # build from a copy: setuptools writes build/ and *.egg-info in place
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    shutil.copytree(REPO_ROOT / "src", src / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, src / name)
    dist, target = tmp_path / "dist", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    proc = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(dist)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = dist.glob("rstransfer-*.whl")

    # every non-Python file of the package is in the wheel (a data file left out is lost)
    names = set(zipfile.ZipFile(wheel).namelist())
    data = sorted(str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)
    assert data, "no data files found in the source tree"
    assert [f for f in data if f not in names] == [], "package data missing from the wheel"
    assert not [n for n in names if n.endswith("py.typed")] or (PACKAGE / "py.typed").is_file()

    proc = subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "rstransfer" / "core" / "schemas" / "config.schema.yaml").is_file()
    # the venv's dependencies (yaml, jsonschema) but the wheel's rstransfer: PYTHONPATH comes
    # before the editable install's finder; cwd is neither the repository nor src/
    env = cli_env(PYTHONPATH=str(target))
    env.pop("RSTRANSFER_STUDY_MODULES", None)
    proc = subprocess.run([sys.executable, "-c", CHECK_INSTALLED, str(target), str(REPO_ROOT / "config.yaml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    installed = json.loads(proc.stdout.strip().splitlines()[-1])

    from rstransfer.studies import load_all

    assert installed["studies"] == sorted(load_all()) and "segmentation" in installed["studies"]
    assert installed["datasets_schema"] and {"results", *installed["studies"]} <= set(installed["keys"])


SKIPPING = """
import pytest

def test_needs_data():
    pytest.skip("real data not available: /nowhere")

@pytest.fixture
def cluster():
    pytest.skip("local SLURM cluster not enabled")

def test_uses_cluster(cluster):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False

def test_passes():
    pass
"""


@pytest.mark.parametrize("no_skip", [False, True], ids=["default", "RSTRANSFER_NO_SKIP=1"])
def test_no_skip_switch_turns_every_skip_into_a_failure(tmp_path: Path, no_skip: bool) -> None:
    """The project's conftest on a scratch module with two skips (in a test and in a fixture)."""
    shutil.copy2(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_scratch.py").write_text(SKIPPING)
    env = cli_env(RSTRANSFER_NO_SKIP="1" if no_skip else "0")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_scratch.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    if no_skip:
        assert proc.returncode == 1, out
        assert "CI: skipped 0 (RSTRANSFER_NO_SKIP=1: must be 0)" in out
        assert "RSTRANSFER_NO_SKIP=1 (CI must not skip), but: real data not available: /nowhere" in out
        assert "RSTRANSFER_NO_SKIP=1 (CI must not skip), but: local SLURM cluster not enabled" in out
        assert "1 failed, 1 passed, 1 xfailed, 1 error" in out, out
    else:
        assert proc.returncode == 0, out
        assert "CI: skipped 2\n" in out and "1 passed, 2 skipped, 1 xfailed" in out, out


def test_ci_sets_the_no_skip_switch() -> None:
    assert "export RSTRANSFER_NO_SKIP=1" in (REPO_ROOT / ".ci" / "run").read_text()
    assert os.access(REPO_ROOT / ".ci" / "run", os.X_OK)
