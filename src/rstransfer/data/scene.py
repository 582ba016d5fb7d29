"""The in-memory form every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Scene:
    """A labelled hyperspectral scene.

    Attributes:
        name: dataset key from config.yaml.
        cube: (H, W, B) float32 radiance/reflectance.
        labels: (H, W) int32; 0 = unlabelled, 1..C = ``class_names[label-1]``.
        class_names: one name per class id 1..C.
        wavelengths: (B,) nm, or None when the source file has none.
        stand_in: True for scenes rebuilt from other data (must be labelled so in reports).
    """

    name: str
    cube: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    wavelengths: np.ndarray | None = None
    stand_in: bool = False
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_bands(self) -> int:
        return int(self.cube.shape[-1])


def check_scene(scene: Scene, origin: str) -> Scene:
    """Validate a freshly read scene; ``origin`` (file or dataset key) goes into every message.

    Raises:
        DataFormatError: cube/GT shape mismatch, NaN/Inf in bands, or a label outside the
            class list.
    """
    from rstransfer.core.errors import DataFormatError

    cube, labels = scene.cube, scene.labels
    if cube.ndim != 3:
        raise DataFormatError(f"{origin}: cube must be 3-D (H, W, bands), got shape {cube.shape}")
    if labels.shape != cube.shape[:2]:
        raise DataFormatError(
            f"{origin}: cube/GT shape mismatch: cube is {cube.shape[0]}x{cube.shape[1]}, "
            f"ground truth is {labels.shape[0]}x{labels.shape[1]}"
        )
    finite = np.isfinite(cube)
    if not finite.all():
        bad = np.unique(np.nonzero(~finite)[2])
        raise DataFormatError(
            f"{origin}: NaN or Inf in {int((~finite).sum())} values, bands {bad[:10].tolist()}"
            + (" ..." if bad.size > 10 else "")
        )
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi > scene.n_classes:
        bad = sorted({int(v) for v in np.unique(labels) if v < 0 or v > scene.n_classes})
        raise DataFormatError(
            f"{origin}: label(s) {bad[:10]} outside the class list "
            f"(0 = unlabelled, 1..{scene.n_classes} = {scene.n_classes} classes)"
        )
    return scene
