"""A step's run folder is published as one unit: faults injected at every point of a step and of
its publication (not timed kills) never leave a run folder that looks done but is not, never
lose a previous complete run folder, and a rerun completes.

The step is a stand-in study step (``rstransfer.core.study.run_step`` with a function that
writes three files), so every point is cheap to reach. A "point" is before or after each call
of ``os.rename``, ``shutil.rmtree``, ``os.mkdir`` and the atomic exchange in ``core.study``, and
after each file the step writes. At point K the driver either

* raises (``RuntimeError``: the error paths of run_step/publish run), in-process, or
* dies on the spot (``os._exit``: what SIGKILL or a node failure does), in a forked child,

for a first run (no run folder yet) and for a rerun over a previous complete folder, with the
atomic exchange and with the move-aside fallback (filesystems without ``renameat2``).
After the fault the run folder is absent (first run; or fallback + hard kill between its two
renames), or exactly the previous complete folder, or exactly the new complete folder. A
fault-free rerun then publishes the new folder and leaves no hidden sibling behind.
"""

from __future__ import annotations

import json
import os
import shutil
import traceback
from pathlib import Path
from typing import Any

import pytest

FILES = ("model.h5", "history.csv", "train.json")  # written in this order
RUN = "a/seed0"
KILLED = 113


class Fault(RuntimeError):
    pass


class Points:
    """Counts the points; at point ``at`` raises (mode "raise") or exits at once (mode "kill")."""

    def __init__(self, at: int, mode: str) -> None:
        self.at, self.mode, self.n = at, mode, 0

    def tick(self) -> None:
        self.n += 1
        if self.n == self.at:
            if self.mode == "kill":
                os._exit(KILLED)
            raise Fault(f"injected fault at point {self.n}")


def _study(points: Points | None) -> Any:
    from rstransfer.core.study import Step, Study

    def func(ctx: Any) -> dict[str, Any]:
        version = ctx.cfg["version"]
        for name in FILES:
            (ctx.out / name).write_text(json.dumps({"file": name, "version": version}))
            if points:
                points.tick()
        return {"line": f"wrote {version}"}

    step = Step(func, runs=lambda cfg: [{"policy": "a", "seed": "0"}], pattern="{policy}/seed{seed}")
    return Study(name="atomic", title="atomic", schema={}, steps={"finetune": step})


def run_once(results: Path, version: str, at: int = 0, mode: str = "raise", exchange: bool = True) -> int:
    """Run the stand-in step once with a fault at point ``at`` (0: none); return how many
    points it passed (a fault-free run reaches all of them)."""
    from rstransfer.core import study as study_mod
    from rstransfer.core.paths import Layout

    points = Points(at, mode)
    saved = {"rename": os.rename, "rmtree": shutil.rmtree, "mkdir": os.mkdir, "exchange": study_mod._exchange}

    def wrap(real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            points.tick()
            result = real(*args, **kwargs)
            points.tick()
            return result

        return call

    os.rename, shutil.rmtree, os.mkdir = wrap(saved["rename"]), wrap(saved["rmtree"]), wrap(saved["mkdir"])
    study_mod._exchange = wrap(saved["exchange"] if exchange else (lambda a, b: False))
    try:
        study_mod.run_step({"version": version}, _study(points), "finetune", {"policy": "a", "seed": "0"},
                           Layout(str(results)))
    finally:
        os.rename, shutil.rmtree, os.mkdir = saved["rename"], saved["rmtree"], saved["mkdir"]
        study_mod._exchange = saved["exchange"]
    return points.n


def run_folder(results: Path) -> Path:
    return results / "atomic" / "finetune" / RUN


def state(results: Path) -> str | None:
    """None (no run folder) or the version of a complete run folder; fails on anything else."""
    final = run_folder(results)
    if not final.exists():
        return None
    names = sorted(p.name for p in final.iterdir())
    assert names == sorted(FILES), f"run folder with {names}: not one complete unit"
    versions = {json.loads((final / f).read_text())["version"] for f in FILES}
    assert len(versions) == 1, f"run folder mixes versions {versions}"
    return versions.pop()


def check_rerun(results: Path) -> None:
    run_once(results, "new")
    assert state(results) == "new"
    leftovers = sorted(p.name for p in run_folder(results).parent.iterdir() if p.name != "seed0")
    assert leftovers == [], f"hidden siblings left after a complete rerun: {leftovers}"


def fresh(results: Path, previous: bool) -> None:
    shutil.rmtree(results, ignore_errors=True)
    if previous:
        run_once(results, "old")
        assert state(results) == "old"


def count_points(tmp_path: Path, previous: bool, exchange: bool) -> int:
    results = tmp_path / "count"
    fresh(results, previous)
    total = run_once(results, "new", exchange=exchange)
    assert total >= 2 * len(FILES)
    return total


def kill_at(results: Path, at: int, exchange: bool) -> int:
    """Run the step in a forked child that dies at point ``at``; return its exit status."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 1
        try:
            run_once(results, "new", at, "kill", exchange)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "move-aside"])
@pytest.mark.parametrize("previous", [False, True], ids=["first-run", "over-previous"])
def test_raise_at_every_point(tmp_path: Path, previous: bool, exchange: bool) -> None:
    results = tmp_path / "results"
    total = count_points(tmp_path, previous, exchange)
    for at in range(1, total + 1):
        fresh(results, previous)
        try:
            run_once(results, "new", at, "raise", exchange)
        except Fault:
            pass
        # an error anywhere keeps the previous folder, or publishes the new one completely
        assert state(results) in (("old", "new") if previous else (None, "new")), f"point {at}"
        check_rerun(results)


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "move-aside"])
@pytest.mark.parametrize("previous", [False, True], ids=["first-run", "over-previous"])
def test_hard_kill_at_every_point(tmp_path: Path, previous: bool, exchange: bool) -> None:
    results = tmp_path / "results"
    total = count_points(tmp_path, previous, exchange)
    lost = []
    for at in range(1, total + 1):
        fresh(results, previous)
        assert kill_at(results, at, exchange) == KILLED, f"point {at}"
        after = state(results)
        if previous and after is None:
            lost.append(at)
        check_rerun(results)
    # the atomic exchange never leaves the run folder missing; the move-aside fallback only
    # between its two renames (after the old folder's, before the new one's: two points)
    if exchange or not previous:
        assert lost == [], f"previous run folder missing after a kill at points {lost}"
    else:
        assert len(lost) == 2 and lost[1] == lost[0] + 1, lost


def test_exchange_is_available_here(tmp_path: Path) -> None:
    """The atomic swap works on the filesystem of the test's scratch (ext4/xfs/btrfs/tmpfs)."""
    from rstransfer.core.study import _exchange

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    assert _exchange(a, b)
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
