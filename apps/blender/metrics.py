"""How alike two renders of the same pixels are: PSNR and SSIM, in numpy.

Both work on display values in [0, 1]: PNG pixels as they are, EXR
(scene-linear, unbounded) through (x / (1 + x)) ^ (1 / 2.2), so that a
bright highlight does not outweigh the rest of the image and a change in
the shadows counts about as much as the same relative change in the lights
(as after a view transform). PSNR is over RGBA; SSIM (Wang et
al. 2004: an 11-pixel Gaussian window, sigma 1.5) over the luminance of the
colour composited over black, so transparency counts too.
"""

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
LUMA = np.array([0.2126, 0.7152, 0.0722])
DISPLAY_GAMMA = 2.2


@dataclass(frozen=True)
class Similarity:
    psnr: float  # dB; inf when identical
    ssim: float  # -1..1; 1 when identical


def to_display(rgba: npt.NDArray[np.float32], fmt: str) -> Array:
    out: Array = np.nan_to_num(rgba.astype(np.float64), nan=0.0, posinf=1e6, neginf=0.0)
    if fmt == "EXR":
        rgb = np.clip(out[..., :3], 0.0, None)
        out[..., :3] = (rgb / (1.0 + rgb)) ** (1.0 / DISPLAY_GAMMA)
    result: Array = np.clip(out, 0.0, 1.0)
    return result


def psnr(a: Array, b: Array) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def _gaussian(size: int) -> Array:
    x = np.arange(size) - (size - 1) / 2.0
    g: Array = np.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    normalised: Array = g / float(g.sum())
    return normalised


def _filter(image: Array, kernel: Array) -> Array:
    """Separable 'valid' filtering of a 2-D image."""
    size = kernel.size
    rows = np.lib.stride_tricks.sliding_window_view(image, size, axis=0) @ kernel
    out: Array = np.lib.stride_tricks.sliding_window_view(rows, size, axis=1) @ kernel
    return out


def luminance(rgba: Array) -> Array:
    result: Array = (rgba[..., :3] * rgba[..., 3:4]) @ LUMA
    return result


def ssim(a: Array, b: Array) -> float:
    """Mean SSIM of two grey images of the same shape."""
    size = min(SSIM_WINDOW, *a.shape)
    size -= 1 - size % 2  # odd
    kernel = _gaussian(size)
    mu_a, mu_b = _filter(a, kernel), _filter(b, kernel)
    var_a = _filter(a * a, kernel) - mu_a**2
    var_b = _filter(b * b, kernel) - mu_b**2
    cov = _filter(a * b, kernel) - mu_a * mu_b
    num = (2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2)
    return float(np.mean(num / den))


def similarity(a: Array, b: Array) -> Similarity:
    """Of two display-value RGBA images (height, width, 4) of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    return Similarity(psnr(a, b), ssim(luminance(a), luminance(b)))
