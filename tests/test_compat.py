"""Every private name augloss uses, called against the installed versions: an upgrade that moves
one fails here by name (augloss.compat), not in the middle of a run."""

import ast
from pathlib import Path

import pytest
import torch

from augloss import compat

ROOT = Path(__file__).resolve().parents[1]


def test_deterministic_kernels_through_the_aten_flag():
    before = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        compat.deterministic_algorithms(compile_=False)
        assert torch.are_deterministic_algorithms_enabled()  # the public getter agrees
    finally:
        torch.use_deterministic_algorithms(before)


def test_randaugment_op_table_is_torchvisions():
    from torchvision.transforms import v2

    ops = dict(compat.randaugment_ops(v2.RandAugment()))
    assert {"Identity", "ShearX", "Rotate", "Posterize", "Solarize", "Equalize"} <= set(ops)
    magnitudes, signed = ops["Rotate"]
    assert signed and len(magnitudes(31, 8, 8)) == 31


def test_one_randaugment_op_applies_as_torchvision_applies_it():
    import torch
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as F

    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).reshape(2, 3, 8, 8)
    out = compat.randaugment_apply(v2.RandAugment(), images, "Rotate", 30.0)
    assert torch.equal(out, F.rotate(images, 30.0, interpolation=v2.InterpolationMode.NEAREST,
                                     fill=0))
    assert torch.equal(compat.randaugment_apply(v2.RandAugment(), images, "Identity", 0.0),
                       images)


def test_stanford_cars_samples_come_from_its_annotations(tmp_path):
    from augloss import synthetic

    base = synthetic.write("stanford_cars", tmp_path)  # the real layout, small
    from torchvision import datasets

    d = datasets.StanfordCars(str(base), split="train")
    samples = compat.stanford_cars_samples(d)
    assert len(samples) == len(d) and all(Path(f).is_file() for f, _ in samples)
    assert {c for _, c in samples} <= set(range(len(d.classes)))


def test_a_moved_name_fails_loudly_naming_it_and_the_tested_versions():
    with pytest.raises(compat.MovedAPI, match=r"torch\._C\._gone no longer exists in torch "
                                              r"2\..*constraints\.txt"):
        compat.private(torch._C, "_gone", "torch._C")


def test_no_other_module_reaches_for_a_private_name_of_torch_or_torchvision():
    """Outside augloss.compat, no ``torch._x`` / ``torchvision._x`` / ``obj._UPPER`` access."""
    bad = []
    for path in sorted((ROOT / "augloss").rglob("*.py")):
        if path.name == "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and \
                    not node.attr.startswith("__"):
                base = node.value
                root = base
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in ("torch", "torchvision", "timm"):
                    bad.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
                elif node.attr.lstrip("_").isupper() and node.attr != "_LAZY":
                    bad.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert not bad, bad
