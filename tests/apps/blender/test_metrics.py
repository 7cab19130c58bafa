import math

import numpy as np
import pytest

from apps.blender.metrics import psnr, similarity, ssim, to_display


def image(seed: int = 0, shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]] / max(shape)
    rgb = np.stack([x, y, 0.5 * (x + y)], axis=-1) + rng.normal(0, 0.02, (*shape, 3))
    return np.concatenate([np.clip(rgb, 0, 1), np.ones((*shape, 1))], axis=-1)


def test_identical_images() -> None:
    a = image()
    same = similarity(a, a.copy())
    assert same.psnr == math.inf and same.ssim == pytest.approx(1.0)


def test_more_difference_means_lower_scores() -> None:
    a = image()
    rng = np.random.default_rng(1)
    scores = [similarity(a, np.clip(a + rng.normal(0, s, a.shape), 0, 1))
              for s in (0.01, 0.05, 0.2)]
    assert scores[0].psnr > scores[1].psnr > scores[2].psnr
    assert scores[0].ssim > scores[1].ssim > scores[2].ssim
    assert psnr(np.zeros((4, 4)), np.full((4, 4), 0.1)) == pytest.approx(20.0)


def test_ssim_is_symmetric_and_works_on_tiny_images() -> None:
    a, b = image(0, (5, 7))[..., 0], image(1, (5, 7))[..., 0]
    assert ssim(a, b) == pytest.approx(ssim(b, a))
    assert -1.0 <= ssim(a, b) <= 1.0


def test_display_values() -> None:
    hdr = np.array([[[0.0, 1.0, 1000.0, 1.0], [np.nan, np.inf, -1.0, 2.0]]], dtype=np.float32)
    shown = to_display(hdr, "EXR")
    assert shown.min() >= 0.0 and shown.max() <= 1.0
    assert shown[0, 0, 1] == pytest.approx(0.5 ** (1 / 2.2))
    assert to_display(hdr, "PNG")[0, 0, 2] == 1.0


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        similarity(image(0, (8, 8)), image(0, (8, 9)))
