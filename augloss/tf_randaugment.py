"""The earlier code's RandAugment (TF Model Garden's), re-implemented exactly in torch.

Source
------
The authors' earlier code (public repository ``OUStudent/NeuralLossFunctionEvolution``, file
``effnet_rand_aug.py``) carries a copy of TF Model Garden's ``RandAugment`` and of the functions
it calls (``autoaugment.py`` of ``official/vision``), plus its own ``transform_og`` wrapper of
``ImageProjectiveTransformV2``. Its surrogate pipeline resizes each image with
``tf.image.resize`` (float32) to 80 x 80, and ``RandAugment.distort`` clips that to [0, 255]
and casts it to uint8 (truncation) before the ops; it then builds
``RandAugment(magnitude=M, translate_const=100, cutout_const=40)`` with ``num_layers=2``.
This module is torch only (TensorFlow is not needed); the facts below were read from that file
and from TensorFlow's sources (``image_ops_impl.py``, ``core/kernels/image/image_ops.h``,
``histogram_op.cc``, ``cwise_ops.h``), not run against TensorFlow.

Policy (``RandAugment.distort``)
--------------------------------
For each of ``num_layers`` layers, ``op_to_select`` is uniform on ``[0, 17)``: indices 0-15
pick an op of :data:`OPS` (in this order), 16 is ``tf.switch_case``'s default, the identity.
The chosen op is ALWAYS applied: a probability in [0.2, 0.8] is drawn per op but never used.
Every op gets the same level ``L = M`` (``_MAX_LEVEL = 10``; ``L`` may exceed 10):

======================================  ==============================================  =======
op                                      argument at level L                             M = 5
======================================  ==============================================  =======
AutoContrast, Equalize, Invert          none
Rotate                                  ``(L / 10) * 30`` degrees, negated w.p. 1/2     15 deg
Posterize                               ``int((L / 10) * 4)`` bits                      2
Solarize                                ``int((L / 10) * 256)`` threshold               128
Color, Contrast, Brightness, Sharpness  ``(L / 10) * 1.8 + 0.1`` blend factor           1.0 (*)
ShearX, ShearY                          ``(L / 10) * 0.3``, negated w.p. 1/2            0.15
TranslateX, TranslateY                  ``(L / 10) * translate_const`` px, negated 1/2  50 px
Cutout                                  ``pad = int((L / 10) * cutout_const)``: a       20 (a
                                        ``2 pad`` square at a uniform centre, fill 128  40 px
                                                                                        square)
SolarizeAdd                             ``int((L / 10) * 110)`` added below 128         55
======================================  ==============================================  =======

(*) ``0.5 * 1.8 + 0.1 == 1.0`` exactly in double precision, and ``blend`` returns its second
image at factor 1.0, so at M = 5 Color, Contrast, Brightness and Sharpness are exact identities:
together with branch 16, 5 of the 17 branches leave the image unchanged.

The ops (uint8 in, uint8 out; float maths in float32 as TF's)
-------------------------------------------------------------
* ``blend(a, b, f)``: ``f == 0`` -> ``a``; ``f == 1`` -> ``b``; else ``a + f * (b - a)`` in
  float32, cast to uint8 by truncation (``0 < f < 1``) or clipped to [0, 255] first.
* Color: ``blend(gray, x, f)`` with ``gray = rgb_to_grayscale(x)`` repeated over RGB;
  ``tf.image.rgb_to_grayscale`` on uint8 is ``convert_image_dtype``: ``x * float32(1 / 255)``,
  weights ``(0.2989, 0.5870, 0.1140)``, then ``cast(g * 255.5)`` (truncation; ``saturate`` is
  False there, and ``g * 255.5 <= 255.47`` cannot overflow).
* Contrast: the degenerate is a constant image of ``uint8(clip(sum(hist) / 256))``, where
  ``hist`` is the 256-bin histogram of the grayscale image, so ``sum(hist)`` is the PIXEL COUNT:
  the "mean" is ``H * W / 256`` (25 at 80 x 80) whatever the content (a quirk of the code,
  reproduced).
* Brightness: ``blend(0, x, f)``. Sharpness: 3 x 3 kernel ``[[1,1,1],[1,5,1],[1,1,1]] / 13``,
  depthwise VALID convolution in float32, clipped, truncated, the 1-px border from the
  original, then ``blend(smoothed, x, f)``.
* Posterize: ``(x >> s) << s`` with ``s = 8 - bits``; TF's shift ops clamp ``s`` to [0, 7] for
  uint8, so ``bits = 0`` (M < 2.5) keeps the top bit only (shift 7, not 8).
* Solarize: ``where(x < t, x, 255 - x)``. SolarizeAdd: ``where(x < 128, clip(x + a), x)``.
  Invert: ``255 - x``.
* AutoContrast, per channel: ``lo, hi`` = min, max; if ``hi > lo``,
  ``x * s + o`` with ``s = 255 / (hi - lo)``, ``o = -lo * s`` (float32), clipped, truncated.
* Equalize, per channel (PIL's algorithm): 256-bin histogram (``histogram_fixed_width`` over
  [0, 255] puts integer ``v`` in bin ``v``), ``step = (count - count of the top value) // 255``;
  ``step == 0`` -> unchanged; else ``lut = (cumsum + step // 2) // step`` shifted right by one
  (0 first), clipped to [0, 255], and ``x -> lut[x]``.
* Cutout: centre ``cy ~ U{0..H-1}``, ``cx ~ U{0..W-1}``; rows ``[max(0, cy - pad),
  min(H, cy + pad))``, columns likewise, set to 128.
* Rotate, ShearX/Y, TranslateX/Y go through ``ImageProjectiveTransformV2`` with NEAREST
  interpolation. Output pixel ``(x, y)`` reads input point ``x' = (a0 x + a1 y + a2) / k``,
  ``y' = (b0 x + b1 y + b2) / k``, ``k = c0 x + c1 y + 1`` (float32); each coordinate is then
  mapped by the fill mode and rounded with ``std::round`` (half away from zero). Matrices:
  rotate ``[cos, -sin, ox, sin, cos, oy, 0, 0]`` with ``ox = ((W-1) - (cos (W-1) - sin (H-1)))
  / 2``, ``oy = ((H-1) - (sin (W-1) + cos (H-1))) / 2`` (radians in float32); shear_x
  ``[1, l, 0, 0, 1, 0, 0, 0]``; shear_y ``[1, 0, 0, l, 1, 0, 0, 0]``; translate_x(p) =
  ``translate([-p, 0])`` = ``[1, 0, p, 0, 1, 0, 0, 0]``, so output column ``j`` reads input
  column ``j + p`` (a positive ``p`` moves the content LEFT); translate_y likewise in rows.
  With rows pointing down, a positive angle turns the content counter-clockwise as displayed
  (90 deg on a square image is ``torch.rot90(x, 1, dims=(-2, -1))``), although TF's docstring
  says clockwise; the sign is random anyway.

REFLECT fill (a fact about the earlier code)
--------------------------------------------
The earlier code's ``transform_og`` has the default ``fill_mode='reflect'`` and its
``transform()`` passes only ``interpolation='nearest'``: every geometric op REFLECTS
out-of-image source coordinates (TF's REFLECT, ``d c b a | a b c d | d c b a``, then clamped to
``[0, len - 1]``), including the all-ones channel that ``wrap()`` appends, so ``unwrap()``'s
128 fill never fires: rotated, sheared and translated images have mirrored content in their
corners and borders, never grey, and the ``replace`` argument of those ops has no effect (only
Cutout's 128 shows). :func:`reflect_coordinates` is TF's ``MapCoordinate`` for ``FILL_REFLECT``
(``image_ops.h``), operation for operation in float32.

Randomness
----------
:class:`TFRandAugment` draws from a ``torch.Generator`` (TF's stream is not reproducible in
torch; only the distribution is). Per layer one negation coin serves whichever signed op the
sample drew (TF draws one per op per layer and uses only the chosen op's: same distribution).
The draw order is documented on :meth:`TFRandAugment.draw`.

Known or possible differences from TF (at M = 5: the 1st, 2nd and 4th)
-----------------------------------------------------------------------
* The pipeline before this module: TF resizes to float32 and ``distort`` truncates that to
  uint8; a torch pipeline that resizes uint8 images rounds instead (and may antialias). Feed
  :class:`TFRandAugment` the same uint8 image TF would see to compare ops exactly.
* Rotate's ``cos``/``sin`` of the float32 angle are taken in float64 and rounded to float32,
  the correctly rounded value; TF's (Eigen's scalar path for a one-element tensor, i.e. the C
  library's ``cosf``/``sinf``) is that or 1 ulp away, which could move a nearest-neighbour
  sample lying within ~1e-6 px of a half-pixel boundary.
* Float32 sums are evaluated left to right with separate multiply and add roundings (no FMA).
  That is TF's element-wise ops (one kernel per op) and, as far as could be checked, its
  generic CPU kernels (pip builds target AVX without FMA); a oneDNN-backed MatMul or depthwise
  convolution could fuse or reorder. So the grayscale dot product (Color at factor != 1) and
  the sharpness kernel (Sharpness at factor != 1, accumulated row-major from 0 as TF's CPU
  depthwise kernel) could differ by 1 level on pixels whose float32 value lies within an ulp
  of an integer.
* TF versions: the clamp after the reflection is in TF >= 2.4's ``MapCoordinate`` (a mid-2020
  development version lacked it, and there coordinates within half a pixel outside the last row
  or column rounded out of the image, read 0, and were turned to 128 by ``unwrap``);
  translations (integer coordinates) are unaffected.
* Levels TF itself would not run: Solarize thresholds >= 256 (M >= 10) and Posterize bits > 8
  (M >= 22.5) are Python ints that TF must convert to uint8 (an error or a wrap-around there);
  here the threshold compares as an integer (x < 256 always: identity) and the shift is clamped
  to 0 (identity).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

#: The ops in the earlier code's ``available_ops`` order; branch ``len(OPS)`` is the identity.
OPS: tuple[str, ...] = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
    "Cutout", "SolarizeAdd",
)
#: ``op_to_select`` is uniform on ``[0, BRANCHES)``; the last branch is the identity.
BRANCHES: int = len(OPS) + 1
IDENTITY: int = len(OPS)
MAX_LEVEL: float = 10.0  # _MAX_LEVEL
REPLACE: int = 128  # replace_value = [128] * 3 (only Cutout's fill shows: see "REFLECT fill")
GRAY_WEIGHTS: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)
SHARPNESS_KERNEL: tuple[tuple[int, ...], ...] = ((1, 1, 1), (1, 5, 1), (1, 1, 1))  # / 13

#: The ops whose argument is negated with probability 1/2 (``_randomly_negate_tensor``).
SIGNED: frozenset[str] = frozenset({"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"})
_ENHANCE = frozenset({"Color", "Contrast", "Brightness", "Sharpness"})


def level_args(magnitude: float, cutout_const: float = 40.0,
               translate_const: float = 100.0) -> dict[str, float | int | None]:
    """Each op's unsigned argument at level ``magnitude`` (``level_to_arg``), in Python doubles
    computed in the earlier code's order; None for the argument-free ops."""
    level = float(magnitude)
    enhance = (level / MAX_LEVEL) * 1.8 + 0.1
    shear = (level / MAX_LEVEL) * 0.3
    translate = (level / MAX_LEVEL) * float(translate_const)
    return {
        "AutoContrast": None,
        "Equalize": None,
        "Invert": None,
        "Rotate": (level / MAX_LEVEL) * 30.0,
        "Posterize": int((level / MAX_LEVEL) * 4),
        "Solarize": int((level / MAX_LEVEL) * 256),
        "Color": enhance,
        "Contrast": enhance,
        "Brightness": enhance,
        "Sharpness": enhance,
        "ShearX": shear,
        "ShearY": shear,
        "TranslateX": translate,
        "TranslateY": translate,
        "Cutout": int((level / MAX_LEVEL) * float(cutout_const)),
        "SolarizeAdd": int((level / MAX_LEVEL) * 110),
    }


# --------------------------------------------------------------------------------------------
# Helpers


def _check(x: torch.Tensor, what: str = "image batch") -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"TF RandAugment expects a uint8 {what} tensor (N, 3, H, W); got "
                         f"{type(x).__name__}")
    if x.dtype != torch.uint8:
        raise ValueError(f"TF RandAugment expects a uint8 {what} (N, 3, H, W); got dtype "
                         f"{x.dtype}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"TF RandAugment expects a uint8 {what} of shape (N, 3, H, W) (3 "
                         f"channels, RGB); got shape {tuple(x.shape)}")


def _per_sample(v, n: int, device: torch.device, dtype: torch.dtype,
                name: str) -> torch.Tensor:
    """``v`` (a Python number or a tensor of 1 or ``n`` elements) as a length-``n`` vector of
    ``dtype`` on ``device``; a float value becomes float32 as TF converts a Python double."""
    t = torch.as_tensor(v, device=device)
    if t.numel() == 1:
        t = t.reshape(1).expand(n)
    elif t.ndim != 1 or t.numel() != n:
        raise ValueError(f"{name}: expected a scalar or {n} per-sample values; got shape "
                         f"{tuple(t.shape)}")
    if dtype == torch.int64 and t.is_floating_point():
        raise ValueError(f"{name}: expected integer values; got dtype {t.dtype}")
    return t.to(dtype)


def _f32(v: float, device: torch.device) -> torch.Tensor:
    """A float32 scalar tensor on ``device``: TF converts Python doubles to float32 before the
    op, and an on-device tensor keeps torch from rewriting a division as a reciprocal."""
    return torch.tensor(v, dtype=torch.float32, device=device)


def _to_uint8(v: torch.Tensor) -> torch.Tensor:
    """float32 in [0, 255] -> uint8 by truncation (``tf.cast``)."""
    return v.clamp(0.0, 255.0).to(torch.uint8)


# --------------------------------------------------------------------------------------------
# Colour ops


def blend(image1: torch.Tensor, image2: torch.Tensor, factor) -> torch.Tensor:
    """``blend(image1, image2, factor)`` per sample (``factor`` a scalar or one per sample).

    One formula covers TF's three branches exactly: at ``factor`` 0 (1) the float32 value is
    ``image1`` (``image2``) itself, and for ``0 < factor < 1`` the float32 result lies between
    the two integers (rounding is monotonic), so the clip before the truncating cast, which TF
    skips there, changes nothing."""
    n = image1.shape[0]
    f = _per_sample(factor, n, image1.device, torch.float32, "factor").view(n, 1, 1, 1)
    a = image1.to(torch.float32)
    b = image2.to(torch.float32)
    return _to_uint8(a + f * (b - a))


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """``tf.image.rgb_to_grayscale`` on uint8 (N, 3, H, W) -> uint8 (N, 1, H, W)."""
    _check(x)
    dev = x.device
    f = x.to(torch.float32) * _f32(1.0 / 255.0, dev)
    w0, w1, w2 = (_f32(w, dev) for w in GRAY_WEIGHTS)
    gray = (f[:, 0] * w0 + f[:, 1] * w1) + f[:, 2] * w2
    return (gray * _f32(255.5, dev)).to(torch.uint8).unsqueeze(1)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """PIL-style AutoContrast per sample and channel (float32, truncating cast)."""
    _check(x)
    lo = x.amin(dim=(2, 3), keepdim=True).to(torch.float32)
    hi = x.amax(dim=(2, 3), keepdim=True).to(torch.float32)
    stretch = hi > lo
    span = torch.where(stretch, hi - lo, torch.ones_like(hi))
    scale = torch.full_like(span, 255.0) / span
    offset = -lo * scale
    out = _to_uint8(x.to(torch.float32) * scale + offset)
    return torch.where(stretch, out, x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL-style Equalize per sample and channel (histograms via one offset ``bincount``)."""
    _check(x)
    n, c, h, w = x.shape
    if x.numel() == 0:
        return x.clone()
    flat = x.reshape(n * c, h * w).to(torch.int64)
    offsets = torch.arange(n * c, device=x.device).unsqueeze(1) * 256
    hist = torch.bincount((flat + offsets).reshape(-1), minlength=n * c * 256).view(n * c, 256)
    top = hist.gather(1, flat.amax(dim=1, keepdim=True)).squeeze(1)  # last nonzero bin
    step = (h * w - top) // 255
    safe = step.clamp(min=1).unsqueeze(1)
    lut = (hist.cumsum(dim=1) + safe // 2) // safe
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], dim=1).clamp(0, 255)
    out = torch.where((step == 0).unsqueeze(1), flat, lut.gather(1, flat))
    return out.to(torch.uint8).view(n, c, h, w)


def invert(x: torch.Tensor) -> torch.Tensor:
    """``255 - x``."""
    _check(x)
    return 255 - x


def posterize(x: torch.Tensor, bits) -> torch.Tensor:
    """``(x >> s) << s`` with ``s = 8 - bits`` clamped to [0, 7] as TF's uint8 shifts do."""
    _check(x)
    n = x.shape[0]
    shift = (8 - _per_sample(bits, n, x.device, torch.int64, "bits")).clamp(0, 7)
    mask = ((torch.full_like(shift, 255) >> shift) << shift).to(torch.uint8).view(n, 1, 1, 1)
    return x & mask


def solarize(x: torch.Tensor, threshold) -> torch.Tensor:
    """``where(x < threshold, x, 255 - x)``."""
    _check(x)
    n = x.shape[0]
    t = _per_sample(threshold, n, x.device, torch.int64, "threshold").view(n, 1, 1, 1)
    return torch.where(x.to(torch.int64) < t, x, 255 - x)


def solarize_add(x: torch.Tensor, addition, threshold=128) -> torch.Tensor:
    """``where(x < threshold, clip(x + addition, 0, 255), x)``."""
    _check(x)
    n = x.shape[0]
    a = _per_sample(addition, n, x.device, torch.int64, "addition").view(n, 1, 1, 1)
    t = _per_sample(threshold, n, x.device, torch.int64, "threshold").view(n, 1, 1, 1)
    xi = x.to(torch.int64)
    return torch.where(xi < t, (xi + a).clamp(0, 255), xi).to(torch.uint8)


def color(x: torch.Tensor, factor) -> torch.Tensor:
    """``blend(grayscale_to_rgb(rgb_to_grayscale(x)), x, factor)``."""
    return blend(rgb_to_grayscale(x).expand_as(x), x, factor)


def contrast(x: torch.Tensor, factor) -> torch.Tensor:
    """``blend(constant, x, factor)`` with the constant ``uint8(clip(H * W / 256))`` (the code's
    histogram "mean" is the pixel count over 256, whatever the content)."""
    _check(x)
    h, w = x.shape[-2:]
    mean = _f32(float(h * w), x.device) / _f32(256.0, x.device)
    degenerate = _to_uint8(mean).expand_as(x)
    return blend(degenerate, x, factor)


def brightness(x: torch.Tensor, factor) -> torch.Tensor:
    """``blend(zeros, x, factor)``."""
    _check(x)
    return blend(torch.zeros_like(x), x, factor)


def sharpness(x: torch.Tensor, factor) -> torch.Tensor:
    """PIL's SMOOTH kernel as a float32 VALID depthwise convolution (row-major accumulation),
    clipped and truncated, border from ``x``; then ``blend(smoothed, x, factor)``."""
    _check(x)
    _, _, h, w = x.shape
    result = x.clone()
    if h >= 3 and w >= 3:
        xf = x.to(torch.float32)
        kernel = torch.tensor(SHARPNESS_KERNEL, dtype=torch.float32, device=x.device) \
            / _f32(13.0, x.device)
        acc = torch.zeros_like(xf[:, :, : h - 2, : w - 2])
        for r in range(3):
            for c in range(3):
                acc = acc + xf[:, :, r: r + h - 2, c: c + w - 2] * kernel[r, c]
        result[:, :, 1: h - 1, 1: w - 1] = _to_uint8(acc)
    return blend(result, x, factor)


def cutout(x: torch.Tensor, pad_size, cy, cx, replace: int = REPLACE) -> torch.Tensor:
    """Fill rows ``[max(0, cy - pad), min(H, cy + pad))`` x the same columns around ``cx`` with
    ``replace`` (all per sample)."""
    _check(x)
    if not 0 <= int(replace) <= 255:
        raise ValueError(f"cutout: replace must be in [0, 255]; got {replace}")
    n, _, h, w = x.shape
    dev = x.device
    pad = _per_sample(pad_size, n, dev, torch.int64, "pad_size").view(n, 1, 1)
    cy = _per_sample(cy, n, dev, torch.int64, "cy").view(n, 1, 1)
    cx = _per_sample(cx, n, dev, torch.int64, "cx").view(n, 1, 1)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    hole = (rows >= (cy - pad).clamp(min=0)) & (rows < (cy + pad).clamp(max=h)) \
        & (cols >= (cx - pad).clamp(min=0)) & (cols < (cx + pad).clamp(max=w))
    return torch.where(hole.unsqueeze(1), torch.full_like(x, int(replace)), x)


# --------------------------------------------------------------------------------------------
# Geometric ops: ImageProjectiveTransformV2, NEAREST, REFLECT


def reflect_coordinates(coord: torch.Tensor, length: int) -> torch.Tensor:
    """TF's ``MapCoordinate<FILL_REFLECT>`` in float32: ``d c b a | a b c d | d c b a``, then
    clamped to ``[0, length - 1]`` (``image_ops.h``; each C++ operation in order)."""
    coord = coord.to(torch.float32)
    if length <= 1:
        return torch.zeros_like(coord)
    dev = coord.device
    sz2 = 2 * length
    sz2_f = _f32(float(sz2), dev)
    one = _f32(1.0, dev)
    # in_coord < 0: in = sz2 * int64(-in / sz2) + in; in = in < -len ? in + sz2 : -in - 1
    k = torch.trunc(-coord / sz2_f).to(torch.int64)
    low = (k * sz2).to(torch.float32) + coord
    low = torch.where(low < -length, low + sz2_f, -low - one)
    # in_coord > len - 1: in -= sz2 * int64(in / sz2); if in >= len: in = sz2 - in - 1
    k = torch.trunc(coord / sz2_f).to(torch.int64)
    high = coord - (k * sz2).to(torch.float32)
    high = torch.where(high >= length, (sz2_f - high) - one, high)
    out = torch.where(coord < 0, low, torch.where(coord > length - 1, high, coord))
    return out.clamp(0.0, float(length - 1))


def _round_half_away(v: torch.Tensor) -> torch.Tensor:
    """``std::round`` for ``v >= 0`` (torch.round rounds half to even); exact in float32."""
    fl = torch.floor(v)
    return (fl + ((v - fl) >= 0.5).to(v.dtype)).to(torch.int64)


def projective_transform(x: torch.Tensor, transforms) -> torch.Tensor:
    """``ImageProjectiveTransformV2(x, transforms, interpolation=NEAREST, fill_mode=REFLECT)``
    with one 8-vector per sample (``transforms`` of shape (8,) or (N, 8)), one gather for the
    batch. A sample whose projection ``k`` is 0 (or whose coordinates are not finite) reads the
    V2 fill value 0 (no RandAugment matrix does that: their ``k`` is 1)."""
    _check(x)
    n, c, h, w = x.shape
    dev = x.device
    t = torch.as_tensor(transforms, dtype=torch.float32, device=dev)
    if t.ndim == 1:
        t = t.unsqueeze(0).expand(n, -1)
    if t.shape != (n, 8):
        raise ValueError(f"transforms: expected shape (8,) or ({n}, 8); got {tuple(t.shape)}")
    if x.numel() == 0:
        return x.clone()
    col = [t[:, i].view(n, 1, 1) for i in range(8)]
    xs = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, w)
    ys = torch.arange(h, device=dev, dtype=torch.float32).view(1, h, 1)
    proj = (col[6] * xs + col[7] * ys) + _f32(1.0, dev)
    denom = torch.where(proj == 0, torch.ones_like(proj), proj)
    in_x = ((col[0] * xs + col[1] * ys) + col[2]) / denom
    in_y = ((col[3] * xs + col[4] * ys) + col[5]) / denom
    valid = (proj != 0) & torch.isfinite(in_x) & torch.isfinite(in_y)
    in_x = torch.where(valid, in_x, torch.zeros_like(in_x))
    in_y = torch.where(valid, in_y, torch.zeros_like(in_y))
    ix = _round_half_away(reflect_coordinates(in_x, w))
    iy = _round_half_away(reflect_coordinates(in_y, h))
    index = (iy * w + ix).view(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)
    return torch.where(valid.unsqueeze(1), out, torch.zeros_like(out))


def rotation_transform(degrees, height: int, width: int,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """``_convert_angles_to_transform`` for per-sample ``degrees`` -> (N, 8) float32."""
    dev = torch.device(device)
    deg = torch.as_tensor(degrees, dtype=torch.float32, device=dev).reshape(-1)
    rad = deg * _f32(math.pi / 180.0, dev)
    # cos/sin of the float32 angle, correctly rounded to float32 (see the module docstring).
    cos = torch.cos(rad.to(torch.float64)).to(torch.float32)
    sin = torch.sin(rad.to(torch.float64)).to(torch.float32)
    w1 = _f32(float(width - 1), dev)
    h1 = _f32(float(height - 1), dev)
    two = _f32(2.0, dev)
    x_offset = (w1 - (cos * w1 - sin * h1)) / two
    y_offset = (h1 - (sin * w1 + cos * h1)) / two
    zero = torch.zeros_like(cos)
    return torch.stack([cos, -sin, x_offset, sin, cos, y_offset, zero, zero], dim=1)


def rotate(x: torch.Tensor, degrees) -> torch.Tensor:
    """Rotate by ``degrees`` (per sample; positive = counter-clockwise as displayed)."""
    _check(x)
    n, _, h, w = x.shape
    deg = _per_sample(degrees, n, x.device, torch.float32, "degrees")
    return projective_transform(x, rotation_transform(deg, h, w, x.device))


def _affine(x: torch.Tensor, value, slot: int, name: str) -> torch.Tensor:
    """The identity matrix with ``value`` (per sample, float32) at ``slot``."""
    _check(x)
    n = x.shape[0]
    v = _per_sample(value, n, x.device, torch.float32, name)
    t = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], device=x.device).repeat(n, 1)
    t[:, slot] = v
    return projective_transform(x, t)


def shear_x(x: torch.Tensor, level) -> torch.Tensor:
    """Matrix ``[1, level, 0, 0, 1, 0, 0, 0]``: output ``(x, y)`` reads ``(x + level y, y)``."""
    return _affine(x, level, 1, "level")


def shear_y(x: torch.Tensor, level) -> torch.Tensor:
    """Matrix ``[1, 0, 0, level, 1, 0, 0, 0]``: output ``(x, y)`` reads ``(x, level x + y)``."""
    return _affine(x, level, 3, "level")


def translate_x(x: torch.Tensor, pixels) -> torch.Tensor:
    """``translate(image, [-pixels, 0])``: output column ``j`` reads column ``j + pixels``."""
    return _affine(x, pixels, 2, "pixels")


def translate_y(x: torch.Tensor, pixels) -> torch.Tensor:
    """``translate(image, [0, -pixels])``: output row ``i`` reads row ``i + pixels``."""
    return _affine(x, pixels, 5, "pixels")


# --------------------------------------------------------------------------------------------
# The policy


class LayerDraw(NamedTuple):
    """One layer's per-sample draws (all length N, on the batch's device)."""

    branch: torch.Tensor  # int64 in [0, BRANCHES); IDENTITY = no op
    negate: torch.Tensor  # bool: the signed ops' argument is negated
    cy: torch.Tensor  # int64 in [0, H): Cutout's centre row
    cx: torch.Tensor  # int64 in [0, W): Cutout's centre column


def _nonnegative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"TF RandAugment: {name} must be a real number >= 0; got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"TF RandAugment: {name} must be a finite number >= 0; got {value!r}")
    return float(value)


class TFRandAugment:
    """The earlier code's ``RandAugment(num_layers, magnitude, cutout_const, translate_const)``
    on a uint8 batch (N, 3, H, W), each sample with its own draws; ``num_layers = 0`` is the
    identity. Pure: the result depends only on the input and the generator's state."""

    def __init__(self, num_layers: int = 2, magnitude: float = 5.0,
                 cutout_const: float = 40.0, translate_const: float = 100.0):
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"TF RandAugment: num_layers must be an integer >= 0; got "
                             f"{num_layers!r}")
        self.num_layers = num_layers
        self.magnitude = _nonnegative(magnitude, "magnitude")
        self.cutout_const = _nonnegative(cutout_const, "cutout_const")
        self.translate_const = _nonnegative(translate_const, "translate_const")
        self.args = level_args(self.magnitude, self.cutout_const, self.translate_const)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_layers={self.num_layers}, "
                f"magnitude={self.magnitude:g}, cutout_const={self.cutout_const:g}, "
                f"translate_const={self.translate_const:g})")

    def draw(self, n: int, height: int, width: int, g: torch.Generator | None = None,
             device: torch.device | str | None = None) -> list[LayerDraw]:
        """The draws for a batch of ``n`` images of ``height`` x ``width``, from ``g`` (on
        ``device``; None = torch's default generator of ``device``). The order is fixed: for
        each layer in turn,

        1. ``branch = torch.randint(0, BRANCHES, (n,))``;
        2. ``negate = torch.rand(n) < 0.5``;
        3. ``cy = torch.randint(0, height, (n,))``;
        4. ``cx = torch.randint(0, width, (n,))``;

        all four for every sample whatever it drew (so the stream's use does not depend on the
        images). ``__call__`` makes exactly these draws, all layers before any op."""
        dev = torch.device(device) if device is not None else (
            g.device if g is not None else torch.device("cpu"))
        out = []
        for _ in range(self.num_layers):
            branch = torch.randint(0, BRANCHES, (n,), generator=g, device=dev)
            negate = torch.rand(n, generator=g, device=dev) < 0.5
            cy = torch.randint(0, height, (n,), generator=g, device=dev)
            cx = torch.randint(0, width, (n,), generator=g, device=dev)
            out.append(LayerDraw(branch, negate, cy, cx))
        return out

    def apply_op(self, name: str, x: torch.Tensor, negate=False, cy=0, cx=0) -> torch.Tensor:
        """Op ``name`` at this instance's level on ``x`` (signed ops negated where ``negate``;
        Cutout centred at ``cy``, ``cx``; all per sample or scalars)."""
        arg = self.args[name]
        if name in SIGNED:
            sign = torch.where(
                torch.as_tensor(negate, device=x.device), -1.0, 1.0).to(torch.float32)
            arg = _f32(arg, x.device) * sign
        if name == "AutoContrast":
            return autocontrast(x)
        if name == "Equalize":
            return equalize(x)
        if name == "Invert":
            return invert(x)
        if name == "Rotate":
            return rotate(x, arg)
        if name == "Posterize":
            return posterize(x, arg)
        if name == "Solarize":
            return solarize(x, arg)
        if name in _ENHANCE:
            if arg == 1.0:  # blend(..., x, 1.0) returns x: skip the work
                _check(x)
                return x.clone()
            return {"Color": color, "Contrast": contrast, "Brightness": brightness,
                    "Sharpness": sharpness}[name](x, arg)
        if name == "ShearX":
            return shear_x(x, arg)
        if name == "ShearY":
            return shear_y(x, arg)
        if name == "TranslateX":
            return translate_x(x, arg)
        if name == "TranslateY":
            return translate_y(x, arg)
        if name == "Cutout":
            return cutout(x, arg, cy, cx, REPLACE)
        if name == "SolarizeAdd":
            return solarize_add(x, arg, 128)
        raise ValueError(f"TF RandAugment: unknown op {name!r}; the ops are {', '.join(OPS)}")

    def apply(self, x: torch.Tensor, draws: list[LayerDraw]) -> torch.Tensor:
        """Apply ``draws`` (from :meth:`draw`) to ``x``: per layer, each op to the samples that
        drew it (grouped by a stable sort, one host sync per layer), the rest unchanged."""
        _check(x)
        for layer in draws:
            order = torch.argsort(layer.branch, stable=True)
            counts = torch.bincount(layer.branch, minlength=BRANCHES).tolist()
            out = x.clone()
            start = 0
            for k, count in enumerate(counts):
                idx, start = order[start: start + count], start + count
                if count == 0 or k == IDENTITY:
                    continue
                sub = x.index_select(0, idx)
                res = self.apply_op(OPS[k], sub, layer.negate[idx], layer.cy[idx],
                                    layer.cx[idx])
                out.index_copy_(0, idx, res)
            x = out
        return x

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        """RandAugment on the uint8 batch ``x`` (N, 3, H, W); draws from ``g`` as :meth:`draw`
        documents (``g`` on ``x``'s device; None = torch's default generator there)."""
        _check(x)
        n, _, h, w = x.shape
        if x.numel() == 0 or self.num_layers == 0:
            return x.clone()
        return self.apply(x, self.draw(n, h, w, g, x.device))


class TFRandAugmentTransform(torch.nn.Module):
    """:class:`TFRandAugment` on one uint8 image (3, H, W) with torch's global generator, for a
    torchvision ``v2.Compose`` (a ``tv_tensors.Image`` is accepted; a plain tensor returns)."""

    def __init__(self, num_layers: int = 2, magnitude: float = 5.0,
                 cutout_const: float = 40.0, translate_const: float = 100.0):
        super().__init__()
        self.augment = TFRandAugment(num_layers, magnitude, cutout_const, translate_const)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if not isinstance(img, torch.Tensor) or img.ndim != 3:
            shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"TFRandAugmentTransform expects one uint8 image tensor (3, H, W); "
                             f"got {shape}")
        x = img.as_subclass(torch.Tensor).unsqueeze(0)
        _check(x, "image")
        return self.augment(x)[0]

    def __repr__(self) -> str:
        a = self.augment
        return (f"{type(self).__name__}(num_layers={a.num_layers}, magnitude={a.magnitude:g}, "
                f"cutout_const={a.cutout_const:g}, translate_const={a.translate_const:g})")
