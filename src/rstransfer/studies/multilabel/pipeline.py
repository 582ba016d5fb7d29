"""tf.data streams: epoch-structured, seeded training streams (fine-tuning batches and BYOL view
pairs) and plain inference batches.

Every random choice (order, crop, flip, jitter...) is drawn by a stateless op from
``(seed, epoch, position)``, so epoch ``e`` is the same whether or not the run was resumed, and
Horovod ranks (which see disjoint index shards) draw independently.

BYOL views (Grill et al. 2020, Table 6, asymmetric): random resized crop (area 8-100 %, aspect
3/4-4/3), horizontal + vertical flips and 90-degree rotations (remote-sensing scenes have no
"up"), colour jitter (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1; p = 0.8), grey
(p = 0.2), Gaussian blur (p = 1.0 / 0.1) and solarisation (p = 0 / 0.2). For input that is not
RGB only the band-agnostic part runs (crop, flips, rotations, brightness, contrast, blur).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rstransfer.models.densenet import preprocess

#: (blur probability, solarise probability) of the two BYOL views
VIEW_PROBS = ((1.0, 0.0), (0.1, 0.2))


def _seed(*parts: Any) -> Any:
    import tensorflow as tf

    out = tf.constant(0, tf.int64)
    for p in parts:
        out = out * 1_000_003 + tf.cast(p, tf.int64)
    return tf.stack([out, tf.constant(0x5EED, tf.int64)])


def _sub(seed: Any, k: int) -> Any:
    import tensorflow as tf

    return tf.random.experimental.stateless_fold_in(seed, k)


def _uniform(seed: Any) -> Any:
    import tensorflow as tf

    return tf.random.stateless_uniform([], seed=seed)


def flip_rotate(x: Any, seed: Any) -> Any:
    """Random horizontal/vertical flips and a random multiple of 90 degrees."""
    import tensorflow as tf

    x = tf.image.stateless_random_flip_left_right(x, _sub(seed, 1))
    x = tf.image.stateless_random_flip_up_down(x, _sub(seed, 2))
    k = tf.random.stateless_uniform([], seed=_sub(seed, 3), maxval=4, dtype=tf.int32)
    return tf.image.rot90(x, k)


def gaussian_blur(x: Any, sigma: Any, radius: int) -> Any:
    """Separable Gaussian blur of one (H, W, C) image."""
    import tensorflow as tf

    r = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * tf.square(r / sigma))
    k = k / tf.reduce_sum(k)
    c = tf.shape(x)[-1]
    kx = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, c, 1])
    ky = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, c, 1])
    y = tf.nn.depthwise_conv2d(x[None], kx, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(y, ky, [1, 1, 1, 1], "SAME")[0]


def byol_view(image: Any, seed: Any, view: int, crop_area: tuple[float, float]) -> Any:
    """One augmented BYOL view of a uint8 (H, W, C) image -> preprocessed float32."""
    import tensorflow as tf

    h, w, c = image.shape
    x = tf.image.convert_image_dtype(image, tf.float32)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(x), tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=_sub(seed, 10), min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=crop_area, max_attempts=20, use_image_if_no_bounding_boxes=True,
    )
    x = tf.ensure_shape(tf.image.resize(tf.slice(x, begin, size), (h, w), method="bilinear"), (h, w, c))
    x = flip_rotate(x, _sub(seed, 11))
    rgb = c == 3

    def jitter(t: Any) -> Any:
        t = tf.image.stateless_random_brightness(t, 0.4, _sub(seed, 12))
        t = tf.image.stateless_random_contrast(t, 0.6, 1.4, _sub(seed, 13))
        if rgb:
            t = tf.image.stateless_random_saturation(t, 0.8, 1.2, _sub(seed, 14))
            t = tf.image.stateless_random_hue(t, 0.1, _sub(seed, 15))
        return tf.clip_by_value(t, 0.0, 1.0)

    x = tf.cond(_uniform(_sub(seed, 16)) < 0.8, lambda: jitter(x), lambda: x)
    if rgb:
        x = tf.cond(_uniform(_sub(seed, 17)) < 0.2, lambda: tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)),
                    lambda: x)
    p_blur, p_solar = VIEW_PROBS[view]
    sigma = 0.1 + 1.9 * _uniform(_sub(seed, 18))
    radius = max(1, int(round(h / 20)))  # kernel ~ 10 % of the side, as in BYOL at 224 px
    x = tf.cond(_uniform(_sub(seed, 19)) < p_blur, lambda: gaussian_blur(x, sigma, radius), lambda: x)
    if rgb:
        x = tf.cond(_uniform(_sub(seed, 20)) < p_solar, lambda: tf.where(x < 0.5, x, 1.0 - x), lambda: x)
    return preprocess(x * 255.0)


def _epoch_stream(n: int, batch_size: int, steps: int, seed: int, first_epoch: int) -> Any:
    """(position, epoch, slot) per element: epoch e is a permutation drawn from (seed, e),
    cycled to exactly ``steps * batch_size`` elements."""
    import tensorflow as tf

    per_epoch = steps * batch_size

    def one_epoch(epoch: Any) -> Any:
        order = tf.argsort(tf.random.stateless_uniform([n], seed=_seed(seed, epoch)))
        slots = tf.range(per_epoch, dtype=tf.int64)
        order = tf.gather(order, tf.cast(slots % n, tf.int32))
        return tf.data.Dataset.from_tensor_slices((order, tf.fill([per_epoch], epoch), slots))

    return tf.data.Dataset.range(first_epoch, 2**31).flat_map(one_epoch)


def steps_per_epoch(n: int, batch_size: int, ranks: int = 1) -> int:
    return max(1, math.ceil(n / (batch_size * ranks)))


def byol_stream(images: np.ndarray, batch_size: int, seed: int, first_epoch: int = 0,
                shard: tuple[int, int] = (1, 0), crop_area: tuple[float, float] = (0.08, 1.0)) -> tuple[Any, int]:
    """``((view1, view2) batches, steps per epoch)`` over this rank's shard of ``images``."""
    import tensorflow as tf

    size, rank = shard
    local = tf.constant(images[rank::size])
    n = int(local.shape[0])
    steps = steps_per_epoch(len(images), batch_size, size)

    def views(pos: Any, epoch: Any, slot: Any) -> Any:
        s = _seed(seed, epoch, slot, rank)
        img = local[pos]
        return byol_view(img, _sub(s, 1), 0, crop_area), byol_view(img, _sub(s, 2), 1, crop_area)

    ds = _epoch_stream(n, batch_size, steps, seed, first_epoch).map(views).batch(batch_size, drop_remainder=True)
    return ds.prefetch(1), steps


def labelled_stream(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, first_epoch: int = 0,
                    augment: bool = True) -> tuple[Any, int]:
    """``((x, y) batches, steps per epoch)``: flips + 90-degree rotations when ``augment``."""
    import tensorflow as tf

    x_all, y_all = tf.constant(images), tf.constant(labels.astype(np.float32))
    steps = steps_per_epoch(len(images), batch_size)

    def item(pos: Any, epoch: Any, slot: Any) -> Any:
        x = tf.cast(x_all[pos], tf.float32)
        if augment:
            x = flip_rotate(x, _seed(seed, epoch, slot))
        return preprocess(x), y_all[pos]

    ds = _epoch_stream(len(images), batch_size, steps, seed, first_epoch).map(item).batch(batch_size)
    return ds.prefetch(1), steps


def inference_stream(images: np.ndarray, batch_size: int) -> Any:
    """Preprocessed batches of ``images`` in order (no augmentation)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    return ds.map(lambda x: preprocess(tf.cast(x, tf.float32))).prefetch(1)
