"""augloss: evolving loss functions for specific image augmentation techniques.

Modules: ``losses`` (the loss language), ``data``, ``augment`` and ``batch_augment``,
``models`` and ``population``, ``train``, ``search``, ``tables``, ``workflow``, ``gpu``, ``io``;
``config`` and ``names`` (torch-free) hold the configuration types and the shared names.
"""

__version__ = "0.1.0"

from augloss.names import TECHNIQUES  # noqa: E402,F401 (the names live in augloss.names)
