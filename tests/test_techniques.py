"""The technique registry (augloss.techniques) and the two paths that build from it."""

import subprocess
import sys
from types import MappingProxyType

import pytest
import torch
from torchvision.transforms import v2

from augloss import augment as A
from augloss import batch_augment as ba
from augloss import names, techniques
from augloss.config import AugmentConfig
from augloss.techniques import Spec

KNOWN = "techniques are " + ", ".join(names.TECHNIQUES)


def _register(monkeypatch, *specs):
    monkeypatch.setattr(techniques, "REGISTRY",
                        MappingProxyType({**techniques.REGISTRY, **{s.name: s for s in specs}}))


def _images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def _per_sample(tech, x, seed=0):
    torch.manual_seed(seed)
    return torch.stack([tech.train_transform(im) for im in x])


def _batched(tech, x, seed=0):
    return ba.BatchAugment(tech)(x, torch.Generator().manual_seed(seed))


def test_names_derive_from_the_registry_and_none_is_no_technique():
    assert names.TECHNIQUES == techniques.TECHNIQUES == tuple(techniques.REGISTRY)
    assert "none" not in names.TECHNIQUES and techniques.get("none") is techniques.NONE
    assert techniques.NONE.steps == () and not techniques.NONE.mixup
    assert techniques.get("mixup").mixup and techniques.get("all").mixup
    assert not techniques.get("base").mixup and not techniques.get("cutout").mixup
    assert techniques.get("all").steps == ("randaugment", "crop_flip", "cutout", "mixup")
    with pytest.raises(AttributeError):
        techniques.get("base").steps = ()  # frozen


def test_the_registry_imports_no_torch():
    code = ("import sys, augloss.names, augloss.techniques\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_specs_are_checked_when_made():
    with pytest.raises(ValueError, match="unknown step.*warp"):
        Spec("x", "", ("crop_flip", "warp"))
    with pytest.raises(ValueError, match="twice"):
        Spec("x", "", ("crop_flip", "crop_flip"))
    with pytest.raises(ValueError, match="must come last"):
        Spec("x", "", ("mixup", "cutout"))


def test_both_paths_handle_exactly_the_registry_steps():
    assert set(A.PER_SAMPLE) == set(techniques.STEPS)
    assert set(ba.STEP_FORMS) == set(techniques.STEPS)
    assert ba.NO_BATCHED_FORM not in ba.STEP_FORMS.values()  # every step is batched today


def test_an_unknown_technique_is_refused_naming_the_known_ones_in_every_path():
    with pytest.raises(ValueError, match=f"unknown augmentation 'autoaugment'; {KNOWN}"):
        techniques.get("autoaugment")
    with pytest.raises(ValueError, match=KNOWN):
        A.build("autoaugment")
    rogue = A.Technique("autoaugment", AugmentConfig())  # made without build's check
    for attempt in (lambda: rogue.train_transform, lambda: rogue.eval_transform,
                    lambda: rogue.mixup, lambda: ba.BatchAugment(rogue),
                    lambda: ba.refusal(rogue, 32, 32)):
        with pytest.raises(ValueError, match=f"'autoaugment'; {KNOWN}"):
            attempt()


def test_a_step_neither_path_knows_is_an_error_naming_it(monkeypatch):
    monkeypatch.setattr(techniques, "STEPS", MappingProxyType({**techniques.STEPS, "warp": "?"}))
    _register(monkeypatch, Spec("warped", "crop/flip + warp", ("crop_flip", "warp")))
    tech = A.build("warped")
    with pytest.raises(ValueError, match="'warped': step 'warp' has no per-sample form"):
        tech.train_transform
    for attempt in (lambda: ba.refusal(tech, 32, 32), lambda: ba.BatchAugment(tech)):
        with pytest.raises(ValueError, match="'warped': unknown step.*warp"):
            attempt()


def test_a_step_without_a_batched_form_is_refused_by_name(monkeypatch):
    from augloss import batches, data
    from augloss.config import TrainConfig

    monkeypatch.setattr(techniques, "STEPS", MappingProxyType({**techniques.STEPS, "warp": "?"}))
    monkeypatch.setattr(A, "PER_SAMPLE", MappingProxyType(
        {**A.PER_SAMPLE, "warp": lambda cfg: [v2.RandomVerticalFlip()]}))
    monkeypatch.setattr(ba, "STEP_FORMS",
                        MappingProxyType({**ba.STEP_FORMS, "warp": ba.NO_BATCHED_FORM}))
    _register(monkeypatch, Spec("warped", "crop/flip + warp", ("crop_flip", "warp")))
    tech = A.build("warped")
    kinds = [type(t).__name__ for t in tech.train_transform.transforms]
    assert kinds[2:5] == ["RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip"]
    assert ba.refusal(tech, 32, 32) == "augmentation 'warped': step(s) warp have no batched form"
    assert ba.refusal(A.build("cutout"), 32, 32) is None  # the others are not affected
    with pytest.raises(ValueError, match="'warped': step.*warp have no batched form"):
        ba.BatchAugment(tech)
    digits = data.load("digits", split="val")
    assert not batches.use_tensors(TrainConfig(pipeline="auto"), tech, digits)  # falls back
    with pytest.raises(ValueError, match="train.pipeline: tensor, but .*'warped'.*warp"):
        batches.use_tensors(TrainConfig(pipeline="tensor"), tech, digits)


def test_a_new_technique_of_existing_steps_is_built_by_both_paths(monkeypatch):
    """``all`` without its mixup, registered under a new name: augment.py and batch_augment.py
    build it from its steps alone, exactly as ``all``'s per-image part."""
    _register(monkeypatch, Spec("heavy", "all but mixup", ("randaugment", "crop_flip", "cutout")),
              Spec("late", "crop/flip, then RandAugment", ("crop_flip", "randaugment")))
    heavy, every, base = A.build("heavy"), A.build("all"), A.build("base")
    assert not heavy.mixup and every.mixup and not ba.BatchAugment(heavy).mixup
    assert repr(heavy.train_transform) == repr(every.train_transform)
    x = _images()
    assert torch.equal(_per_sample(heavy, x), _per_sample(every, x))
    assert not torch.equal(_per_sample(heavy, x), _per_sample(base, x))
    assert torch.equal(_batched(heavy, x), _batched(every, x))
    assert not torch.equal(_batched(heavy, x), _batched(base, x))
    # The order is the spec's: RandAugment after the crop/flip here, in both paths.
    kinds = [type(t).__name__ for t in A.build("late").train_transform.transforms]
    assert kinds[2:5] == ["RandomCrop", "RandomHorizontalFlip", "RandAugment"]
    late = ba.BatchAugment(A.build("late"))
    assert [s.__name__ for s in late.steps] == ["crop_flip", "rand_augment"]
    assert not torch.equal(late(x, torch.Generator().manual_seed(0)),
                           _batched(A.build("randaugment"), x))


def test_mixup_is_the_trainers_in_both_paths():
    for name in names.TECHNIQUES:
        tech = A.build(name)
        assert tech.mixup == ("mixup" in techniques.get(name).steps)
        assert ba.BatchAugment(tech).mixup == tech.mixup
    assert repr(A.build("mixup").train_transform) == repr(A.build("base").train_transform)
