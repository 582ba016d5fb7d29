"""Scene readers by name: the generic ones, the presets of public scenes, the demo scenes.

``datasets.<key>.reader`` in config.yaml names one entry of :data:`READERS`:

* generic readers ``mat``, ``npy``, ``envi``, ``geotiff`` read any scene from its declaration
  (``options.cube`` and ``options.labels``; see ``dataset.schema.yaml`` and
  :mod:`rstransfer.data.generic`);
* presets ``indian_pines``, ``paviau``, ``salinas``, ``salinas_a``, ``urban``, ``urban_rebuilt``
  are declarations with the public file and variable names (:mod:`rstransfer.data.presets`);
* ``synthetic_source`` / ``synthetic_target`` generate the demo scenes.

Every reader is a :class:`Reader`, callable as ``reader(root, **options) -> Scene``.
:func:`load_dataset` turns a config entry into a checked :class:`~rstransfer.data.scene.Scene`;
:func:`read_ground_truth` reads only the label file of a preset. Nothing here downloads
anything; :func:`download` (from :mod:`rstransfer.data.fetch`) is an explicit, opt-in helper.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rstransfer.core.errors import ConfigError, DatasetNotFoundError

from .fetch import download
from .generic import declared_files, read_labels, read_scene
from .presets import (  # noqa: F401  (re-exported: callers import the class lists from here)
    INDIAN_PINES_CLASSES,
    PAVIAU_CLASSES,
    PRESETS,
    SALINAS_A_IDS,
    SALINAS_CLASSES,
    URBAN_CUBE_FILES,
    Preset,
    expand,
)
from .scene import Scene, check_scene

__all__ = [
    "GENERIC",
    "GROUND_TRUTH",
    "INDIAN_PINES_CLASSES",
    "PAVIAU_CLASSES",
    "READERS",
    "SALINAS_A_IDS",
    "SALINAS_CLASSES",
    "SCHEMA_PATH",
    "Reader",
    "check_entry",
    "dataset_files",
    "download",
    "get_reader",
    "load_dataset",
    "load_ground_truth",
    "read_ground_truth",
]

SCHEMA_PATH = Path(__file__).with_name("dataset.schema.yaml")
#: the generic readers (formats of the cube file)
GENERIC: tuple[str, ...] = ("mat", "npy", "envi", "geotiff")
Labels = tuple[np.ndarray, tuple[str, ...]]
_NO_KEY = "datasets.<key>"  # config key prefix in messages when a reader is called directly


@functools.cache
def dataset_schema() -> dict[str, Any]:
    """The JSON schema of one ``datasets.<key>`` entry."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def options_schema(reader: str) -> dict[str, Any]:
    """The ``options`` schema of one reader (its ``if reader == name`` branch)."""
    for branch in dataset_schema()["allOf"]:
        cond = branch["if"]["properties"]["reader"]
        if cond.get("const") == reader or reader in cond.get("enum", ()):
            return branch["then"]["properties"]["options"]
    raise KeyError(reader)


def _validated(instance: dict[str, Any], schema: dict[str, Any], prefix: str, context: Mapping[str, Any]) -> dict:
    """Fill defaults and validate; ConfigError naming the key (and the file it concerns)."""
    from rstransfer.core.config import schema_validator, format_error

    instance = copy.deepcopy(instance)
    validator = schema_validator(schema)
    for _ in range(2):  # defaults filled in the first pass may hold nested defaults
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            text = format_error(err)
            text = f"{prefix}{text[len('<top level>') :]}" if not err.absolute_path else f"{prefix}.{text}"
            path = [str(p) for p in err.absolute_path]
            block = path[1] if len(path) > 1 and path[0] == "options" else path[0] if path else ""
            about = context.get(block) if isinstance(context.get(block), Mapping) else None
            if about and about.get("file"):
                text += f" ({block} file {about['file']}" + (
                    f", variable {about['variable']})" if about.get("variable") else ")"
                )
            raise ConfigError(text)
    return instance


def _check_params(name: str, options: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """A preset's or demo scene's own options, checked against the schema, defaults filled."""
    if not isinstance(options, Mapping):
        raise ConfigError(f"{prefix}.options: expected a mapping, got {type(options).__name__}")
    spec = options_schema(name)
    props = spec.get("properties", {})
    unknown = sorted(set(options) - set(props))
    if unknown:
        valid = sorted(props)
        raise ConfigError(
            f"{prefix}.options: unknown option(s) {unknown} for reader {name}; "
            f"valid options: {valid if valid else 'none'}"
        )
    for opt, value in options.items():
        sub = props[opt]
        if "enum" in sub and (value not in sub["enum"] or isinstance(value, bool)):
            raise ConfigError(f"{prefix}.options: option {opt}={value!r}: must be one of {sub['enum']}")
        if sub.get("type") == "number":
            lo, hi = sub.get("minimum"), sub.get("exclusiveMaximum")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value < hi:
                raise ConfigError(f"{prefix}.options: option {opt}={value!r}: must be a number in [{lo}, {hi})")
    return _validated(dict(options), spec, f"{prefix}.options", {})


@dataclass(frozen=True)
class Reader:
    """One registered reader.

    Attributes:
        name: the config name.
        read: ``(root, options, prefix) -> Scene``; ``prefix`` is ``datasets.<key>`` for messages.
        labels: ``(root, options, prefix) -> (labels, class_names)``, or None (no label file).
        files: ``(options) -> {file name: variables}`` read, relative to the dataset folder.
        summary: one line for docs and ``rstransfer inspect``.
    """

    name: str
    read: Callable[[Path | None, Mapping[str, Any], str], Scene]
    labels: Callable[[Path | None, Mapping[str, Any], str], Labels] | None
    files: Callable[[Mapping[str, Any]], dict[str, list[str]]]
    summary: str

    def __call__(self, root: Path | str | None = None, **options: Any) -> Scene:
        return self.read(None if root is None else Path(root), options, _NO_KEY)


def _generic(fmt: str, summary: str) -> Reader:
    def opts(options: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        return _validated(dict(options), options_schema(fmt), f"{prefix}.options", options)

    def namer(prefix: str) -> Callable[[str], str]:
        return lambda rel: f"{prefix}.options.{rel}"

    return Reader(
        name=fmt,
        read=lambda root, o, p: read_scene(fmt, root, opts(o, p), namer(p), name=fmt),
        labels=lambda root, o, p: read_labels(fmt, root, opts(o, p), namer(p)),
        files=lambda o: declared_files(opts(o, _NO_KEY)),
        summary=summary,
    )


def _preset(name: str, preset: Preset) -> Reader:
    def namer(prefix: str) -> Callable[[str], str]:
        return lambda rel: f"{prefix}.reader: preset {name} fixes {rel}"

    def declaration(options: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
        params = _check_params(name, options, prefix)
        return expand(preset.options, params), params

    def read(root: Path | None, options: Mapping[str, Any], prefix: str) -> Scene:
        decl, params = declaration(options, prefix)
        scene = read_scene(preset.reader, root, decl, namer(prefix), name=name)
        scene.notes.update(expand(preset.notes, params))
        return scene

    def labels(root: Path | None, options: Mapping[str, Any], prefix: str) -> Labels:
        return read_labels(preset.reader, root, declaration(options, prefix)[0], namer(prefix))

    return Reader(name, read, labels, lambda o: declared_files(declaration(o, _NO_KEY)[0]), preset.summary)


def _synthetic(name: str) -> Reader:
    def read(root: Path | None, options: Mapping[str, Any], prefix: str) -> Scene:
        from . import synthetic  # needs scipy.ndimage; the file readers do not

        return getattr(synthetic, name)(root, **_check_params(name, options, prefix))

    return Reader(name, read, None, lambda o: {}, f"generated demo scene ({name.split('_')[1]})")


#: reader name -> reader: presets first, then the demo scenes, then the generic readers
READERS: dict[str, Reader] = {
    **{name: _preset(name, preset) for name, preset in PRESETS.items()},
    "synthetic_source": _synthetic("synthetic_source"),
    "synthetic_target": _synthetic("synthetic_target"),
    "mat": _generic("mat", "MATLAB .mat (v5 or v7.3), any variable names and axis order"),
    "npy": _generic("npy", "NumPy .npy/.npz arrays, any axis order"),
    "envi": _generic("envi", "ENVI header + BSQ/BIL/BIP binary"),
    "geotiff": _generic("geotiff", "multiband (Geo)TIFF and a label raster"),
}
read_indian_pines = READERS["indian_pines"]
read_paviau = READERS["paviau"]
read_salinas = READERS["salinas"]
read_salinas_a = READERS["salinas_a"]
read_urban = READERS["urban"]
read_urban_rebuilt = READERS["urban_rebuilt"]


def _ground_truth(reader: Reader) -> Callable[..., Labels]:
    def read(root: Path | str | None, **options: Any) -> Labels:
        return reader.labels(None if root is None else Path(root), options, _NO_KEY)  # type: ignore[misc]

    return read


#: label-only readers, for scenes whose ground-truth file is usable on its own
GROUND_TRUTH: dict[str, Callable[..., Labels]] = {n: _ground_truth(r) for n, r in READERS.items() if r.labels}


def get_reader(name: str) -> Reader:
    """Look up a reader by name.

    Raises:
        KeyError: unknown name; the message lists the valid names.
    """
    try:
        return READERS[name]
    except KeyError:
        raise KeyError(f"unknown reader {name!r}; valid readers: {', '.join(READERS)}") from None


def read_ground_truth(name: str, root: Path, **options: Any) -> Labels:
    """Read only a scene's label map (no cube).

    Args:
        name: reader name with a label file (see :data:`GROUND_TRUTH`).
        root: folder holding the ground-truth file.
        **options: the reader's options (Urban: ``endmembers``, ``purity``; generic: ``cube``
            and ``labels``).

    Returns:
        ``(labels, class_names)``: int32 (H, W) map with 0 = unlabelled, and one name per id.

    Raises:
        KeyError: ``name`` has no label-only reader.
        DatasetNotFoundError: folder or file missing.
        DataFormatError: the file is unreadable or holds unexpected ids.
    """
    if name not in GROUND_TRUTH:
        raise KeyError(f"no ground-truth reader {name!r}; valid: {', '.join(sorted(GROUND_TRUTH))}")
    return GROUND_TRUTH[name](root, **options)


def check_entry(key: str, entry: Any) -> dict[str, Any]:
    """Validate a ``datasets.<key>`` entry and fill its defaults.

    Raises:
        ConfigError: not a mapping, unknown reader, or a bad option (the message names the key).
    """
    if not isinstance(entry, Mapping):
        raise ConfigError(f"datasets.{key}: expected a mapping with at least 'reader', got {type(entry).__name__}")
    name = entry.get("reader")
    if name not in READERS:
        raise ConfigError(f"datasets.{key}.reader: unknown reader {name!r}; valid readers: {', '.join(READERS)}")
    options = entry.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"datasets.{key}.options: expected a mapping, got {type(options).__name__}")
    if name not in GENERIC:
        _check_params(name, options, f"datasets.{key}")  # the presets' own messages first
    return _validated(dict(entry), dataset_schema(), f"datasets.{key}", options)


def _root(entry: Mapping[str, Any], base_dir: Path | str) -> Path | None:
    raw = str(entry.get("path") or "")
    return None if not raw else (Path(raw) if Path(raw).is_absolute() else Path(base_dir) / raw)


def _not_found(
    key: str, entry: Mapping[str, Any], root: Path | None, exc: DatasetNotFoundError
) -> DatasetNotFoundError:
    hint = f"; or fetch it from datasets.{key}.url" if entry.get("url") else ""
    return DatasetNotFoundError(
        f"dataset '{key}' (reader {entry['reader']}) not found: {exc}; searched {root if root else '(no path)'}; "
        f"set datasets.{key}.path in config.yaml to the folder holding these files{hint}"
    )


def _renamed(key: str, entry: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """Apply the ``class_names`` override (same count as the reader's classes)."""
    override = entry.get("class_names")
    if not override:
        return tuple(names)
    if len(override) != len(names):
        raise ConfigError(
            f"datasets.{key}.class_names: {len(override)} names given, reader {entry['reader']} has "
            f"{len(names)} classes ({', '.join(names)})"
        )
    return tuple(str(n) for n in override)


def load_dataset(key: str, entry: Mapping[str, Any], base_dir: Path) -> Scene:
    """Read and check the dataset declared as ``datasets.<key>`` in config.yaml.

    Args:
        key: the dataset key (becomes ``Scene.name``).
        entry: ``{reader, path, options, class_names, split, url, sha256}``; ``path`` is relative
            to ``base_dir`` unless absolute, and may be empty for the synthetic readers.
        base_dir: folder that relative paths are resolved against (config ``data_root``).

    Returns:
        The checked scene: float32 cube, int32 labels.

    Raises:
        ConfigError: unknown reader, bad option, a declaration that cannot fit the files, or
            a bad class-name override.
        DatasetNotFoundError: the folder or a file is missing; the message names the files, their
            variables and ``datasets.<key>.path``.
        DataFormatError: a file is unreadable or disagrees with the declaration, or the scene
            fails :func:`check_scene`.
    """
    entry = check_entry(key, entry)
    reader = READERS[entry["reader"]]
    root = _root(entry, base_dir)
    try:
        scene = reader.read(root, entry["options"], f"datasets.{key}")
    except DatasetNotFoundError as exc:
        raise _not_found(key, entry, root, exc) from exc
    scene = replace(
        scene,
        name=key,
        cube=np.asarray(scene.cube, dtype=np.float32),
        labels=np.asarray(scene.labels, dtype=np.int32),
        class_names=_renamed(key, entry, scene.class_names),
    )
    return check_scene(scene, origin=scene.notes.get("source", key))


def load_ground_truth(key: str, entry: Mapping[str, Any], base_dir: Path) -> Labels:
    """Only the label map of a declared dataset (the cube file is not read).

    Raises:
        KeyError: the reader has no label file (synthetic scenes).
        ConfigError, DatasetNotFoundError, DataFormatError: as :func:`load_dataset`.
    """
    entry = check_entry(key, entry)
    reader = READERS[entry["reader"]]
    if reader.labels is None:
        raise KeyError(f"datasets.{key}: reader {reader.name} has no ground-truth file")
    root = _root(entry, base_dir)
    try:
        labels, names = reader.labels(root, entry["options"], f"datasets.{key}")
    except DatasetNotFoundError as exc:
        raise _not_found(key, entry, root, exc) from exc
    return labels, _renamed(key, entry, names)


def dataset_files(key: str, entry: Mapping[str, Any], base_dir: Path) -> list[Path]:
    """The files a declared dataset reads (workflow inputs); empty for generated scenes.

    An ENVI file declared by its header also brings the binary beside it, when present.
    """
    entry = check_entry(key, entry)
    root = _root(entry, base_dir) or Path(base_dir)
    out: list[Path] = []
    for name in READERS[entry["reader"]].files(entry["options"]):
        path = Path(name) if Path(name).is_absolute() else root / name
        out.append(path)
        if path.suffix.lower() == ".hdr" and path.is_file():
            from .envi import find_pair

            try:
                out.append(find_pair(path)[1])
            except DatasetNotFoundError:
                pass  # reported by the read itself
    return out
