"""PhosaurusNet (crYOLO's network, thesis table 2-1) and its light variant, in torch.

The full network follows the thesis table exactly for a 1024 x 1024 input:
22 convolutions (each Conv2d without bias + BatchNorm + LeakyReLU(0.1)), max-pools
after layers 1, 2, 5, 8 and 13 (the table lists a layer's shape before its pool),
layer 20 upsampled x2 and concatenated with a 1x1 conv (layer 21) of layer 13's
output -> 64 x 64 x 1280, layer 22 (3x3, 1024), then the detection head:
Dropout(0.2) + 1x1 conv to 6 channels per cell of the stride-16 grid.

Output channels (:data:`OUTPUT_CHANNELS`): raw x / y offsets (sigmoid gives the
position inside the cell), w / h log-size relative to the anchor, objectness logit,
class logit (one class; not trained). The light variant has the same topology with
every channel count scaled (x0.25 by default, ~3.2 M parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import DEFAULT_LIGHT_WIDTH, DetectorConfig

#: Channel order of the network output.
OUTPUT_CHANNELS: tuple[str, ...] = ("x", "y", "w", "h", "objectness", "class")

#: The thesis table: (layer, filters, kernel) of the 22 convolutions in order.
PHOSAURUS_LAYERS: tuple[tuple[int, int, int], ...] = (
    (1, 32, 3),
    (2, 64, 3),
    (3, 128, 3),
    (4, 64, 1),
    (5, 128, 3),
    (6, 256, 3),
    (7, 128, 1),
    (8, 256, 3),
    (9, 512, 3),
    (10, 256, 1),
    (11, 512, 3),
    (12, 256, 1),
    (13, 512, 3),
    (14, 1024, 3),
    (15, 512, 1),
    (16, 1024, 3),
    (17, 512, 1),
    (18, 1024, 3),
    (19, 1024, 3),
    (20, 1024, 3),
    (21, 256, 1),
    (22, 1024, 3),
)
#: Layers followed by a 2x2 max-pool.
POOLED_LAYERS: frozenset[int] = frozenset({1, 2, 5, 8, 13})


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class ConvBlock(nn.Sequential):
    """Conv2d (no bias, 'same' padding) + BatchNorm2d + LeakyReLU(0.1)."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.1, inplace=True),
        )


class PhosaurusNet(nn.Module):
    """PhosaurusNet with channel counts scaled by ``width`` (1.0 = the thesis table).

    Input: ``(B, 1, H, W)`` float with H and W multiples of 32 (normalised image).
    Output: ``(B, 6, H / 16, W / 16)``, channels :data:`OUTPUT_CHANNELS`.
    Submodules ``layer1`` ... ``layer22`` are the table's rows; ``head`` is the
    detection layer (``head[0]`` the dropout, ``head[1]`` the 1x1 conv).
    """

    def __init__(self, width: float = 1.0, dropout: float = 0.2, in_channels: int = 1) -> None:
        super().__init__()
        self.width = float(width)
        cin = in_channels
        out = {}
        for layer, filters, kernel in PHOSAURUS_LAYERS:
            cout = _scaled(filters, width)
            if layer == 21:
                cin = out[13]
            elif layer == 22:
                cin = out[20] + out[21]
            self.add_module(f"layer{layer}", ConvBlock(cin, cout, kernel))
            out[layer] = cout
            cin = cout
        self.pool = nn.MaxPool2d(2, 2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(out[22], len(OUTPUT_CHANNELS), 1))
        self.feature_channels = out[22]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Layer 22's output ``(B, C22, H / 16, W / 16)`` (everything but the head)."""
        skip = None
        for layer in range(1, 21):
            x = getattr(self, f"layer{layer}")(x)
            if layer == 13:
                skip = x
            if layer in POOLED_LAYERS:
                x = self.pool(x)
        x = torch.cat([self.upsample(x), self.layer21(skip)], dim=1)
        return self.layer22(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_network(
    arch: str = "light", *, width: float | None = None, dropout: float = 0.2
) -> nn.Module:
    """A freshly initialised PhosaurusNet: ``"full"`` (the thesis table) or ``"light"``.

    ``width`` scales the light variant's channels (default 0.25); the full network
    always has width 1.0 and rejects another ``width``.
    """
    if arch == "full":
        if width not in (None, 1, 1.0):
            raise ValueError(f"the full network has width 1.0, got width={width!r}")
        return PhosaurusNet(1.0, dropout)
    if arch == "light":
        return PhosaurusNet(DEFAULT_LIGHT_WIDTH if width is None else float(width), dropout)
    raise ValueError(f"unknown architecture {arch!r}; choose 'light' or 'full'")


def network_for_config(config: DetectorConfig) -> nn.Module:
    """The (untrained) network a config describes."""
    return build_network(
        config.arch,
        width=None if config.arch == "full" else config.channel_width,
        dropout=config.dropout,
    )


def count_parameters(network: nn.Module) -> int:
    """Number of parameters (weights and biases, BatchNorm's affine ones included)."""
    return sum(p.numel() for p in network.parameters())


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` / None -> CUDA when present, else CPU; otherwise ``torch.device(device)``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class Detector:
    """A trained (or loaded) detector: network, config and a training summary.

    ``config.input_size`` is resolved (never None) once the detector is trained.
    ``meta`` holds the training summary (epochs, steps, final loss, time, data).
    """

    network: nn.Module
    config: DetectorConfig
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        """The device the network's parameters live on."""
        return next(self.network.parameters()).device

    def to(self, device: str | torch.device) -> Detector:
        """Move the network to ``device`` (``"auto"`` allowed); returns self."""
        self.network.to(resolve_device(device))
        return self
