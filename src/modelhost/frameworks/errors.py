"""Runtime errors, kept importable here for script-mode code; they live in `modelhost.errors`.

`status_code` is the HTTP status the container answers with; the attribute names
(`status_code`, `message`) match the inference toolkit's `BaseInferenceToolkitError`.
"""

from __future__ import annotations

from modelhost.errors import InferenceError, InvalidInput, ModelLoadError, PredictionFailed

__all__ = ["InferenceError", "InvalidInput", "ModelLoadError", "PredictionFailed"]
