"""Shared helpers for the performance benchmarks (P1, P3, P4).

Not part of the package: the scripts in this folder put it on ``sys.path`` by being run as
``python benchmarks/<name>.py``. Import this module *before* numpy or TensorFlow: it pins the
thread pools from ``--threads`` (default: every core) so that the measured side and its
baseline always run under identical settings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GT_PATH = ROOT.parent / "shared" / "data" / "indian_pines" / "Indian_pines_gt.mat"
N_LABELLED = 10249  # labelled pixels of Indian Pines (shared/data/README.md)
SCENE_SHAPE = (145, 145)

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke runs (run_all.sh)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1,
        help="TF intra-op threads (inter-op: min(2, threads)) and BLAS/OpenMP threads, same for both sides",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def pin_threads(threads: int) -> None:
    """BLAS/OpenMP pools; must run before numpy is imported (children get it via the env)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def setup_tf(threads: int, seed: int, deterministic: bool = False) -> None:
    """The project's own runtime setup (``rstransfer.core.fit.setup_runtime``), used by both sides."""
    from rstransfer.core.fit import setup_runtime

    setup_runtime(seed, deterministic, threads)


def label_map(seed: int = 0) -> tuple[Any, str]:
    """The real Indian Pines GT (145x145, 10249 labelled px) or a synthetic map with as many."""
    import numpy as np

    if GT_PATH.is_file():
        from rstransfer.data.matfile import load_mat

        gt = np.asarray(load_mat(GT_PATH)["indian_pines_gt"]).astype(np.int32)
        return gt, f"Indian_pines_gt.mat ({int((gt > 0).sum())} labelled px)"
    rng = np.random.default_rng(seed)
    gt = np.zeros(SCENE_SHAPE[0] * SCENE_SHAPE[1], dtype=np.int32)
    idx = rng.choice(gt.size, N_LABELLED, replace=False)
    gt[idx] = rng.integers(1, 17, N_LABELLED)
    return gt.reshape(SCENE_SHAPE), f"synthetic map ({N_LABELLED} labelled px; {GT_PATH} absent)"


def random_cube(bands: int, seed: int = 0) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.standard_normal((*SCENE_SHAPE, bands), dtype=np.float32)


def subsample(n_total: int, n: int | None) -> Any:
    """``n`` evenly spaced indices out of ``n_total`` (all when ``n`` is None or too large)."""
    import numpy as np

    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.linspace(0, n_total - 1, n).round().astype(np.int64)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_child(script: Path, args: Sequence[str]) -> dict[str, Any]:
    """Run ``script --child ...`` in a fresh interpreter; its last stdout line is a JSON dict."""
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=os.environ.copy()
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"child {script.name} {' '.join(args)} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit(result: dict[str, Any]) -> None:
    """Child side of :func:`run_child`."""
    print(json.dumps(result), flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine() -> str:
    return (
        f"{platform.node()}: {os.cpu_count()} vCPU, {platform.machine()}, Python {platform.python_version()}, "
        f"{load()}"
    )


def load() -> str:
    """Load averages: other processes on a 2-core box skew every figure, so always print them."""
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A small fixed-width table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def result_line(figure: str, ratio: float, target: float, higher_is_better: bool = True) -> str:
    ok = ratio >= target if higher_is_better else ratio <= target
    op = ">=" if higher_is_better else "<="
    return f"RESULT {figure} ratio={ratio:.3g} target={op}{target:g} {'PASS' if ok else 'MISS'}"
