"""augloss: evolving loss functions for specific image augmentation techniques.

Modules: ``losses`` (the loss language), ``data``, ``augment``, ``models``, ``train``, ``gpu``.
"""

__version__ = "0.1.0"
