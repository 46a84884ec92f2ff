"""CreateCompilationJob's rules beyond the service model's shapes, as pure functions."""

from __future__ import annotations

import json
from typing import Any

from modelhost.errors import ValidationException

# botocore's Framework enum has no LIGHTGBM: a LightGBM model (model.txt or a pickled
# LGBMClassifier/LGBMRegressor) is compiled with Framework SKLEARN.
DEFAULT_MAX_RUNTIME_S = 900
NEO_IMAGES = {"xgboost": "xgboost-neo", "lightgbm": "lightgbm-neo", "sklearn": "sklearn-neo"}
# The account SageMaker serves its Neo inference images from in most regions; only the
# repository name matters here (it selects the compiled runtime).
NEO_ACCOUNT = "785573368785"


def input_shape(data_input_config: str | None) -> list[int] | None:
    """The row shape in DataInputConfig: `{"data": [1, 69]}`, `{"input": [8, 69]}` or
    `[1, 69]`; None when absent. ValidationException when it is not such JSON."""
    if not data_input_config:
        return None
    try:
        doc = json.loads(data_input_config)
    except ValueError as exc:
        raise ValidationException(
            f"InputConfig.DataInputConfig is not valid JSON ({exc}); give the input shape "
            'as {"data": [1, 69]}'
        ) from None
    shape: Any = next(iter(doc.values()), None) if isinstance(doc, dict) else doc
    if isinstance(shape, list) and shape and isinstance(shape[0], list):
        shape = shape[0]
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):
        raise ValidationException(
            f"InputConfig.DataInputConfig {data_input_config!r} names no input shape: give "
            'positive integers as {"data": [rows, features]}'
        )
    return list(shape)


def check_request(p: dict[str, Any]) -> None:
    """Cross-field rules of CreateCompilationJob."""
    name = p["CompilationJobName"]
    if "InputConfig" not in p and "ModelPackageVersionArn" not in p:
        raise ValidationException(f"Compilation job {name}: InputConfig is required.")
    if "ModelPackageVersionArn" in p:
        raise ValidationException(
            f"Compilation job {name}: ModelPackageVersionArn is not supported by this "
            "modelhost version; give InputConfig.S3Uri"
        )
    out = p["OutputConfig"]
    if not out.get("TargetDevice") and not out.get("TargetPlatform"):
        raise ValidationException(
            f"Compilation job {name}: OutputConfig needs TargetDevice (e.g. ml_m5) or "
            "TargetPlatform {Os, Arch}."
        )
    if out.get("TargetDevice") and out.get("TargetPlatform"):
        raise ValidationException(
            f"Compilation job {name}: give TargetDevice or TargetPlatform, not both."
        )
    input_shape(p["InputConfig"].get("DataInputConfig"))


def max_runtime_s(p: dict[str, Any]) -> float:
    return float(
        (p.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_S
    )


def target_name(out: dict[str, Any]) -> str:
    """What names the output file: the device, or `os_arch` for a platform."""
    if out.get("TargetDevice"):
        return str(out["TargetDevice"])
    platform = out["TargetPlatform"]
    return f"{platform.get('Os', 'LINUX')}_{platform.get('Arch', 'X86_64')}".lower()


def output_url(input_uri: str, out: dict[str, Any]) -> str:
    """`<S3OutputLocation>/<input name>-<target>.tar.gz`, as SageMaker Neo names it."""
    base = input_uri.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    location = out["S3OutputLocation"].rstrip("/")
    return f"{location}/{base or 'model'}-{target_name(out)}.tar.gz"


def inference_image(kind: str, region: str) -> str:
    repo = NEO_IMAGES.get(kind, f"{kind}-neo")
    return f"{NEO_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{repo}:latest"
