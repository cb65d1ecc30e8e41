"""seg_data: what the training batches of the Keras segmenters hold."""

from __future__ import annotations

import numpy as np


def test_random_crop_keeps_foreground_in_view_and_places_empty_masks_anywhere():
    from skinbench.approaches.seg_data import random_crop

    rng = np.random.default_rng(0)
    image = np.arange(64 * 48 * 3, dtype=np.float32).reshape(64, 48, 3)
    mask = np.zeros((64, 48), np.uint8)
    mask[60, 2] = 1  # one foreground pixel in a corner
    corners = set()
    for _ in range(50):
        img, m = random_crop(image, mask, 16, rng)
        assert img.shape == (16, 16, 3) and m.shape == (16, 16) and m.sum() == 1
        top, left = divmod(int(img[0, 0, 0]) // 3, 48)
        np.testing.assert_array_equal(img, image[top:top + 16, left:left + 16])
        corners.add((top, left))
    assert len(corners) > 5  # placed at random among the windows holding that pixel
    tops = {divmod(int(random_crop(image, mask * 0, 16, rng)[0][0, 0, 0]) // 3, 48)[0] for _ in range(50)}
    assert min(tops) < 20 and max(tops) > 30  # an empty mask: anywhere in the image
