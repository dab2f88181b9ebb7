"""Batched tensor augmentation against the per-sample torchvision path: same distributions."""

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from augloss import augment as aug
from augloss import batch_augment as ba
from augloss.config import AugmentConfig
from augloss.names import TECHNIQUES

N = 3000


def _gen(seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _position_image():
    """Channel 0 holds row + 1, channel 1 column + 1 (0 is padding), channel 2 is 255."""
    rows = torch.arange(1, 33).view(32, 1).expand(32, 32)
    cols = torch.arange(1, 33).view(1, 32).expand(32, 32)
    return torch.stack([rows, cols, torch.full((32, 32), 255)]).to(torch.uint8)


def _offsets(out):
    """Crop offsets (0..2 pad) and flips recovered from augmented position images."""
    centre_row = out[:, 0, 16, 16].long() - 1
    oy = centre_row - 16 + 4
    left, right = out[:, 1, 16, 15].long(), out[:, 1, 16, 17].long()
    flipped = left > right
    col = out[:, 1, 16, 16].long() - 1
    ox = torch.where(flipped, col - 15 + 4, col - 16 + 4)
    return oy, ox, flipped


def _per_sample(transform, img, n, seed=0):
    torch.manual_seed(seed)
    return torch.stack([transform(img) for _ in range(n)])


def test_crop_and_flip_distribution_matches_torchvision():
    img = _position_image()
    batch = ba.BatchAugment(aug.build("base"))
    x = img.expand(N, -1, -1, -1).contiguous()
    g = _gen()
    mine = batch.flip(batch.crop(x, g), g)
    theirs = _per_sample(v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]),
                         img, N)
    for out in (mine, theirs):
        oy, ox, flipped = _offsets(out)
        for offsets in (oy, ox):
            freq = torch.bincount(offsets, minlength=9).float() / N
            assert len(freq) == 9 and (freq - 1 / 9).abs().max() < 0.03, freq
        assert abs(flipped.float().mean().item() - 0.5) < 0.03
    # Content, not only offsets: every batched output is an exact padded crop (maybe flipped).
    oy, ox, flipped = _offsets(mine)
    padded = torch.nn.functional.pad(img, (4, 4, 4, 4))
    for i in range(0, N, 97):
        crop = padded[:, oy[i]:oy[i] + 32, ox[i]:ox[i] + 32]
        assert torch.equal(mine[i], crop.flip(-1) if flipped[i] else crop)


def test_cutout_hole_area_and_position_match_the_per_sample_cutout():
    img = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    batch = ba.BatchAugment(aug.build("cutout"))
    mine = batch.erase(img.expand(N, -1, -1, -1).contiguous(), _gen())
    theirs = _per_sample(aug.Cutout(16), img, N)
    area_mine = (mine[:, 0] == 0).float().mean((1, 2))
    area_theirs = (theirs[:, 0] == 0).float().mean((1, 2))
    assert abs(area_mine.mean() - area_theirs.mean()) < 0.01
    assert abs(area_mine.std() - area_theirs.std()) < 0.01
    assert area_mine.max().item() == 0.25  # a full 16x16 hole when it is not clipped
    # Holes are squares clipped at the border: rows x cols of zeros, same in every channel.
    for i in range(0, N, 101):
        hole = mine[i, 0] == 0
        rows, cols = hole.any(1), hole.any(0)
        assert torch.equal(hole, rows[:, None] & cols[None, :])
        assert torch.equal(mine[i, 1] == 0, hole)
    # Hole centres cover the image uniformly: the mean zero-map matches the per-sample path.
    heat_mine = (mine[:, 0] == 0).float().mean(0)
    heat_theirs = (theirs[:, 0] == 0).float().mean(0)
    assert (heat_mine - heat_theirs).abs().max() < 0.06


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_mixup_lambda_follows_beta(alpha):
    g, host = _gen(1), np.random.default_rng(1)
    x, y = torch.rand(8, 3, 4, 4), torch.arange(8)
    lams = np.array([ba.mixup(x, y, alpha, g, host).lam for _ in range(4000)])
    assert abs(lams.mean() - 0.5) < 0.02
    assert abs(lams.var() - 1 / (4 * (2 * alpha + 1))) < 0.01
    mixed = ba.mixup(x, y, alpha, g, host)
    torch.testing.assert_close(mixed.images, mixed.lam * x + (1 - mixed.lam) * x[mixed.target_b])


def _images(n=48, seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("op", list(v2.RandAugment._AUGMENTATION_SPACE))
def test_every_randaugment_op_on_a_group_equals_it_per_image(op):
    """The batched path hands each group to torchvision's op: it must act per image."""
    ra = v2.RandAugment(num_ops=1, magnitude=9)
    fn, signed = ra._AUGMENTATION_SPACE[op]
    mags = fn(ra.num_magnitude_bins, 32, 32)
    x = _images()
    for m in ([0.0] if mags is None else [float(mags[9])] + ([-float(mags[9])] if signed else [])):
        group = ra._apply_image_or_video_transform(x, op, m, interpolation=ra.interpolation,
                                                   fill=ra._fill)
        single = torch.stack([ra._apply_image_or_video_transform(
            img, op, m, interpolation=ra.interpolation, fill=ra._fill) for img in x])
        assert torch.equal(group, single), op


def test_randaugment_output_statistics_match_torchvision():
    x = _images(400, seed=3)
    batch = ba.BatchAugment(aug.build("randaugment"))
    mine = batch.rand_augment(x, _gen(2)).float()
    torch.manual_seed(2)
    ra = v2.RandAugment(num_ops=2, magnitude=9)
    theirs = torch.stack([ra(img) for img in x]).float()
    for stat in (lambda t: t.mean(), lambda t: t.std(), lambda t: (t == 0).float().mean(),
                 lambda t: (t - x.float()).abs().mean()):
        a, b = stat(mine).item(), stat(theirs).item()
        assert abs(a - b) <= 0.06 * max(abs(b), 1.0), (a, b)
    changed = (mine != x.float()).flatten(1).any(1).float().mean().item()
    assert changed > 0.8  # two ops per image; only Identity twice leaves it unchanged


@pytest.mark.parametrize("name", TECHNIQUES + ("none",))
def test_pipeline_is_seeded_and_shaped_like_the_per_sample_path(name):
    technique = aug.build(name)
    batch = ba.BatchAugment(technique)
    x = _images(16)
    a, b = batch(x, _gen(7)), batch(x, _gen(7))
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.shape == x.shape
    assert 0.0 <= a.min() and a.max() <= 1.0
    per_sample = technique.train_transform(x[0])
    assert per_sample.shape == a[0].shape and per_sample.dtype == a.dtype
    if name == "none":
        assert torch.equal(a, x.float() / 255)
    else:
        assert not torch.equal(a, batch(x, _gen(8)))


def test_imagenet_normalisation_matches_the_per_sample_path():
    cfg = AugmentConfig(normalize="imagenet")
    x = _images(4)
    per_sample = torch.stack([aug.build("none", cfg).train_transform(img) for img in x])
    torch.testing.assert_close(ba.normalise(x, cfg), per_sample)


def test_tf_and_mean_std_normalisation_match_the_per_sample_path():
    x = _images(4)
    for cfg in (AugmentConfig(normalize="tf"),
                AugmentConfig(normalize="mean_std", mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7))):
        per_sample = torch.stack([aug.build("none", cfg).train_transform(img) for img in x])
        torch.testing.assert_close(ba.normalise(x, cfg), per_sample)


def test_resized_tensor_path_matches_the_per_sample_resize():
    from augloss import data

    cfg = AugmentConfig(image_size=80, normalize="tf")
    x = _images(5)
    small = data.ImageSet("t", "train", torch.arange(5), [str(i) for i in range(5)], images=x)
    big = ba.at_size(small, cfg)
    assert big.images.shape == (5, 3, 80, 80) and big.images.dtype == torch.uint8
    assert ba.at_size(small, AugmentConfig()) is small and ba.at_size(None, cfg) is None
    ev = torch.stack([aug.build("base", cfg).eval_transform(im) for im in x])
    torch.testing.assert_close(ba.normalise(big.images, cfg), ev, atol=1 / 128 + 1e-6, rtol=0)
    from dataclasses import replace

    out = ba.BatchAugment(aug.build("cutout", replace(cfg, pad=0)))(big.images, _gen())
    assert out.shape == (5, 3, 80, 80)
    holes = (torch.isclose(out, torch.tensor(-127.5 / 128)).all(1)).flatten(1).sum(1)
    assert int(holes.max()) <= 40 * 40 and int(holes.max()) > 16 * 16  # scaled to 40 px
    with pytest.raises(ValueError, match="80-px"):
        ba.BatchAugment(aug.build("base", cfg))(x, _gen())


def test_fine_tuning_is_not_batched():
    tech = aug.build("base", AugmentConfig(image_size=64, finetune=True))
    assert ba.refusal(tech, 64, 64) is not None
    assert ba.refusal(aug.build("base"), 64, 64) is None
    assert "square" in ba.refusal(aug.build("base"), 32, 48)
    with pytest.raises(ValueError, match="finetune"):
        ba.BatchAugment(tech)
    with pytest.raises(ValueError, match="uint8"):
        ba.BatchAugment(aug.build("base"))(torch.rand(2, 3, 32, 32), _gen())
