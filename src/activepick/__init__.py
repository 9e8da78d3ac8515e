"""napari-activepick: human-in-the-loop cryo-EM particle picking with active learning.

The package root and every subpackage except :mod:`activepick.plugin` are GUI-free:
they import neither Qt nor napari.
"""

__all__ = ["__version__"]


def __getattr__(name: str):
    # ``__version__`` is looked up on first use: importlib.metadata costs ~0.1 s, which
    # ``activepick --help`` should not pay.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("napari-activepick")
    except PackageNotFoundError:  # running from a source tree without install
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
