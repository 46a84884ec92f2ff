"""Shadow variants: mirrored copies that never affect production, captures, report, promote."""

from __future__ import annotations

import json
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.telemetry.shadow_report import parse_numbers, read_pairs
from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import XGBOOST_IMAGE, ChurnModel, unique

pytestmark = pytest.mark.integration

FAILING_SCRIPT = """
def model_fn(model_dir):
    return None


def predict_fn(data, model):
    raise RuntimeError("shadow is broken on purpose")
"""

HANG_S = 3
HANGING_SCRIPT = f"""
import time

HANG_S = {HANG_S}


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    time.sleep(HANG_S)
    return [0.0]
"""


def _script_artifact(root: Path, script: str) -> Path:
    code = root / "code"
    code.mkdir()
    (code / "inference.py").write_text(script)
    artifact = root / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(code / "inference.py", arcname="code/inference.py")
    return artifact


def _variant(name: str, model: str, weight: float = 1.0) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": weight,
    }


def _shadow_endpoint(sm: Any, name: str, prod: Path, shadow: Path, wait: bool = True) -> None:
    for suffix, artifact in (("prod", prod), ("shadow", shadow)):
        sm.create_model(
            ModelName=f"{name}-{suffix}",
            PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(artifact)},
        )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[_variant("Prod", f"{name}-prod")],
        ShadowProductionVariants=[_variant("Shadow", f"{name}-shadow")],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )


def _wait_pairs(home: Path, name: str, n: int, limit_s: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + limit_s
    while True:
        pairs = read_pairs(home, name, "Shadow")
        if len(pairs) >= n or time.monotonic() > deadline:
            return pairs
        time.sleep(0.1)


def _native(server: ModelhostServer, method: str, path: str) -> Any:
    req = server.signed(method, path, b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {path}: {exc.code} {exc.read()!r}") from exc


def test_shadow_mirrors_captures_reports_and_promotes(
    server: ModelhostServer, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique("shadow")
    _shadow_endpoint(sm, name, churn_model.artifact, churn_model_small.artifact)
    desc = sm.describe_endpoint(EndpointName=name)
    assert [v["VariantName"] for v in desc["ProductionVariants"]] == ["Prod"]
    assert [v["VariantName"] for v in desc["ShadowProductionVariants"]] == ["Shadow"]
    assert desc["ShadowProductionVariants"][0]["CurrentInstanceCount"] == 1

    X = churn_model.data.X[:1]
    row = csv_rows(X)[0]
    n = 20
    for _ in range(n):
        out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
        assert out["InvokedProductionVariant"] == "Prod"
        assert abs(float(out["Body"].read()) - float(churn_model.expected(X)[0])) <= 1e-6
    pairs = _wait_pairs(server.home, name, n)
    assert len(pairs) == n
    pair = pairs[0]
    assert pair["production"]["variant"] == "Prod" and pair["shadow"]["variant"] == "Shadow"
    assert pair["inference_id"] and pair["shadow"]["status"] == 200
    shadow_value = parse_numbers(pair["shadow"]["body"].encode())
    assert shadow_value is not None
    assert abs(shadow_value[0] - float(churn_model_small.expected(X)[0])) <= 1e-6

    strict = _native(server, "GET", f"/api/endpoints/{name}/shadow-report")
    (variant,) = strict["ShadowVariants"]
    assert variant["VariantName"] == "Shadow" and variant["Pairs"] == n
    assert variant["ExactAgreement"] == 0.0
    assert variant["Production"]["ErrorRate"] == 0.0 and variant["Shadow"]["ErrorRate"] == 0.0
    assert variant["Shadow"]["LatencyP50Us"] > 0
    loose = _native(server, "GET", f"/api/endpoints/{name}/shadow-report?tolerance=1.0")
    assert loose["ShadowVariants"][0]["NumericAgreement"] == 1.0

    promoted = _native(server, "POST", f"/api/endpoints/{name}/promote-shadow")
    assert promoted["EndpointConfigName"] == f"{name}-promoted-1"
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointConfigName"] == f"{name}-promoted-1"
    assert "ShadowProductionVariants" not in desc
    out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
    assert out["InvokedProductionVariant"] == "Prod"
    assert abs(float(out["Body"].read()) - float(churn_model_small.expected(X)[0])) <= 1e-6
    sm.delete_endpoint(EndpointName=name)


@pytest.mark.parametrize("script", ["failing", "hanging"])
def test_a_broken_shadow_never_affects_production(
    server: ModelhostServer,
    churn_model: ChurnModel,
    tmp_path: Path,
    script: str,
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique(f"shadow-{script}")
    artifact = _script_artifact(tmp_path, FAILING_SCRIPT if script == "failing" else HANGING_SCRIPT)
    _shadow_endpoint(sm, name, churn_model.artifact, artifact)
    X = churn_model.data.X[:1]
    row = csv_rows(X)[0]
    n = 10 if script == "failing" else 4
    for _ in range(n):
        out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
        assert out["InvokedProductionVariant"] == "Prod"
        assert abs(float(out["Body"].read()) - float(churn_model.expected(X)[0])) <= 1e-6
    if script == "hanging":
        # Every production answer came back while the first copy still hangs in the shadow
        # (each takes HANG_S): production never waited for it.
        assert read_pairs(server.home, name, "Shadow") == []
    assert len(_wait_pairs(server.home, name, n, limit_s=n * HANG_S + 15)) == n
    report = _native(server, "GET", f"/api/endpoints/{name}/shadow-report")
    (variant,) = report["ShadowVariants"]
    assert variant["Pairs"] == n
    assert variant["Production"]["ErrorRate"] == 0.0
    if script == "failing":
        assert variant["Shadow"]["ErrorRate"] == 1.0
    else:
        assert variant["Shadow"]["ErrorRate"] == 0.0
        assert variant["Shadow"]["LatencyP50Us"] >= HANG_S * 1e6
        assert variant["Production"]["LatencyP99Us"] < variant["Shadow"]["LatencyP50Us"]
    sm.delete_endpoint(EndpointName=name)


def test_shadow_config_validation(sm: Any, churn_model: ChurnModel) -> None:
    name = unique("shadow-bad")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)},
    )
    for production, shadows, text in (
        (
            [_variant("A", name), _variant("B", name)],
            [_variant("S", name)],
            "exactly one production variant",
        ),
        ([_variant("A", name)], [_variant("S", f"{name}-missing")], "Could not find model"),
        ([_variant("A", name)], [_variant("A", name)], "unique"),
    ):
        with pytest.raises(ClientError) as exc:
            sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=production,
                ShadowProductionVariants=shadows,
            )
        assert exc.value.response["Error"]["Code"] == "ValidationException"
        assert text in exc.value.response["Error"]["Message"]
