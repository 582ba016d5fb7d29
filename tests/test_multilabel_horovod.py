"""BYOL under Horovod (2 gloo ranks on CPU): the EMA runs after the allreduce, so both ranks
hold the same online and target weights (BatchNorm moving statistics excepted: they come from
each rank's own batches, as in any Horovod-trained BN network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import VENV_BIN, cli_env

WORKER = '''
import hashlib, json, sys
import numpy as np
from rstransfer.core import dist as dist_mod
from rstransfer.core.fit import compile_model, setup_runtime
from rstransfer.models.densenet import build_densenet_encoder
from rstransfer.studies.multilabel.byol import build_byol
from rstransfer.studies.multilabel.pipeline import byol_stream

dist = dist_mod.init("horovod")
setup_runtime(dist.rank + 1, False, 1)  # other initial weights per rank: the broadcast must align them
model = build_byol(lambda n: build_densenet_encoder((32, 32, 3), blocks=(1, 1), name=n), 16, 8, 0.9, 10)
compile_model(model, {"optimizer": "adam", "learning_rate": 1e-3}, dist, loss=None, metrics=[])
model.optimizer.build(model.trainable_variables)
images = np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
ds, steps = byol_stream(images, 4, 0, 0, dist.shard())
model.fit(ds, epochs=1, steps_per_epoch=steps, callbacks=dist.callbacks(), verbose=0)

def digest(weights):
    h = hashlib.sha256()
    for w in weights:
        if "moving" not in w.name:
            h.update(w.numpy().tobytes())
    return h.hexdigest()

def moving(weights):
    return hashlib.sha256(b"".join(w.numpy().tobytes() for w in weights if "moving" in w.name)).hexdigest()

out = {"rank": dist.rank, "steps": steps, "online": digest(model.online_weights()),
       "target": digest(model.target_weights()), "target_moving": moving(model.target_weights()),
       "steps_done": float(model.steps_done), "tau": float(model.tau())}
(open(sys.argv[1] + f"/rank{dist.rank}.json", "w")).write(json.dumps(out))
'''


@pytest.mark.slow
def test_byol_target_is_identical_on_every_rank(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [str(VENV_BIN / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo", sys.executable, str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["steps"] == r1["steps"] == 2 and r0["steps_done"] == r1["steps_done"] == 2.0
    assert r0["online"] == r1["online"]
    assert r0["target"] == r1["target"]
    assert r0["tau"] == r1["tau"] > 0.9
