"""imagespec as flytekit's image builder.

Installing this package registers the builder ``imagespec`` with flytekit's
``ImageBuildEngine`` at a priority above flytekit's own builders, so every ``ImageSpec`` that
names no ``builder`` is built by the ``imagespec`` binary the wheel ships; ``builder="default"``
still picks flytekit's. Image names are flytekit's, byte for byte.
"""

from .builder import PRIORITY, ImagespecBuildError, ImagespecBuilder, ImagespecError, register

__all__ = ["ImagespecBuildError", "ImagespecBuilder", "ImagespecError", "PRIORITY", "register"]

register()
