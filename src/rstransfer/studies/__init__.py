"""The study registry: every study package registers one ``Study`` here.

A study is found by importing its package: every subpackage of ``rstransfer.studies`` and
every module named in ``$RSTRANSFER_STUDY_MODULES`` (comma-separated; how tests and site
plugins add a study without touching the workflow or the CLI). Importing a study must not
import TensorFlow: the Snakefile reads the registry while it builds the DAG.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from rstransfer.core.errors import ConfigError
from rstransfer.core.study import Study

STUDIES: dict[str, Study] = {}
_loaded = False


def register(study: Study) -> Study:
    if study.name in STUDIES and STUDIES[study.name] is not study:
        raise ValueError(f"study {study.name!r} registered twice")
    STUDIES[study.name] = study
    return study


def load_all() -> dict[str, Study]:
    """Import every study package once; return the registry (in registration order)."""
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in pkgutil.iter_modules(__path__):
            if mod.ispkg:
                importlib.import_module(f"{__name__}.{mod.name}")
        for name in filter(None, os.environ.get("RSTRANSFER_STUDY_MODULES", "").split(",")):
            importlib.import_module(name.strip())
    return STUDIES


def get_study(name: str) -> Study:
    studies = load_all()
    if name not in studies:
        raise ConfigError(f"--study: unknown study {name!r} (registered: {', '.join(studies)})")
    return studies[name]


def enabled_studies(cfg: dict) -> list[Study]:
    return [s for s in load_all().values() if s.is_enabled(cfg)]
