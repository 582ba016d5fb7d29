"""The single place Keras is imported.

Default: tf_keras (the Keras 2 API) with ``TF_USE_LEGACY_KERAS=1``, the only Keras that
horovod.tensorflow.keras averages gradients with. ``RSTRANSFER_KERAS=keras3`` (or a machine
without tf_keras, e.g. a JAX GPU box) uses Keras 3 instead; model code is plain layers and
builds under both.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hides cuInit noise on GPU-less hosts

if os.environ.get("RSTRANSFER_KERAS", "tf_keras") == "keras3":
    import keras  # noqa: F401
else:
    try:
        import tf_keras as keras  # type: ignore[no-redef]
    except ImportError:  # no TensorFlow here: Keras 3 on JAX/torch
        import keras  # type: ignore[no-redef]

IS_KERAS3 = keras.__version__.startswith("3")

__all__ = ["keras", "IS_KERAS3"]
