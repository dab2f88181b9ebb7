"""augloss.optim: torch.optim's arithmetic exactly, without importing torch._dynamo."""

import io
import subprocess
import sys

import pytest
import torch
from torch import nn

from augloss import optim
from tests.helpers import REPO

CASES = [
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=0.0),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05), lambda ps: torch.optim.SGD(ps, lr=0.05)),
    ("adam", dict(lr=3e-3, betas=(0.9, 0.99), eps=1e-7, weight_decay=1e-4),
     lambda ps: torch.optim.Adam(ps, lr=3e-3, betas=(0.9, 0.99), eps=1e-7, weight_decay=1e-4)),
    ("adamw", dict(lr=1e-3, weight_decay=0.05),
     lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.05)),
]


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 5))


def _steps(model, opt, n=6, frozen_at=None):
    g = torch.Generator().manual_seed(1)
    for step in range(n):
        opt.param_groups[0]["lr"] *= 0.9  # the schedule sets the lr before every step
        x = torch.randn(8, 3, 8, 8, generator=g)
        y = torch.randint(0, 5, (8,), generator=g)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        if frozen_at is not None and step >= frozen_at:
            model[-1].bias.grad = None  # a parameter without a gradient is left alone
        opt.step()


@pytest.mark.parametrize("kind,options,reference", CASES)
def test_parameters_and_state_equal_torch_optim_step_by_step(kind, options, reference):
    ours, theirs = _net(), _net()
    o, t = optim.create(kind, ours.parameters(), **options), reference(theirs.parameters())
    _steps(ours, o, frozen_at=3)
    _steps(theirs, t, frozen_at=3)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    ref = t.state_dict()["state"]
    mine = o.state_dict()["state"]
    assert sorted(mine) == sorted(ref)
    for i in ref:
        assert sorted(mine[i]) == sorted(ref[i])
        for key in ref[i]:
            assert torch.equal(mine[i][key], ref[i][key]), (i, key)


@pytest.mark.parametrize("kind,options,reference", CASES)
def test_a_resumed_optimizer_continues_exactly(kind, options, reference):
    """state_dict -> torch.save -> torch.load(weights_only=True) -> load_state_dict."""
    straight, resumed = _net(), _net()
    o1 = optim.create(kind, straight.parameters(), **options)
    _steps(straight, o1, n=8)
    o2 = optim.create(kind, resumed.parameters(), **options)
    _steps(resumed, o2, n=4)
    buf = io.BytesIO()
    torch.save({"model": resumed.state_dict(), "optimizer": o2.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    again = _net(5)
    again.load_state_dict(saved["model"])
    o3 = optim.create(kind, again.parameters(), **options)
    o3.load_state_dict(saved["optimizer"])
    g = torch.Generator().manual_seed(1)
    for _ in range(4):  # replay the first 4 batches' draws, then continue as _steps does
        torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 5, (8,), generator=g)
    for _ in range(4):
        o3.param_groups[0]["lr"] *= 0.9
        x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 5, (8,), generator=g)
        o3.zero_grad()
        nn.functional.cross_entropy(again(x), y).backward()
        o3.step()
    for a, b in zip(straight.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_bad_settings_and_foreign_state_are_refused():
    params = list(_net().parameters())
    with pytest.raises(ValueError, match="optimizer must be one of"):
        optim.create("lion", params, lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.create("sgd", params, lr=0.1, nesterov=True)
    adam = optim.create("adam", params, lr=0.1)
    with pytest.raises(ValueError, match="'sgd', not 'adam'"):
        adam.load_state_dict(optim.create("sgd", params, lr=0.1).state_dict())
    with pytest.raises(ValueError, match="parameter 99"):
        adam.load_state_dict({"kind": "adam", "param_groups": adam.state_dict()["param_groups"],
                              "state": {99: {}}})
    assert "torch.optim" not in optim.STATE_FORMAT  # checkpoints of torch.optim never resume


def test_a_training_run_never_imports_torch_dynamo(tmp_path):
    """The point of augloss.optim: a CPU training job skips the 2 s import of torch._dynamo."""
    code = f"""
import sys
from augloss import runs
job = runs.Job(stage="transfer", dataset="digits", augmentation="mixup",
               loss={{"name": "ce", "expression": "-(y * ln(p))"}},
               model={{"name": "surrogate", "bn_momentum": 0.5}},
               train={{"epochs": 1, "steps_per_epoch": 2, "batch_size": 8,
                       "eval_batch_size": 64, "optimizer": "sgd", "lr": 0.01}},
               seed=0, augment={{"image_size": 8}}, data_root={str(tmp_path)!r})
from augloss import data
data.load("digits", {str(tmp_path)!r}, "train", download=True)
runs.run(job, {str(tmp_path / "run")!r}, device="cpu")
print("dynamo" if "torch._dynamo" in sys.modules else "no dynamo")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "no dynamo"
    assert (tmp_path / "run" / "metrics.json").exists()
