"""augloss: evolving loss functions for specific image augmentation techniques.

The README's "Library" section maps the modules and their layers; ``names``, ``techniques``,
``registry``, ``config`` and ``experiment`` (torch-free) hold the shared names, the specs, the
configuration types and the experiment a config describes.
"""

__version__ = "0.1.0"
