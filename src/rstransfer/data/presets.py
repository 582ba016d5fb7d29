"""The named public scenes as data: each preset is a declaration for a generic reader.

A preset fixes the file names, variables and axis orders of a public release so that
``reader: indian_pines`` needs nothing but a folder. Anything a preset fixes can be declared
by hand with the generic reader it names (``mat``); the README section "Your own scene" shows
how. A preset's own options (Urban's ``cube_file``, ``endmembers``, ``purity``) are defined in
``dataset.schema.yaml``; here they appear as ``{name}`` placeholders that :func:`expand` fills.

Sources: the Indian Pines, Pavia University, Salinas and Salinas-A scenes are distributed by the
UPV/EHU Computational Intelligence Group ("Hyperspectral Remote Sensing Scenes",
https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes); HYDICE Urban with its
end4/5/6 ground truth comes from F. Zhu's unmixing benchmark (arXiv:1708.05125).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "INDIAN_PINES_CLASSES",
    "PAVIAU_CLASSES",
    "PRESETS",
    "SALINAS_A_IDS",
    "SALINAS_CLASSES",
    "URBAN_CUBE_FILES",
    "Preset",
    "expand",
]

INDIAN_PINES_CLASSES: tuple[str, ...] = (
    "Alfalfa",
    "Corn-notill",
    "Corn-mintill",
    "Corn",
    "Grass-pasture",
    "Grass-trees",
    "Grass-pasture-mowed",
    "Hay-windrowed",
    "Oats",
    "Soybean-notill",
    "Soybean-mintill",
    "Soybean-clean",
    "Wheat",
    "Woods",
    "Buildings-Grass-Trees-Drives",
    "Stone-Steel-Towers",
)
PAVIAU_CLASSES: tuple[str, ...] = (
    "Asphalt",
    "Meadows",
    "Gravel",
    "Trees",
    "Painted metal sheets",
    "Bare Soil",
    "Bitumen",
    "Self-Blocking Bricks",
    "Shadows",
)
SALINAS_CLASSES: tuple[str, ...] = (
    "Brocoli_green_weeds_1",
    "Brocoli_green_weeds_2",
    "Fallow",
    "Fallow_rough_plow",
    "Fallow_smooth",
    "Stubble",
    "Celery",
    "Grapes_untrained",
    "Soil_vinyard_develop",
    "Corn_senesced_green_weeds",
    "Lettuce_romaine_4wk",
    "Lettuce_romaine_5wk",
    "Lettuce_romaine_6wk",
    "Lettuce_romaine_7wk",
    "Vinyard_untrained",
    "Vinyard_vertical_trellis",
)
#: Salinas-A keeps the Salinas class ids; they are remapped to 1..6 in this order.
SALINAS_A_IDS: tuple[int, ...] = (1, 10, 11, 12, 13, 14)
URBAN_CUBE_FILES: tuple[str, ...] = ("Urban_F210.mat", "Urban_R162.mat")


@dataclass(frozen=True)
class Preset:
    """A generic-reader declaration with a name.

    Attributes:
        reader: the generic reader (``mat``).
        options: its ``cube``/``labels`` options; ``"{name}"`` strings are preset options.
        summary: one line for docs and ``rstransfer inspect``.
        notes: extra ``Scene.notes`` entries (same placeholders).
    """

    reader: str
    options: dict[str, Any]
    summary: str
    notes: dict[str, str] = field(default_factory=dict)


def _ehu(cube: str, cube_var: str, gt: str, gt_var: str, names: tuple[str, ...], ids: tuple[int, ...] = ()) -> dict:
    """The EHU layout: one (rows, cols, bands) cube file and one label-map file, one variable each.

    ``fallback``: re-saved copies often rename the variable (``indian_pines`` for
    ``indian_pines_corrected``); the only array of the right rank is then used, with a warning.
    """
    return {
        "cube": {"file": cube, "variable": cube_var, "layout": "rows_cols_bands", "fallback": True},
        "labels": {"file": gt, "variable": gt_var, "fallback": True, "names": list(names), "ids": list(ids)},
    }


_URBAN_TRUTH = {
    # end{k}_groundTruth.mat: A (k x pixels, column-major, summing to 1), M (162 x k), cood (names), nRow, nCol.
    "file": "end{endmembers}_groundTruth.mat",
    "variable": "A",
    "kind": "abundances",
    "layout": "bands_pixels",
    "purity": "{purity}",
    "names_variable": "cood",
}

PRESETS: dict[str, Preset] = {
    "indian_pines": Preset(
        "mat",
        _ehu(
            "Indian_pines_corrected.mat",
            "indian_pines_corrected",
            "Indian_pines_gt.mat",
            "indian_pines_gt",
            INDIAN_PINES_CLASSES,
        ),
        "Indian Pines (AVIRIS, 1992): 145x145 px, 200 bands after water-absorption removal, 16 classes",
    ),
    "paviau": Preset(
        "mat",
        _ehu("PaviaU.mat", "paviaU", "PaviaU_gt.mat", "paviaU_gt", PAVIAU_CLASSES),
        "Pavia University (ROSIS): 610x340 px, 103 bands, 9 classes",
    ),
    "salinas": Preset(
        "mat",
        _ehu("Salinas_corrected.mat", "salinas_corrected", "Salinas_gt.mat", "salinas_gt", SALINAS_CLASSES),
        "Salinas (AVIRIS): 512x217 px, 204 bands, 16 classes",
    ),
    "salinas_a": Preset(
        "mat",
        _ehu(
            "SalinasA_corrected.mat",
            "salinasA_corrected",
            "SalinasA_gt.mat",
            "salinasA_gt",
            tuple(SALINAS_CLASSES[i - 1] for i in SALINAS_A_IDS),
            SALINAS_A_IDS,
        ),
        "Salinas-A (AVIRIS): 83x86 px, 204 bands, 6 classes with the Salinas ids {1, 10..14} mapped to 1..6",
    ),
    "urban": Preset(
        "mat",
        {
            "cube": {
                # Y is bands x pixels in MATLAB column-major pixel order; nBand may predate band removal.
                "file": "{cube_file}",
                "variable": "Y",
                "layout": "bands_pixels",
                "pixel_order": "column",
                "rows": "nRow",
                "cols": "nCol",
                "band_count": "nBand",
            },
            "labels": _URBAN_TRUTH,
        },
        "HYDICE Urban: 307x307 px, 210 or 162 bands; classes = argmax of the end4/5/6 abundances",
    ),
    "urban_rebuilt": Preset(
        "mat",
        {
            "cube": {
                "file": "end{endmembers}_groundTruth.mat",
                "variable": "M",
                "mix_abundances": True,
                "layout": "bands_pixels",
                "pixel_order": "column",
                "rows": "nRow",
                "cols": "nCol",
            },
            "labels": _URBAN_TRUTH,
        },
        "STAND-IN Urban rebuilt as M @ A from the end4/5/6 ground truth (162 bands, noise-free)",
        notes={
            "stand_in": (
                "rebuilt from the real Urban endmembers and abundances (M @ A) of end{endmembers}_groundTruth.mat; "
                "not the HYDICE cube"
            )
        },
    ),
}

_PLACEHOLDER = re.compile(r"^\{(\w+)\}$")


def expand(value: Any, params: Mapping[str, Any]) -> Any:
    """Fill ``{name}`` placeholders: a whole-string placeholder keeps the option's type."""
    if isinstance(value, dict):
        return {k: expand(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, params) for v in value]
    if isinstance(value, str):
        whole = _PLACEHOLDER.match(value)
        return params[whole.group(1)] if whole else value.format(**params)
    return value
