"""Load, merge and validate config files against the JSON schema (defaults filled in).

The same code validates for the CLI (jobs/ scripts) and, through ``snakemake.utils.validate``
plus ``check_references``, for the Snakefile, so a typo fails before any job runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from rstransfer.core.errors import ConfigError

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"


DATASET_SCHEMA_PATH = Path(__file__).parents[1] / "data" / "dataset.schema.yaml"


def load_schema() -> dict[str, Any]:
    """The whole config schema: the core sections plus one section per registered study
    (``studies/<name>/schema.yaml``) and the dataset-entry schema of ``rstransfer.data``."""
    from rstransfer.studies import load_all

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    if DATASET_SCHEMA_PATH.is_file():
        schema["properties"]["datasets"]["additionalProperties"] = yaml.safe_load(DATASET_SCHEMA_PATH.read_text())
    for name, study in load_all().items():
        if name in schema["properties"]:
            raise ValueError(f"study {name!r} clashes with the core config key of that name")
        schema["properties"][name] = {"default": {}, **study.schema}
    return schema


def deep_update(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict update, like Snakemake's --configfile merging."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _key_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def schema_validator(schema: dict[str, Any]):
    """A Draft 2020-12 validator that also fills in defaults (as snakemake's validate does)."""
    from jsonschema import Draft202012Validator, validators

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)

    def ref_with_defaults(validator, ref, instance, schema):
        yield from Draft202012Validator.VALIDATORS["$ref"](validator, ref, instance, schema)

    cls = validators.extend(Draft202012Validator, {"properties": set_defaults, "$ref": ref_with_defaults})
    return cls(schema)


def validate(config: dict[str, Any], origin: str = "config") -> dict[str, Any]:
    """Fill defaults and validate; raise ConfigError naming the first bad key."""
    config = copy.deepcopy(config)
    validator = schema_validator(load_schema())
    # two passes: defaults inserted in the first may themselves hold nested defaults
    for _ in range(2):
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        if errors:
            raise ConfigError(f"{origin}: {format_error(errors[0])}")
    check_references(config, origin)
    return config


def format_error(err: Any) -> str:
    where = _key_path(err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = sorted(err.schema.get("properties", {}))
        return f"{where}: unknown key {', '.join(map(repr, extra))} (allowed: {', '.join(allowed)})"
    if err.validator == "enum":
        return f"{where}: {err.instance!r} is not one of {err.validator_value}"
    return f"{where}: {err.message}"


def check_references(config: dict[str, Any], origin: str = "config") -> None:
    """Cross-key checks a JSON schema cannot express: the core's, then each enabled study's."""
    from rstransfer.studies import enabled_studies

    gpu = config["slurm"]["gpu"]
    per_node = gres_gpus(gpu["gres"])
    if config["distribution"]["mode"] == "horovod" and per_node is not None and per_node < gpu["gpus_per_node"]:
        raise ConfigError(
            f"{origin}: slurm.gpu.gres: {gpu['gres']!r} gives {per_node} GPU(s) per node but "
            f"slurm.gpu.gpus_per_node is {gpu['gpus_per_node']} (ranks would share a GPU)"
        )
    for study in enabled_studies(config):
        try:
            study.check(config)
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None


def gres_gpus(gres: str) -> int | None:
    """GPUs per node in a gres string ("gpu:4", "gpu:a100:4" -> 4; "gpu" -> 1; other -> None)."""
    for part in gres.split(","):
        fields = part.strip().split(":")
        if fields[0] == "gpu":
            return int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
    return None


def load_config(paths: Iterable[str | Path], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge YAML files in order (later wins), apply overrides, validate."""
    merged: dict[str, Any] = {}
    names = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        merged = deep_update(merged, data)
        names.append(str(path))
    merged = deep_update(merged, overrides or {})
    return validate(merged, origin=" + ".join(names) or "config")


def config_digest(section: Any) -> str:
    return hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:12]


def write_effective_config(config: dict[str, Any], path: str | Path) -> Path:
    """Write the merged, validated config for the CLI; rewrite only when it changed, so
    re-parsing the Snakefile (e.g. inside every SLURM job) touches nothing."""
    from rstransfer.core.io import write_text

    path = Path(path)
    text = yaml.safe_dump(config, sort_keys=True)
    if not path.exists() or path.read_text() != text:
        write_text(path, text)
    return path
