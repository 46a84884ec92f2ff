"""Map a container `Image` to a built-in runtime.

SageMaker framework images (e.g. `683313688378.dkr.ecr.us-east-1.amazonaws.com/
sagemaker-xgboost:1.7-1`) and short names (`xgboost`, `modelhost/sklearn:latest`) select
the built-in runtime of that framework; no container engine is needed for them.
"""

from __future__ import annotations

import re

BUILTIN_RUNTIMES = ("xgboost", "sklearn", "lightgbm", "onnx", "pytorch", "mlflow", "compiled")

# Checked in order against the image's last path segment (repository:tag).
_PATTERNS = (
    # SageMaker Neo's inference images (xgboost-neo, sklearn-neo, sagemaker-neo-...,
    # neo-pytorch): the compiled-model runtime, before the framework names they contain.
    ("compiled", re.compile(r"(^|[-_/])neo([-_:]|$)", re.I)),
    ("xgboost", re.compile(r"xgboost", re.I)),
    ("sklearn", re.compile(r"sklearn|scikit[-_]?learn", re.I)),
    ("lightgbm", re.compile(r"lightgbm|lgbm", re.I)),
    ("onnx", re.compile(r"onnx", re.I)),
    ("pytorch", re.compile(r"pytorch|torch", re.I)),
    ("mlflow", re.compile(r"mlflow", re.I)),
)


# Forms that always mean "the user's own server" (fleet/byoc.py), whatever they contain.
BYOC_PREFIXES = ("command:", "docker://", "/", "file://")


def builtin_runtime_for_image(image: str | None) -> str | None:
    """`"auto"` when no image is given (detect from the artifact), the runtime name when the
    image names a built-in framework, else None (a user's own server or image)."""
    if not image:
        return "auto"
    if image.startswith(BYOC_PREFIXES):
        return None
    repo = image.rsplit("/", 1)[-1]
    for name, pattern in _PATTERNS:
        if pattern.search(repo):
            return name
    return None
