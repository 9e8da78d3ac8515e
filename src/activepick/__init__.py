"""napari-activepick: human-in-the-loop cryo-EM particle picking with active learning.

The package root and every subpackage except :mod:`activepick.plugin` are GUI-free:
they import neither Qt nor napari.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-activepick")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
