"""`modelhost demo`: train the churn model, deploy it with unmodified boto3, check the answers.

The demo is the README's main job in one command. It generates the seeded churn data set,
trains the 100-tree XGBoost model, writes SageMaker's `model.tar.gz`, starts a modelhost
server on a free loopback port (unless given one), deploys the artifact through the
`sagemaker` boto3 client exactly as on AWS, invokes it through `sagemaker-runtime`, and
compares every served probability with XGBoost's own in-process answer.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import numpy as np

from modelhost.container.compile_tier import unavailable
from modelhost.settings import Settings
from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer, boto3_client
from modelhost.testing.server import boto3_clients as server_clients

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/modelhost"
MODEL_NAME = "churn-xgb"
CONFIG_NAME = "churn-xgb-config"
ENDPOINT_NAME = "churn-xgb"
TOLERANCE = 1e-6
SERVER_START_TIMEOUT_S = 60.0
TIER_WAIT_S = 60.0
"""How long the demo waits for the compiled tier's word in the endpoint's log."""
TIER_WORDS = ("now predicts with its compiled form", "stays on", "compiled tier is off")


def boto3_clients(base_url: str) -> tuple[Any, Any]:
    """The `sagemaker` and `sagemaker-runtime` clients a SageMaker user already has."""
    return server_clients(
        base_url,
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=70,
    )


def parse_predictions(body: bytes, content_type: str = "text/csv") -> np.ndarray:
    """Probabilities from an XGBoost answer: CSV (comma- or line-separated) or JSON."""
    text = body.decode("utf-8").strip()
    if "json" in content_type or text.startswith(("{", "[")):
        value = json.loads(text)
        if isinstance(value, dict):
            value = value.get("predictions", value)
        flat = [v.get("score", v) if isinstance(v, dict) else v for v in value]
        return np.asarray(flat, dtype=np.float64).ravel()
    return np.asarray([float(v) for v in re.split(r"[,\s]+", text) if v], dtype=np.float64)


def deploy(
    sm: Any,
    artifact: Path,
    instance_count: int = 1,
    names: tuple[str, str, str] = (MODEL_NAME, CONFIG_NAME, ENDPOINT_NAME),
    max_wait_attempts: int = 120,
    created: list[str] | None = None,
) -> None:
    """CreateModel, CreateEndpointConfig, CreateEndpoint, then wait for InService.

    Each resource's kind ("model", "config", "endpoint") is appended to `created` as soon as
    it exists, so a caller can clean up after a failure half way.
    """
    model_name, config_name, endpoint_name = names
    done = created if created is not None else []
    sm.create_model(
        ModelName=model_name,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": artifact.resolve().as_uri()},
        ExecutionRoleArn=ROLE_ARN,
    )
    done.append("model")
    sm.create_endpoint_config(
        EndpointConfigName=config_name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InitialInstanceCount": instance_count,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    done.append("config")
    sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
    done.append("endpoint")
    from botocore.exceptions import WaiterError

    try:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=endpoint_name,
            WaiterConfig={"Delay": 1, "MaxAttempts": max_wait_attempts},
        )
    except WaiterError as exc:
        reason = ""
        with contextlib.suppress(Exception):
            described = sm.describe_endpoint(EndpointName=endpoint_name)
            reason = f" (status {described.get('EndpointStatus')}: "
            reason += f"{described.get('FailureReason', 'no FailureReason')})"
        raise RuntimeError(f"endpoint {endpoint_name} did not reach InService{reason}") from exc


def undeploy(
    sm: Any,
    names: tuple[str, str, str] = (MODEL_NAME, CONFIG_NAME, ENDPOINT_NAME),
    say: Callable[[str], None] = lambda _: None,
    created: list[str] | None = None,
) -> None:
    """Delete the endpoint, its config and the model; report but don't raise on failures.

    With `created` (as filled by `deploy`), only the resources listed there are deleted.
    """
    model_name, config_name, endpoint_name = names
    for kind, call, kwargs in (
        ("endpoint", sm.delete_endpoint, {"EndpointName": endpoint_name}),
        ("config", sm.delete_endpoint_config, {"EndpointConfigName": config_name}),
        ("model", sm.delete_model, {"ModelName": model_name}),
    ):
        if created is not None and kind not in created:
            continue
        try:
            call(**kwargs)
        except Exception as exc:  # cleanup goes on with the next resource
            say(f"  cleanup: {call.__name__}: {exc}")


@contextlib.contextmanager
def _server(
    base_url: str | None, home: Path | None, work: Path, say: Callable[[str], None]
) -> Iterator[str]:
    if base_url is not None:
        yield base_url.rstrip("/")
        return
    server = ModelhostServer(
        home if home is not None else work / "home", log_path=work / "server.log"
    )
    say(f"starting modelhost on {server.url} (home {server.home})")
    try:
        server.start(timeout_s=SERVER_START_TIMEOUT_S)
        yield server.url
    except Exception:
        say(f"server log ({server.log_path}), last lines:\n{server.log_tail()}")
        raise
    finally:
        server.stop()
        say("stopped modelhost")


def run_demo(
    base_url: str | None = None,
    home: Path | None = None,
    rows: int = 10,
    *,
    out: TextIO | None = None,
) -> int:
    """Run the demo; return the process exit code (0 when every served answer matches).

    With `base_url`, use that running server instead of starting one (`home` is then
    unused); it must run on this machine, since the artifact is handed over as a file:// URL.
    The server the demo starts is always stopped, also on errors, Ctrl-C and SIGTERM.
    """
    stream = out if out is not None else sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    rows = max(1, rows)
    installed = threading.current_thread() is threading.main_thread()
    if installed:
        # SIGTERM unwinds like Ctrl-C so the finally blocks stop the server we started.
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="modelhost-demo-") as tmp:
            try:
                return _run(base_url, home, rows, Path(tmp), say)
            except KeyboardInterrupt:
                say("interrupted")
                return 130
            except Exception as exc:
                say(f"demo failed: {type(exc).__name__}: {exc}")
                return 1
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(
    base_url: str | None, home: Path | None, rows: int, work: Path, say: Callable[[str], None]
) -> int:
    started = time.perf_counter()
    data = churn.make_churn(5000, seed=0)
    train, test = data.split(test_fraction=0.2, seed=0)
    rows = min(rows, len(test))
    say(
        f"generated churn data: {len(data)} customers, {churn.N_FEATURES} features, "
        f"{data.y.mean():.1%} churn (train {len(train)}, test {len(test)})"
    )
    t0 = time.perf_counter()
    booster = churn.train_xgboost(train, num_round=100, seed=0, nthread=1)
    say(f"trained XGBoost binary:logistic, 100 trees, in {time.perf_counter() - t0:.1f} s")
    artifact = churn.write_xgboost_artifact(booster, work / "model")
    say(f"wrote {artifact} ({artifact.stat().st_size:,} bytes)")
    local = churn.read_xgboost_artifact(artifact)  # what the server loads
    X = test.X[:rows]
    expected = np.asarray(local.inplace_predict(X), dtype=np.float64)
    lines = churn.csv_rows(X)

    with _server(base_url, home, work, say) as url:
        sm, runtime = boto3_clients(url)
        created: list[str] = []
        try:
            t0 = time.perf_counter()
            say(f"deploying {MODEL_NAME} with boto3 (create_model, endpoint config, endpoint)")
            deploy(sm, artifact, created=created)
            say(f"endpoint {ENDPOINT_NAME} InService after {time.perf_counter() - t0:.1f} s")

            served, batch, latencies_ms = _invoke_rows(runtime, lines)
            states = test.raw["State"][:rows].tolist()
            status = _compare(states, served, batch, expected, latencies_ms, say)
            if status == 0 and _compiled_tier(url, base_url is None, say):
                served, batch, latencies_ms = _invoke_rows(runtime, lines)
                status = _compare(states, served, batch, expected, latencies_ms, say)
        finally:
            if created:
                say("deleting endpoint, endpoint config and model")
                undeploy(sm, say=say, created=created)
    if status == 0:
        say(f"demo finished in {time.perf_counter() - started:.1f} s")
    return status


def _compiled_tier(url: str, ours: bool, say: Callable[[str], None]) -> bool:
    """Wait for the compiled tier (on by default where this machine can compile) to move
    the model to native code; True when it did, so the answers are checked again."""
    if ours and (why := _tier_off()) is not None:
        say(f"\ncompiled tier: not used here ({why})")
        return False
    logs = boto3_client("logs", url, None, retries={"max_attempts": 3, "mode": "standard"})
    group = f"/aws/sagemaker/Endpoints/{ENDPOINT_NAME}"
    t0 = time.perf_counter()
    say("\nwaiting for the compiled tier (the model compiled to native code in the background)")
    while time.perf_counter() - t0 < TIER_WAIT_S:
        with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
            for event in logs.filter_log_events(logGroupName=group)["events"]:
                message = event["message"]
                if any(word in message for word in TIER_WORDS):
                    said = message[message.find(": ", message.find("modelhost.")) + 2 :]
                    say(f"after {time.perf_counter() - t0:.1f} s the instance logged: {said}")
                    if switched := TIER_WORDS[0] in message:
                        say("invoking again: the same rows, now answered by the compiled form")
                    return switched
        time.sleep(0.5)
    say(f"no word from the compiled tier in {TIER_WAIT_S:.0f} s (is it off on the server?)")
    return False


def _tier_off() -> str | None:
    """Why the server the demo starts (with this process's settings) will not compile."""
    mode = Settings().compile_tree_models
    if mode == "off":
        return "compile_tree_models is off"
    return unavailable() if mode == "auto" else None


def _invoke_rows(runtime: Any, lines: list[str]) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Each row as its own invocation (timed), then all rows in one multi-row body."""
    rows = len(lines)
    served = np.empty(rows)
    latencies_ms = []
    for i, line in enumerate(lines):
        t0 = time.perf_counter()
        response = runtime.invoke_endpoint(
            EndpointName=ENDPOINT_NAME, ContentType="text/csv", Accept="text/csv", Body=line
        )
        body = response["Body"].read()
        latencies_ms.append((time.perf_counter() - t0) * 1000)
        values = parse_predictions(body, response.get("ContentType", "text/csv"))
        if values.shape != (1,):
            raise RuntimeError(f"row {i}: expected one probability, got {body[:200]!r}")
        served[i] = values[0]
    response = runtime.invoke_endpoint(
        EndpointName=ENDPOINT_NAME, ContentType="text/csv", Accept="text/csv", Body="\n".join(lines)
    )
    batch = parse_predictions(response["Body"].read(), response.get("ContentType", "text/csv"))
    if batch.shape != (rows,):
        raise RuntimeError(f"multi-row body: expected {rows} probabilities, got {batch}")
    return served, batch, latencies_ms


def _compare(
    states: list[str],
    served: np.ndarray,
    batch: np.ndarray,
    expected: np.ndarray,
    latencies_ms: list[float],
    say: Callable[[str], None],
) -> int:
    """Print served beside in-process probabilities; 1 when they differ beyond TOLERANCE."""
    say("")
    say(f"{'row':>4}  {'State':<5}  {'served':>10}  {'in-process':>10}  {'|diff|':>9}")
    for i, (got, want) in enumerate(zip(served, expected, strict=True)):
        say(f"{i:>4}  {states[i]:<5}  {got:>10.6f}  {want:>10.6f}  {abs(got - want):>9.2e}")
    max_single = float(np.max(np.abs(served - expected)))
    max_batch = float(np.max(np.abs(batch - expected)))
    say("")
    say(
        f"one-row invocations: median {float(np.median(latencies_ms)):.1f} ms "
        f"through boto3; multi-row body of {len(served)} rows: max |diff| {max_batch:.2e}"
    )
    worst = max(max_single, max_batch)
    if not worst <= TOLERANCE:
        say(f"MISMATCH: max |diff| {worst:.2e} exceeds {TOLERANCE:.0e}")
        return 1
    say(f"all served probabilities match in-process XGBoost (max |diff| {worst:.2e})")
    return 0
