"""The session's pixel size (Å/px of the original micrographs) and sizes in Å.

A pixel size comes from the micrographs' MRC headers (``Micrograph.pixel_size``, read by
``io.micrograph.read_pixel_size``; the first one, ``display.micrograph_pixel_size``) or is entered once per session
(:meth:`PixelSizeAccess.set_pixel_size`, saved in the session's settings as
``pixel_size``); an entered one wins, since headers are sometimes wrong (1.0 or 0).
:attr:`PixelSizeAccess.pixel_size` is the one value every user of the session reads:
the widget's Å next to px, the exports (RELION optics block, ``.mrcs`` voxel size,
cryoSPARC ``micrograph_psize_A``) and a display filter in Å.
"""

from __future__ import annotations

import math
from typing import Any

from ..display import micrograph_pixel_size
from .settings import SettingsError

#: Key of the entered pixel size in a session's settings (``session.json``).
PIXEL_SIZE_SETTING = "pixel_size"


def check_pixel_size(value: Any, source: str = "pixel size") -> float | None:
    """``value`` as Å/px: None (or 0, "unknown") stays None; anything but a finite
    positive number raises :class:`SettingsError` naming ``source``."""
    if value is None:
        return None
    try:
        size = float(value)
    except (TypeError, ValueError):
        raise SettingsError(
            f"{source}: pixel size must be a number of Å/px, not {value!r}"
        ) from None
    if size == 0:
        return None
    if not math.isfinite(size) or size < 0:
        raise SettingsError(
            f"{source}: pixel size must be a positive number of Å/px, not {value!r}"
        )
    return size


def angstrom_text(px: float, pixel_size: float | None) -> str:
    """``px`` pixels in Å at ``pixel_size`` Å/px (``"42.0 Å"``, no decimals from 100 Å
    on); ``""`` when the pixel size is unknown."""
    if not pixel_size:
        return ""
    a = float(px) * float(pixel_size)
    return f"{a:.1f} Å" if a < 100 else f"{a:.0f} Å"


class PixelSizeAccess:
    """Mixin of :class:`~activepick.active.workbench.Workbench`: its pixel size."""

    #: The pixel size entered for this session (Å/px), or None (the headers' is used).
    entered_pixel_size: float | None = None

    @property
    def pixel_size(self) -> float | None:
        """Å/px of the session's micrographs: the entered one, else the headers', else
        None (unknown: sizes are shown in px only)."""
        if self.entered_pixel_size:
            return self.entered_pixel_size
        return micrograph_pixel_size(self.learner.micrographs)

    def set_pixel_size(self, value: float | None) -> None:
        """Enter the pixel size (Å/px) for this session and save it with the session's
        settings; None or 0 goes back to the headers' value."""
        size = check_pixel_size(value)
        if size == self.entered_pixel_size:
            return
        self.entered_pixel_size = size
        if self.session is not None:
            self.session.save_settings({**self.session.settings, **self.settings_dict()})


__all__ = [
    "PIXEL_SIZE_SETTING",
    "PixelSizeAccess",
    "angstrom_text",
    "check_pixel_size",
]
