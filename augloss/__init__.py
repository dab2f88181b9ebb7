"""augloss: evolving loss functions for specific image augmentation techniques.

Modules: ``losses`` (the loss language), ``data``, ``augment`` and ``batch_augment``,
``models`` and ``population``, ``train``, ``search``, ``tables``, ``workflow``, ``gpu``, ``io``.
"""

__version__ = "0.1.0"

# The five techniques, in table order (augloss.augment builds them). Defined here so modules that
# only need the names (tables, workflow glue) do not import torch and torchvision.
TECHNIQUES = ("base", "cutout", "mixup", "randaugment", "all")
