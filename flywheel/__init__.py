"""flywheel: production feedback (thumbs, edits) to a better model, nightly, safely."""

__version__ = "0.1.0"
