"""The four places augloss reaches past a dependency's public API, each behind one wrapper.

``tests/test_compat.py`` calls every wrapper against the installed versions, so an upgrade that
moves or renames a private name fails there, loudly and by name, instead of somewhere in a run.
Each wrapper says why the public route is not taken.
"""

from __future__ import annotations

TESTED = "the versions in constraints.txt"


class MovedAPI(RuntimeError):
    """A private name augloss relies on is gone in the installed version of a dependency."""


def private(obj, name: str, owner: str):
    """``obj.<name>``, a private attribute; :class:`MovedAPI` naming it when it is gone."""
    try:
        return getattr(obj, name)
    except AttributeError:
        import importlib.metadata as md

        package = owner.split(".")[0]
        try:
            version = md.version(package)
        except md.PackageNotFoundError:
            version = "unknown"
        raise MovedAPI(f"{owner}.{name} no longer exists in {package} {version}; augloss is "
                       f"tested with {TESTED} (pip install -c constraints.txt)") from None


def deterministic_algorithms(compile_: bool) -> None:
    """``torch.use_deterministic_algorithms(True)`` for eager jobs without its ~1.5 s import of
    ``torch._inductor`` (the public call also sets ``torch._inductor.config.deterministic``, which
    matters only under ``torch.compile``, where the public call is made)."""
    import torch

    if compile_:
        torch.use_deterministic_algorithms(True)
    else:
        private(torch._C, "_set_deterministic_algorithms", "torch._C")(True)


def randaugment_ops(ra) -> list:
    """``[(op name, (magnitudes(num_bins, height, width), signed)), ...]`` of a torchvision
    ``v2.RandAugment``: the batched RandAugment draws from exactly torchvision's op table
    (no public accessor exists)."""
    return list(private(ra, "_AUGMENTATION_SPACE", "torchvision.transforms.v2.RandAugment")
                .items())


def randaugment_apply(ra, images, name: str, magnitude):
    """One op of a torchvision ``v2.RandAugment`` applied to ``images`` with its interpolation
    and fill: the batched RandAugment applies each drawn op to the images that drew it (the
    public call draws its own op per call, so it cannot apply a given one)."""
    apply = private(ra, "_apply_image_or_video_transform", "torchvision.transforms.v2.RandAugment")
    fill = private(ra, "_fill", "torchvision.transforms.v2.RandAugment")
    return apply(images, name, magnitude, interpolation=ra.interpolation, fill=fill)


def stanford_cars_samples(d) -> list[tuple[str, int]]:
    """``[(image path, class index), ...]`` of a torchvision ``StanfordCars``, read from its
    annotation files without decoding every image (the public ``d[i]`` opens the JPEG)."""
    return list(private(d, "_samples", "torchvision.datasets.StanfordCars"))
