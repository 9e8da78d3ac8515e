"""Argument types of the subcommands: numbers checked where they are parsed.

A value outside its range is refused by argparse in one line
(``activepick train: error: argument --steps: must be at least 1, not 0``) before
any file is read, instead of training for no step or predicting with a threshold of
2. Plain Python only: building the parser must stay cheap.
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def at_least(low: int):
    """A whole number >= ``low``."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {text}")
        return value

    parse.__name__ = f"whole number >= {low}"
    return parse


def positive(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def non_negative(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (a confidence threshold, an IoU)."""
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], not {text}")
    return value
