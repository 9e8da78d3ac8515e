"""The project's own exception types.

Every error caused by user input (a file, a coordinate table, a setting) is raised
as one of these, with a message that names the file and the problem, so the CLI and
the napari layer can show it without a traceback.
"""

from __future__ import annotations

import os


class ActivePickError(Exception):
    """Base class of all errors raised on bad input or bad state."""


class MicrographError(ActivePickError):
    """A micrograph file cannot be read: missing, truncated, wrong shape or mode."""


class CoordinateError(ActivePickError):
    """A coordinate file or pick table is malformed or does not fit its micrographs."""


class CheckpointError(ActivePickError):
    """A model checkpoint is missing, corrupt or of another architecture."""


class SessionError(ActivePickError):
    """A session folder is missing, corrupt or of an incompatible version."""


class Cancelled(ActivePickError):
    """Long work (training, prediction, simulation) was stopped by the user."""


def not_a_file(path, missing: str = "not found") -> str | None:
    """Why ``path`` cannot be read as a file: ``"is a folder, not a file"``, ``missing``,
    or None when it is a file. For one-line messages: ``f"{path}: model file {why}"``."""
    if os.path.isfile(path):
        return None
    return "is a folder, not a file" if os.path.isdir(path) else missing
