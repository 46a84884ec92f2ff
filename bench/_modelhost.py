"""modelhost for the benchmark: variants (batching, workers) and OverheadLatency from /metrics.

A variant is a `+`-joined list of settings that become the model's `Environment`, the
way a user would set them with CreateModel:

| token | Environment |
|---|---|
| `plain` | `MH_INSTANCE_BATCHING=off` (and 1 worker) |
| `batching` | `MH_INSTANCE_BATCHING=on` |
| `workersN` | `SAGEMAKER_MODEL_SERVER_WORKERS=N` |
| `waitMS` | `MH_INSTANCE_BATCH_MAX_WAIT_MS=MS` (implies batching) |
| `rowsN` | `MH_INSTANCE_BATCH_MAX_ROWS=N` (implies batching) |
| `instancesN` | `InitialInstanceCount=N` (not an Environment; overrides `--instances`) |
| `captureN` | none: the endpoint config captures N % (input and output) to a local folder |
| `tcp` | none: the server runs with `MODELHOST_INSTANCE_UNIX_SOCKETS=false` (hop over TCP) |
| `uvicorn` | `MH_INSTANCE_HTTP_SERVER=uvicorn` (the instance on uvicorn, not its own server) |
| `asgi` | none: the server runs with `MODELHOST_HTTP_FAST_PATH=false` (all through ASGI) |
| `compiled` | `MH_INSTANCE_COMPILE_TREES=on` (the compiled tier; the bench waits for it) |

Every variant sets batching, workers and the compiled tier explicitly, so the figures do
not depend on the defaults of the modelhost version under test. `default` sets nothing
(batching on, and the compiled tier `auto`: on where the machine has a C compiler).
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

from modelhost import demo

_OVERHEAD = re.compile(r'^OverheadLatency_bucket\{[^}]*le="([^"]+)"[^}]*\} ([0-9.e+]+)$', re.M)


def variant_env(variant: str) -> dict[str, str]:
    """The model Environment of a variant name such as `batching+workers2`."""
    if variant == "default":
        return {}
    env = {
        "MH_INSTANCE_BATCHING": "off",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        "MH_INSTANCE_COMPILE_TREES": "off",
    }
    for token in variant.split("+"):
        if token in ("plain", "tcp", "asgi") or re.fullmatch(r"capture(\d+)", token):
            continue
        if token == "batching":
            env["MH_INSTANCE_BATCHING"] = "on"
        elif token == "compiled":
            env["MH_INSTANCE_COMPILE_TREES"] = "on"
        elif token == "uvicorn":
            env["MH_INSTANCE_HTTP_SERVER"] = "uvicorn"
        elif m := re.fullmatch(r"workers(\d+)", token):
            env["SAGEMAKER_MODEL_SERVER_WORKERS"] = m.group(1)
        elif m := re.fullmatch(r"wait([0-9.]+)", token):
            env["MH_INSTANCE_BATCHING"] = "on"
            env["MH_INSTANCE_BATCH_MAX_WAIT_MS"] = m.group(1)
        elif m := re.fullmatch(r"rows(\d+)", token):
            env["MH_INSTANCE_BATCHING"] = "on"
            env["MH_INSTANCE_BATCH_MAX_ROWS"] = m.group(1)
        elif re.fullmatch(r"instances(\d+)", token):
            continue  # the instance count (`variant_instances`), not the Environment
        else:
            raise ValueError(f"unknown modelhost variant setting {token!r} in {variant!r}")
    return env


def wait_compiled(base: str, endpoint: str, instances: int, timeout_s: float = 600.0) -> float:
    """Seconds until every instance of `endpoint` says its model predicts with its compiled
    form (`Instances[].CompiledTier` of the native describe; the server runs without auth);
    `TimeoutError` when it failed or past `timeout_s`."""
    started = time.monotonic()
    while True:
        with urllib.request.urlopen(f"{base}/api/endpoints/{endpoint}", timeout=10) as answer:
            described = json.loads(answer.read())
        states = [(i.get("CompiledTier") or {}) for i in described.get("Instances") or []]
        if len(states) >= instances and all(s.get("state") == "compiled" for s in states):
            return time.monotonic() - started
        if any(s.get("state") == "failed" for s in states) or (
            time.monotonic() - started > timeout_s
        ):
            raise TimeoutError(f"the compiled tier did not switch {endpoint}: {states}")
        time.sleep(0.5)


def variant_server_env(variant: str) -> dict[str, str]:
    """The server's own settings a variant changes (`tcp`: no Unix sockets, `asgi`: no
    fast path for InvokeEndpoint)."""
    tokens = variant.split("+")
    env = {}
    if "tcp" in tokens:
        env["MODELHOST_INSTANCE_UNIX_SOCKETS"] = "false"
    if "asgi" in tokens:
        env["MODELHOST_HTTP_FAST_PATH"] = "false"
    return env


def variant_instances(variant: str, default: int) -> int:
    """The InitialInstanceCount of a variant name such as `plain+instances2`."""
    for token in variant.split("+"):
        if m := re.fullmatch(r"instances(\d+)", token):
            return max(1, int(m.group(1)))
    return default


def variant_capture(variant: str) -> int | None:
    """The data-capture sampling percentage of a variant (`capture100`), or None."""
    found = re.search(r"(?:^|\+)capture(\d+)(?:\+|$)", variant)
    return None if found is None else int(found.group(1))


def deploy(
    sm: Any,
    artifact: Path,
    instance_count: int,
    environment: dict[str, str],
    capture: tuple[int, Path] | None = None,
    image: str = demo.XGBOOST_IMAGE,
) -> None:
    """`demo.deploy`, plus the variant's Environment on the model and, with `capture`
    (percent, folder), a DataCaptureConfig on the endpoint config; `image` names the
    runtime (the XGBoost image by default, `lightgbm` for `realtime.py --model lightgbm`)."""
    container = {
        "Image": image,
        "ModelDataUrl": artifact.resolve().as_uri(),
        "Environment": environment,
    }
    names = (demo.MODEL_NAME, demo.CONFIG_NAME, demo.ENDPOINT_NAME)
    deploy_named(sm, names, container, instance_count, **_capture_config(capture))


def deploy_named(
    sm: Any,
    names: str | tuple[str, str, str],
    container: dict[str, Any],
    instances: int,
    max_attempts: int = 240,
    **config: Any,
) -> None:
    """Model, endpoint config and endpoint `names` (one name for all three, or model,
    config, endpoint): `container` as the PrimaryContainer, one AllTraffic variant of
    `instances` ml.m5.large, `config` added to the endpoint config (AsyncInferenceConfig,
    DataCaptureConfig); waits for InService (0.5 s × `max_attempts`)."""
    model, config_name, endpoint = (names,) * 3 if isinstance(names, str) else names
    sm.create_model(ModelName=model, PrimaryContainer=container, ExecutionRoleArn=demo.ROLE_ARN)
    sm.create_endpoint_config(
        EndpointConfigName=config_name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InitialInstanceCount": instances,
                "InstanceType": "ml.m5.large",
            }
        ],
        **config,
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint, WaiterConfig={"Delay": 0.5, "MaxAttempts": max_attempts}
    )


def _capture_config(capture: tuple[int, Path] | None) -> dict[str, Any]:
    if capture is None:
        return {}
    percent, folder = capture
    return {
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": percent,
            "DestinationS3Uri": str(folder),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    }


def overhead_buckets(base: str) -> dict[float, float]:
    """Cumulative OverheadLatency bucket counts (µs upper bound → count) from /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[float, float] = {}
    for le, count in _OVERHEAD.findall(text):
        bound = float("inf") if le == "+Inf" else float(le)
        out[bound] = out.get(bound, 0.0) + float(count)
    return out


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Quantile (µs) of the observations between two snapshots, interpolated in its bucket
    as Prometheus' histogram_quantile does."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, cumulative
    return lower
