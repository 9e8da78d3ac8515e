"""One source of truth for the project's constants (SPEC sections 1-5)."""

from __future__ import annotations

#: Columns of the pick table, in order (SPEC section 1).
PICK_COLUMNS: tuple[str, ...] = (
    "micrograph",  # name of the micrograph: file name without extension
    "x",  # centre column in pixels of the ORIGINAL micrograph, origin top-left
    "y",  # centre row in pixels of the ORIGINAL micrograph, origin top-left
    "diameter",  # box size / particle diameter in pixels
    "confidence",  # predicted confidence in [0, 1], NaN when not predicted
    "status",  # one of STATUSES
    "round",  # active-learning round that made the pick (0 = import / initial)
    "time",  # UTC time stamp (ISO 8601 string) of the decision or prediction
)

#: The pick statuses.
STATUS_PREDICTED = "predicted"
STATUS_ACCEPTED = "accepted"
STATUS_MOVED = "moved"
STATUS_ADDED = "added"
STATUS_REJECTED = "rejected"
STATUS_IMPORTED = "imported"
#: A label-table row that is no pick: a region the user marked complete (every particle
#: in it is labelled), centre (x, y) and ``diameter`` = the region's (issue 20).
STATUS_COMPLETE = "complete"
STATUSES: tuple[str, ...] = (
    STATUS_PREDICTED,
    STATUS_ACCEPTED,
    STATUS_MOVED,
    STATUS_ADDED,
    STATUS_REJECTED,
    STATUS_IMPORTED,
    STATUS_COMPLETE,
)
#: Statuses that count as a positive label (a particle) for training and export.
POSITIVE_STATUSES: tuple[str, ...] = (
    STATUS_ACCEPTED,
    STATUS_MOVED,
    STATUS_ADDED,
    STATUS_IMPORTED,
)

#: Default particle diameter = box size, in pixels of the original micrographs.
DEFAULT_DIAMETER = 64.0

#: Largest |x|, |y| or diameter (px) any pick may have: beyond any micrograph, and far
#: below where squared distances overflow (1e300 once gave a scipy traceback). The
#: coordinate readers and the metrics refuse what lies beyond.
MAX_COORDINATE = 1e9

#: IoU above which a prediction matches a ground-truth particle in the metrics.
DEFAULT_TP_IOU = 0.5
#: Circle-IoU threshold of non-maximum suppression.
DEFAULT_NMS_IOU = 0.3
#: Minimum confidence for a prediction to be an active-learning candidate.
DEFAULT_MIN_CONFIDENCE = 0.01
#: Oracle IoU threshold on synthetic data (thesis) and on real data.
ORACLE_TAU_SYNTHETIC = 0.7
ORACLE_TAU_REAL = 0.3
#: Threshold grid for T_opt (0, 0.01, ..., 1) and the PR curve (0, 0.001, ..., 1).
T_OPT_STEPS = 101
PR_STEPS = 1001
#: Clip of confidences before taking logs (entropy score).
CONFIDENCE_EPS = 1e-6

#: Provenance columns that a label table (the engine's and the session's record of
#: every decision) carries after the pick columns:
#: ``pick_id`` unique int per pick in a session; ``strategy`` the strategy that
#: queued it ("" for added / imported); ``source`` one of LABEL_SOURCES;
#: ``pred_x`` / ``pred_y`` the predicted centre before a correction (NaN if none).
LABEL_EXTRA_COLUMNS: tuple[str, ...] = ("pick_id", "strategy", "source", "pred_x", "pred_y")
LABEL_COLUMNS: tuple[str, ...] = PICK_COLUMNS + LABEL_EXTRA_COLUMNS
LABEL_SOURCES: tuple[str, ...] = ("initial", "import", "oracle", "human")

#: Coordinate format names of ``activepick.io.formats.FORMATS`` (listed here so the
#: CLI can offer them without importing pandas; a test keeps the two equal).
COORDINATE_FORMATS: tuple[str, ...] = (
    "star",
    "relion",
    "cbox",
    "box",
    "cs",
    "topaz",
    "cryoppp",
    "csv",
)
