"""augloss.tf_randaugment against the formulas of the earlier code's TF RandAugment.

The references here are written independently of the module: per-pixel loops in NumPy float32
scalars for the projective transform (TF's ``ImageProjectiveTransformV2`` generator and its
REFLECT ``MapCoordinate``, ``std::round``), and straightforward NumPy versions of the colour ops.
"""

import math

import numpy as np
import pytest
import torch

from augloss import tf_randaugment as tra

F32 = np.float32


def _images(n, h, w, seed=0, low=0, high=256):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, h, w), dtype=torch.uint8, generator=g)


# ---------------------------------------------------------------------------------------------
# Reference: ImageProjectiveTransformV2, NEAREST, FILL_REFLECT (image_ops.h), one pixel at a time


def ref_reflect(c, length):
    c = F32(c)
    if c < 0:
        if length <= 1:
            c = F32(0)
        else:
            sz2 = 2 * length
            if c < sz2:
                c = F32(F32(sz2 * int(F32(-c) / F32(sz2))) + c)
            c = F32(c + F32(sz2)) if c < -length else F32(F32(-c) - F32(1))
    elif c > length - 1:
        if length <= 1:
            c = F32(0)
        else:
            sz2 = 2 * length
            c = F32(c - F32(sz2 * int(c / F32(sz2))))
            if c >= length:
                c = F32(F32(F32(sz2) - c) - F32(1))
    return F32(min(max(float(c), 0.0), float(length - 1)))


def ref_transform(img, t):
    """img: (C, H, W) uint8 array; t: 8 float32 values. Output pixel (x, y) reads the input at
    the mapped point, reflected, rounded half away from zero."""
    t = [F32(v) for v in t]
    _, h, w = img.shape
    out = np.zeros_like(img)
    for y in range(h):
        for x in range(w):
            fx, fy = F32(x), F32(y)
            proj = F32(F32(F32(t[6] * fx) + F32(t[7] * fy)) + F32(1))
            assert proj != 0
            ix = F32(F32(F32(t[0] * fx) + F32(t[1] * fy)) + t[2]) / proj
            iy = F32(F32(F32(t[3] * fx) + F32(t[4] * fy)) + t[5]) / proj
            rx = math.floor(float(ref_reflect(ix, w)) + 0.5)  # std::round, argument >= 0
            ry = math.floor(float(ref_reflect(iy, h)) + 0.5)
            out[:, y, x] = img[:, ry, rx]
    return out


def ref_rotation(deg, h, w):
    rad = F32(F32(deg) * F32(math.pi / 180.0))
    c, s = F32(math.cos(float(rad))), F32(math.sin(float(rad)))
    w1, h1 = F32(w - 1), F32(h - 1)
    ox = F32(F32(w1 - F32(F32(c * w1) - F32(s * h1))) / F32(2))
    oy = F32(F32(h1 - F32(F32(s * w1) + F32(c * h1))) / F32(2))
    return [c, -s, ox, s, c, oy, F32(0), F32(0)]


def test_reflect_coordinates_matches_tf_map_coord():
    for length in (1, 2, 4, 7, 9):
        values = np.concatenate([np.arange(-40, 41) * 0.5, [-0.4, -0.6, 3.49, 3.5, 3.51, -17.3,
                                                            123.7, -123.7, 8.999, 9.5]])
        got = tra.reflect_coordinates(torch.tensor(values, dtype=torch.float32), length)
        want = np.array([ref_reflect(v, length) for v in values], dtype=np.float32)
        np.testing.assert_array_equal(got.numpy(), want)
    # "d c b a | a b c d | d c b a" on integers, length 4
    got = tra.reflect_coordinates(torch.arange(-8, 12, dtype=torch.float32), 4).long().tolist()
    assert got == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3]


@pytest.mark.parametrize("h,w", [(7, 9), (12, 12)])
@pytest.mark.parametrize("deg", [15.0, -15.0, 27.0, 45.0, -33.3, 90.0, 135.0])
def test_rotate_matches_per_pixel_reference(h, w, deg):
    x = _images(1, h, w, seed=int(deg * 10) % 97)
    got = tra.rotate(x, deg)[0].numpy()
    np.testing.assert_array_equal(got, ref_transform(x[0].numpy(), ref_rotation(deg, h, w)))


def test_rotation_matrix_formula():
    t = tra.rotation_transform(torch.tensor([15.0, -27.0]), 7, 9)
    for row, deg in zip(t.numpy(), (15.0, -27.0)):
        np.testing.assert_array_equal(row, np.array(ref_rotation(deg, 7, 9), dtype=np.float32))


@pytest.mark.parametrize("h,w", [(7, 9), (12, 12)])
@pytest.mark.parametrize("level", [0.15, -0.15, 0.27, -0.45, 0.5, -0.5, 1.3])
def test_shear_matches_per_pixel_reference(h, w, level):
    x = _images(1, h, w, seed=3)
    img = x[0].numpy()
    np.testing.assert_array_equal(tra.shear_x(x, level)[0].numpy(),
                                  ref_transform(img, [1, level, 0, 0, 1, 0, 0, 0]))
    np.testing.assert_array_equal(tra.shear_y(x, level)[0].numpy(),
                                  ref_transform(img, [1, 0, 0, level, 1, 0, 0, 0]))


@pytest.mark.parametrize("h,w", [(7, 9), (12, 12)])
@pytest.mark.parametrize("pixels", [0.0, 3.0, -4.0, 9.0, 20.0, -33.0, 50.0, 150.0, 2.5, -3.5])
def test_translate_matches_per_pixel_reference(h, w, pixels):
    x = _images(1, h, w, seed=5)
    img = x[0].numpy()
    # translate_x(p) = translate(image, [-p, 0]): matrix [1, 0, -dx, 0, 1, -dy] with dx = -p
    np.testing.assert_array_equal(tra.translate_x(x, pixels)[0].numpy(),
                                  ref_transform(img, [1, 0, pixels, 0, 1, 0, 0, 0]))
    np.testing.assert_array_equal(tra.translate_y(x, pixels)[0].numpy(),
                                  ref_transform(img, [1, 0, 0, 0, 1, pixels, 0, 0]))


def test_geometric_ops_take_per_sample_arguments_in_one_call():
    x = _images(4, 7, 9, seed=11)
    degs = torch.tensor([15.0, -15.0, 27.0, 0.0])
    levels = torch.tensor([0.15, -0.15, 0.3, -0.27])
    pixels = torch.tensor([50.0, -50.0, 3.0, -100.0])
    rot, shx, tx = tra.rotate(x, degs), tra.shear_x(x, levels), tra.translate_x(x, pixels)
    for i in range(4):
        img = x[i].numpy()
        np.testing.assert_array_equal(rot[i].numpy(),
                                      ref_transform(img, ref_rotation(float(degs[i]), 7, 9)))
        np.testing.assert_array_equal(
            shx[i].numpy(), ref_transform(img, [1, float(levels[i]), 0, 0, 1, 0, 0, 0]))
        np.testing.assert_array_equal(
            tx[i].numpy(), ref_transform(img, [1, 0, float(pixels[i]), 0, 1, 0, 0, 0]))
    assert rot[3].equal(x[3])  # 0 degrees is the identity


def test_rotate_90_is_rot90_counter_clockwise():
    x = _images(2, 12, 12, seed=2)
    assert tra.rotate(x, 90.0).equal(torch.rot90(x, 1, dims=(-2, -1)))
    assert tra.rotate(x, -90.0).equal(torch.rot90(x, -1, dims=(-2, -1)))
    assert tra.rotate(x, 180.0).equal(torch.rot90(x, 2, dims=(-2, -1)))
    assert not tra.rotate(x, 90.0).equal(torch.rot90(x, -1, dims=(-2, -1)))


def test_translate_shifts_content_and_reflects_the_border():
    x = _images(1, 12, 12, seed=4)
    x[x == tra.REPLACE] = 127
    k = 5
    out = tra.translate_x(x, float(k))
    # output column j reads input column j + k: the content moves left by k
    assert out[..., : 12 - k].equal(x[..., k:])
    # the vacated columns hold the reflection "... k l | l k ...": input column 2W - 1 - (j + k)
    for j in range(12 - k, 12):
        assert out[..., j].equal(x[..., 2 * 12 - 1 - (j + k)])
    out = tra.translate_y(x, -float(k))  # negative: content moves down, top rows reflected
    assert out[..., k:, :].equal(x[..., : 12 - k, :])
    for i in range(k):
        assert out[..., i, :].equal(x[..., k - 1 - i, :])
    for op in (tra.rotate, tra.shear_x, tra.shear_y, tra.translate_x, tra.translate_y):
        assert not (op(x, 27.0 if op is tra.rotate else 0.45) == tra.REPLACE).any()


# ---------------------------------------------------------------------------------------------
# Levels


def test_level_args_at_m5():
    a = tra.level_args(5)
    assert a["Rotate"] == 15.0 and a["ShearX"] == a["ShearY"] == 0.15
    assert a["TranslateX"] == a["TranslateY"] == 50.0
    assert a["Posterize"] == 2 and a["Solarize"] == 128 and a["SolarizeAdd"] == 55
    assert a["Cutout"] == 20  # a 40 x 40 hole
    for name in ("Color", "Contrast", "Brightness", "Sharpness"):
        assert a[name] == 1.0  # exactly: these four are identities at M = 5
    for name in ("AutoContrast", "Equalize", "Invert"):
        assert a[name] is None
    assert set(a) == set(tra.OPS) and len(tra.OPS) == 16 and tra.BRANCHES == 17


def test_level_args_at_other_levels():
    a = tra.level_args(9)
    assert a["Rotate"] == pytest.approx(27.0) and a["ShearX"] == pytest.approx(0.27)
    assert a["TranslateX"] == pytest.approx(90.0) and a["Color"] == pytest.approx(1.72)
    assert (a["Posterize"], a["Solarize"], a["SolarizeAdd"], a["Cutout"]) == (3, 230, 99, 36)
    a = tra.level_args(15, cutout_const=30, translate_const=60)
    assert a["Rotate"] == pytest.approx(45.0) and a["ShearY"] == pytest.approx(0.45)
    assert a["TranslateY"] == pytest.approx(90.0) and a["Sharpness"] == pytest.approx(2.8)
    assert (a["Posterize"], a["Solarize"], a["SolarizeAdd"], a["Cutout"]) == (6, 384, 165, 45)
    a = tra.level_args(0)
    assert (a["Rotate"], a["Posterize"], a["Cutout"], a["Color"]) == (0.0, 0, 0, 0.1)


def test_enhance_ops_are_identities_at_factor_one():
    x = _images(3, 9, 11, seed=8)
    for op in (tra.color, tra.contrast, tra.brightness, tra.sharpness):
        assert op(x, tra.level_args(5)["Color"]).equal(x)


# ---------------------------------------------------------------------------------------------
# Colour ops against NumPy versions


def ref_blend(a, b, f):
    if f == 0:
        return a.copy()
    if f == 1:
        return b.copy()
    t = a.astype(F32) + F32(f) * (b.astype(F32) - a.astype(F32))
    if 0 < f < 1:
        return t.astype(np.uint8)
    return np.clip(t, 0, 255).astype(np.uint8)


def test_blend_truncates_inside_and_clips_outside():
    a = torch.tensor([10, 100, 200, 100, 0], dtype=torch.uint8).view(1, 1, 1, 5)
    b = torch.tensor([13, 200, 100, 0, 255], dtype=torch.uint8).view(1, 1, 1, 5)
    assert tra.blend(a, b, 0.5).flatten().tolist() == [11, 150, 150, 50, 127]  # 11.5 -> 11
    assert tra.blend(a, b, 1.8).flatten().tolist() == [15, 255, 20, 0, 255]
    assert tra.blend(a, b, 0.0).equal(a) and tra.blend(a, b, 1.0).equal(b)
    x, y = _images(2, 6, 7, seed=1)
    for f in (0.0, 0.1, 0.55, 0.999, 1.0, 1.72, 2.8):
        got = tra.blend(x[None], y[None], f)[0].numpy()
        np.testing.assert_array_equal(got, ref_blend(x.numpy(), y.numpy(), f))


def ref_gray(img):
    f = img.astype(F32) * F32(1.0 / 255.0)
    g = (f[0] * F32(0.2989) + f[1] * F32(0.5870)) + f[2] * F32(0.1140)
    return (g * F32(255.5)).astype(np.uint8)


def test_color():
    x = _images(2, 9, 11, seed=12)
    for f in (0.1, 0.55, 1.72, 2.8):
        got = tra.color(x, f)
        for i in range(2):
            gray = np.broadcast_to(ref_gray(x[i].numpy()), (3, 9, 11))
            np.testing.assert_array_equal(got[i].numpy(), ref_blend(gray, x[i].numpy(), f))
    # cast(gray * 255.5) truncates: pure green is 0.587 * 255.5 = 149.98 -> 149, white 255.47
    pure = torch.tensor([[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]],
                        dtype=torch.uint8).view(1, 3, 1, 4)
    assert tra.rgb_to_grayscale(pure).flatten().tolist() == [76, 149, 29, 255]


def test_contrast_uses_pixel_count_over_256():
    a, b = _images(2, 80, 80, seed=13)
    b = b // 4  # another content, another true mean
    for f in (0.0, 0.1, 0.55, 1.72):
        got = tra.contrast(torch.stack([a, b]), f)
        for img, out in zip((a, b), got):
            want = ref_blend(np.full((3, 80, 80), 25, np.uint8), img.numpy(), f)  # 6400 / 256
            np.testing.assert_array_equal(out.numpy(), want)
    small = _images(1, 7, 9, seed=14)  # 63 / 256 -> 0: contrast is brightness there
    assert tra.contrast(small, 0.55).equal(tra.brightness(small, 0.55))
    big = _images(1, 300, 300, seed=15)  # 90000 / 256 = 351.6 -> clipped to 255
    want = ref_blend(np.full((3, 300, 300), 255, np.uint8), big[0].numpy(), 0.3)
    np.testing.assert_array_equal(tra.contrast(big, 0.3)[0].numpy(), want)


def test_brightness():
    x = _images(1, 5, 6, seed=16)
    img = x[0].numpy().astype(F32)
    np.testing.assert_array_equal(tra.brightness(x, 0.55)[0].numpy(),
                                  (img * F32(0.55)).astype(np.uint8))
    np.testing.assert_array_equal(tra.brightness(x, 1.72)[0].numpy(),
                                  np.clip(img * F32(1.72), 0, 255).astype(np.uint8))


def ref_sharpness(img, f):
    c, h, w = img.shape
    k = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], F32) / F32(13)
    xf = img.astype(F32)
    acc = np.zeros((c, h - 2, w - 2), F32)
    for r in range(3):
        for q in range(3):
            acc = acc + xf[:, r:r + h - 2, q:q + w - 2] * k[r, q]
    smooth = img.copy()
    smooth[:, 1:-1, 1:-1] = np.clip(acc, 0, 255).astype(np.uint8)
    return ref_blend(smooth, img, f)


def test_sharpness():
    x = _images(2, 9, 11, seed=17)
    x[1, :, 2:6, 3:8] = 77  # a flat patch: the smoothing must give 77 back there
    for f in (0.1, 0.55, 1.72, 2.8):
        got = tra.sharpness(x, f)
        for i in range(2):
            np.testing.assert_array_equal(got[i].numpy(), ref_sharpness(x[i].numpy(), f))
    smooth = tra.sharpness(x, 0.0)  # factor 0: the smoothed image itself
    assert (smooth[1, :, 3:5, 4:7] == 77).all()
    assert smooth[:, :, 0].equal(x[:, :, 0]) and smooth[:, :, :, -1].equal(x[:, :, :, -1])


def test_posterize_solarize_invert():
    x = _images(2, 6, 7, seed=18)
    img = x.numpy()
    for bits in range(9):
        shift = min(max(8 - bits, 0), 7)  # TF clamps uint8 shifts to [0, 7]
        np.testing.assert_array_equal(tra.posterize(x, bits).numpy(), (img >> shift) << shift)
    assert set(tra.posterize(x, 0).unique().tolist()) <= {0, 128}
    np.testing.assert_array_equal(tra.posterize(x, torch.tensor([2, 8])).numpy(),
                                  np.stack([(img[0] >> 6) << 6, img[1]]))
    for t in (0, 128, 230, 256):
        np.testing.assert_array_equal(tra.solarize(x, t).numpy(),
                                      np.where(img < t, img, 255 - img))
    for add in (0, 55, 99, 165):
        want = np.where(img < 128, np.clip(img.astype(int) + add, 0, 255), img)
        np.testing.assert_array_equal(tra.solarize_add(x, add).numpy(), want)
    np.testing.assert_array_equal(tra.invert(x).numpy(), 255 - img)


def ref_autocontrast(img):
    out = img.copy()
    for c in range(img.shape[0]):
        lo, hi = F32(img[c].min()), F32(img[c].max())
        if hi > lo:
            scale = F32(255) / F32(hi - lo)
            offset = F32(-lo) * scale
            out[c] = np.clip(img[c].astype(F32) * scale + offset, 0, 255).astype(np.uint8)
    return out


def test_autocontrast():
    x = _images(3, 8, 9, seed=19, low=3, high=11)
    x[1, 2] = 42  # a constant channel stays
    x[2, 0] = torch.randint(0, 256, (8, 9), generator=torch.Generator().manual_seed(1),
                            dtype=torch.uint8)
    got = tra.autocontrast(x)
    for i in range(3):
        np.testing.assert_array_equal(got[i].numpy(), ref_autocontrast(x[i].numpy()))
    assert got[1, 2].equal(x[1, 2])
    assert got[0].amax().item() <= 255 and got[0].amin().item() == 0


def ref_equalize(img):
    """TF's equalize scale_channel, per channel."""
    out = img.copy()
    for c in range(img.shape[0]):
        histo = np.bincount(img[c].ravel(), minlength=256).astype(np.int64)
        nonzero = histo[histo != 0]
        step = (nonzero.sum() - nonzero[-1]) // 255
        if step == 0:
            continue
        lut = (np.cumsum(histo) + step // 2) // step
        lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255)
        out[c] = lut[img[c]]
    return out


def test_equalize():
    imgs = [_images(1, 40, 40, seed=20)[0],
            _images(1, 40, 40, seed=21, low=50, high=80)[0],
            torch.full((3, 40, 40), 9, dtype=torch.uint8),  # one value: step 0, unchanged
            _images(1, 40, 40, seed=22)[0]]
    imgs[1][2, :3] = 255  # top value 255: the clip of the lut matters
    imgs[3][0] = imgs[3][0] // 64  # four values in channel 0
    x = torch.stack(imgs)
    got = tra.equalize(x)
    for i in range(len(imgs)):
        np.testing.assert_array_equal(got[i].numpy(), ref_equalize(x[i].numpy()))
    assert got[2].equal(x[2]) and not got[0].equal(x[0]) and not got[1].equal(x[1])
    # Fewer than 256 pixels below the top value: step 0 whatever the values (a 12 x 12 image
    # is never equalized; an 80 x 80 one is)
    small = _images(2, 12, 12, seed=23)
    small[1, 1] = small[1, 1] // 100
    assert tra.equalize(small).equal(small)


def test_equalize_agrees_with_pil():
    # TF's equalize is a port of PIL's (the same step, the same lut shifted by one, the same
    # clip in image.point), per band; the two agree, so no choice between them is needed.
    Image = pytest.importorskip("PIL.Image")
    ImageOps = pytest.importorskip("PIL.ImageOps")
    x = torch.cat([_images(2, 40, 40, seed=23), _images(1, 40, 40, seed=24, high=90)])
    x[1, 0] = 9  # a constant band
    x[1, 1] = x[1, 1] // 64  # four values
    x[2, 1, :5] = 255
    got = tra.equalize(x)
    for i in range(3):
        pil = Image.fromarray(x[i].permute(1, 2, 0).numpy(), "RGB")
        want = np.asarray(ImageOps.equalize(pil)).transpose(2, 0, 1)
        np.testing.assert_array_equal(got[i].numpy(), want)


def test_cutout():
    x = _images(3, 12, 12, seed=25)
    x[x == 128] = 127
    out = tra.cutout(x, torch.tensor([3, 3, 0]), torch.tensor([5, 0, 6]), torch.tensor([6, 11, 6]))
    hole = out == 128
    assert hole[0].all(0).nonzero().tolist() == [[r, c] for r in range(2, 8) for c in range(3, 9)]
    assert hole[1].any(0).nonzero().tolist() == [[r, c] for r in range(3) for c in range(8, 12)]
    assert out[2].equal(x[2])  # pad 0: no hole
    assert out[~hole].equal(x[~hole])
    y = _images(1, 80, 80, seed=26)
    y[y == 128] = 129
    big = tra.cutout(y, 20, 40, 40)  # M = 5: pad 20, a 40 x 40 square
    want = torch.zeros(80, 80, dtype=torch.bool)
    want[20:60, 20:60] = True
    assert (big[0] == 128).all(0).equal(want) and (big[0] == 128).any(0).equal(want)


# ---------------------------------------------------------------------------------------------
# The policy


def test_draws_are_uniform_over_17_branches_with_fair_signs():
    chisquare = pytest.importorskip("scipy.stats").chisquare
    ra = tra.TFRandAugment(2, 5)
    g = torch.Generator().manual_seed(1234)
    n = 17 * 300
    draws = ra.draw(n, 80, 80, g)
    assert len(draws) == 2
    for d in draws:
        counts = torch.bincount(d.branch, minlength=17)
        assert len(counts) == 17
        assert chisquare(counts.numpy()).pvalue > 1e-3
        assert abs((d.branch == tra.IDENTITY).float().mean().item() - 1 / 17) < 0.015
        assert abs(d.negate.float().mean().item() - 0.5) < 0.03
        assert 0 <= d.cy.min() and d.cy.max() < 80 and d.cx.max() < 80
        assert d.cy.unique().numel() == 80


def test_each_branch_applies_its_op_with_the_level_and_sign():
    x = _images(6, 10, 12, seed=27)
    for m in (5, 9):
        ra = tra.TFRandAugment(1, m)
        a = tra.level_args(m)
        negate = torch.tensor([True, False, True, False, False, True])
        sign = torch.where(negate, -1.0, 1.0)
        cy, cx = torch.tensor([0, 3, 9, 5, 5, 2]), torch.tensor([0, 11, 4, 6, 1, 7])
        expected = {
            "AutoContrast": tra.autocontrast(x), "Equalize": tra.equalize(x),
            "Invert": 255 - x, "Rotate": tra.rotate(x, a["Rotate"] * sign),
            "Posterize": tra.posterize(x, a["Posterize"]),
            "Solarize": tra.solarize(x, a["Solarize"]), "Color": tra.color(x, a["Color"]),
            "Contrast": tra.contrast(x, a["Contrast"]),
            "Brightness": tra.brightness(x, a["Brightness"]),
            "Sharpness": tra.sharpness(x, a["Sharpness"]),
            "ShearX": tra.shear_x(x, a["ShearX"] * sign),
            "ShearY": tra.shear_y(x, a["ShearY"] * sign),
            "TranslateX": tra.translate_x(x, a["TranslateX"] * sign),
            "TranslateY": tra.translate_y(x, a["TranslateY"] * sign),
            "Cutout": tra.cutout(x, a["Cutout"], cy, cx),
            "SolarizeAdd": tra.solarize_add(x, a["SolarizeAdd"]),
        }
        assert list(expected) == list(tra.OPS)
        for k in range(tra.BRANCHES):
            draw = tra.LayerDraw(torch.full((6,), k), negate, cy, cx)
            got = ra.apply(x, [draw])
            assert got.equal(x if k == tra.IDENTITY else expected[tra.OPS[k]]), (m, k)
        assert not expected["Rotate"].equal(tra.rotate(x, a["Rotate"]))  # signs matter


def test_call_is_draw_then_apply_and_groups_samples_correctly():
    ra = tra.TFRandAugment(2, 9)
    x = _images(40, 10, 12, seed=28)
    out = ra(x, torch.Generator().manual_seed(7))
    draws = ra.draw(40, 10, 12, torch.Generator().manual_seed(7))
    assert out.equal(ra.apply(x, draws))
    for i in range(0, 40, 7):  # each sample as if alone, with its own draws
        alone = [tra.LayerDraw(*(t[i:i + 1] for t in d)) for d in draws]
        assert out[i:i + 1].equal(ra.apply(x[i:i + 1], alone))


def test_determinism_and_purity():
    ra = tra.TFRandAugment(2, 5)
    x = _images(32, 16, 16, seed=29)
    before = x.clone()
    a = ra(x, torch.Generator().manual_seed(3))
    b = ra(x, torch.Generator().manual_seed(3))
    c = ra(x, torch.Generator().manual_seed(4))
    assert a.equal(b) and not a.equal(c)
    assert x.equal(before)
    assert a.dtype == torch.uint8 and a.shape == x.shape and a.device == x.device


def test_identity_cases():
    ra = tra.TFRandAugment(2, 5)
    empty = torch.zeros((0, 3, 8, 8), dtype=torch.uint8)
    assert ra(empty, torch.Generator().manual_seed(0)).shape == (0, 3, 8, 8)
    x = _images(4, 8, 8, seed=30)
    assert tra.TFRandAugment(0, 5)(x, torch.Generator().manual_seed(0)).equal(x)


def test_per_sample_transform_equals_batched_for_one_image():
    t = tra.TFRandAugmentTransform(2, 9)
    img = _images(1, 16, 16, seed=31)[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        outs = [t(img) for _ in range(5)]
    g = torch.Generator().manual_seed(5)
    batched = [tra.TFRandAugment(2, 9)(img[None], g)[0] for _ in range(5)]
    assert all(o.equal(b) for o, b in zip(outs, batched))
    assert any(not o.equal(img) for o in outs)
    assert outs[0].dtype == torch.uint8 and outs[0].shape == img.shape
    assert "num_layers=2" in repr(t) and "magnitude=9" in repr(t)


def test_transform_accepts_tv_tensor_image():
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")
    img = tv_tensors.Image(_images(1, 8, 8, seed=32)[0])
    out = tra.TFRandAugmentTransform(1, 5)(img)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 8, 8)


def test_errors():
    with pytest.raises(ValueError, match="magnitude"):
        tra.TFRandAugment(2, -1)
    with pytest.raises(ValueError, match="magnitude"):
        tra.TFRandAugment(2, float("nan"))
    with pytest.raises(ValueError, match="num_layers"):
        tra.TFRandAugment(-1, 5)
    with pytest.raises(ValueError, match="num_layers"):
        tra.TFRandAugment(1.5, 5)
    with pytest.raises(ValueError, match="cutout_const"):
        tra.TFRandAugment(2, 5, cutout_const=-3)
    ra = tra.TFRandAugment(2, 5)
    with pytest.raises(ValueError, match="uint8"):
        ra(torch.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="3 channels"):
        ra(torch.zeros((2, 1, 8, 8), dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        ra(torch.zeros((3, 8, 8), dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        tra.TFRandAugmentTransform()(torch.zeros((1, 3, 8, 8), dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        tra.TFRandAugmentTransform()(torch.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="per-sample"):
        tra.rotate(_images(2, 8, 8), torch.tensor([1.0, 2.0, 3.0]))
