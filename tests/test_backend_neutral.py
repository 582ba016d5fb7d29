"""Model code is backend-neutral: every model of every registered study builds under Keras 3
on JAX (CPU, the second venv .venv-jax that `make setup` makes, without TensorFlow) with the
same parameter count and layer names as under tf_keras, so the code is ready for a GPU
machine that has JAX but no TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import REPO_ROOT

JAX_PYTHON = REPO_ROOT / ".venv-jax" / "bin" / "python"

# runs inside .venv-jax: the package from src/, Keras 3 on JAX
PROBE = """
import json, os, sys
from rstransfer.core.keras import IS_KERAS3, keras
assert IS_KERAS3 and keras.backend.backend() == "jax", (keras.__version__, keras.backend.backend())
try:
    import tensorflow  # noqa: F401
    sys.exit("tensorflow is importable in the JAX venv")
except ImportError:
    pass
from rstransfer.studies import load_all
out = {}
for study in load_all().values():
    for name, build in study.models.items():
        model = build()
        out[f"{study.name}/{name}"] = {"params": int(model.count_params()), "layers": [l.name for l in model.layers]}
print(json.dumps(out))
"""


def _tf_keras_models() -> dict[str, dict[str, object]]:
    from rstransfer.studies import load_all

    out = {}
    for study in load_all().values():
        for name, build in study.models.items():
            model = build()
            out[f"{study.name}/{name}"] = {"params": int(model.count_params()), "layers": [layer.name for layer in model.layers]}
    return out


@pytest.mark.slow
def test_every_study_model_builds_under_keras3_on_jax() -> None:
    if not JAX_PYTHON.exists():
        pytest.fail(f"{JAX_PYTHON} missing: run `make setup` (it makes the Keras 3 / JAX venv)")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
    env.update({"KERAS_BACKEND": "jax", "RSTRANSFER_KERAS": "keras3", "JAX_PLATFORMS": "cpu",
                "PYTHONPATH": str(REPO_ROOT / "src"), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"})
    proc = subprocess.run([str(JAX_PYTHON), "-c", PROBE], env=env, capture_output=True, text=True, timeout=900,
                          cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    jax_models = json.loads(proc.stdout.strip().splitlines()[-1])
    tf_models = _tf_keras_models()
    assert sorted(jax_models) == sorted(tf_models)
    assert "hsi/hybridsn" in jax_models and "segmentation/resnet50_fcn" in jax_models
    assert jax_models["hsi/hybridsn"]["params"] == 5_122_176
    for key, tf in tf_models.items():
        assert jax_models[key]["params"] == tf["params"], key
        # Keras 3 names the input layer on its own; every other layer keeps its name
        assert jax_models[key]["layers"][1:] == tf["layers"][1:], key
