"""Replay before deploy (the runner): a temporary endpoint of the candidate, every captured
input sent to it through the runtime, the report (monitor/replay.py), the endpoint deleted.

It talks to the server through boto3 clients (`sagemaker`, `sagemaker-runtime`), so the CLI
and the native API (signed with the home's admin key) run the same code, and the temporary
endpoint is an endpoint like any other: its config is `--endpoint-config` (a
CreateEndpointConfig request whose variants' ModelName is replaced by the candidate) or one
variant of one `ml.m5.large` instance. The endpoint, its config (and nothing the user
made) are deleted in all cases, also when deploying or replaying fails.

Both carry the tag `modelhost:replay-owner` naming who replays (the gateway's base URL, or
`cli`): a gateway killed mid-replay cannot delete them, so on its next start it removes
the ones tagged with its own URL (`remove_left_behind`); other gateways' replays, and
endpoints a user named `replay-...`, are left alone.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from modelhost.errors import ModelhostError, ValidationException
from modelhost.monitor.replay import (
    Answer,
    BadRecord,
    Captured,
    bad_records,
    compare,
    parse_captures,
)
from modelhost.settings import Settings
from modelhost.store.locations import confine
from modelhost.store.metadata import Kind, MetadataStore

log = logging.getLogger("modelhost.monitor")

PREFIX = "replay-"
OWNER_TAG = "modelhost:replay-owner"
CLI_OWNER = "cli"
# boto3 clients (sagemaker, sagemaker-runtime) signed for this server.
Clients = Callable[[], tuple[Any, Any]]
_WAIT_DELAY_S = 0.5


def temporary_name() -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:12]}"


def owner_tags(owner: str) -> list[dict[str, str]]:
    return [{"Key": OWNER_TAG, "Value": owner}]


def left_behind(resources: Iterable[tuple[str, list[dict[str, str]]]], owner: str) -> list[str]:
    """Names of the (name, tags) pairs that are temporary replay resources of `owner`."""
    return [
        name
        for name, tags in resources
        if name.startswith(PREFIX)
        and any(t.get("Key") == OWNER_TAG and t.get("Value") == owner for t in tags)
    ]


def remove_left_behind(
    store: MetadataStore, operations: dict[str, Callable[[dict[str, Any]], Any]], owner: str
) -> list[str]:
    """Delete the temporary endpoints and configs a replay of `owner` left (the process
    died mid-replay); the names of the endpoints deleted."""
    endpoints = left_behind(((r.name, r.tags) for r in store.list(Kind.ENDPOINT)), owner)
    for name in endpoints:
        with contextlib.suppress(ModelhostError):
            operations["DeleteEndpoint"]({"EndpointName": name})
    configs = left_behind(((r.name, r.tags) for r in store.list(Kind.ENDPOINT_CONFIG)), owner)
    for name in configs:
        with contextlib.suppress(ModelhostError):
            operations["DeleteEndpointConfig"]({"EndpointConfigName": name})
    if endpoints or configs:
        log.warning(
            "removed what an interrupted replay left: endpoints %s, endpoint configs %s",
            endpoints,
            configs,
        )
    return endpoints


def endpoint_config(
    name: str, model: str, template: dict[str, Any] | None, instance_type: str = "ml.m5.large"
) -> dict[str, Any]:
    """The CreateEndpointConfig request of the temporary endpoint."""
    if template is None:
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": model,
            "InitialInstanceCount": 1,
            "InstanceType": instance_type,
        }
        return {"EndpointConfigName": name, "ProductionVariants": [variant]}
    out = copy.deepcopy(template)
    out["EndpointConfigName"] = name
    # Replaying must not capture the replay (nor mirror it to shadows).
    for key in ("DataCaptureConfig", "ShadowProductionVariants"):
        out.pop(key, None)
    for variant in out.get("ProductionVariants") or []:
        variant["ModelName"] = model
    return out


def invoke_all(
    rt: Any,
    endpoint: str,
    records: Sequence[Captured],
    clock: Callable[[], float] = time.perf_counter,
) -> list[Answer]:
    """Each captured input, in order, one at a time (latency is the candidate's alone)."""
    from botocore.exceptions import BotoCoreError, ClientError

    answers = []
    for rec in records:
        started = clock()
        try:
            resp = rt.invoke_endpoint(
                EndpointName=endpoint, ContentType=rec.content_type, Body=rec.body
            )
            body = resp["Body"].read()
            answers.append(Answer(200, (clock() - started) * 1e6, body))
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            err = exc.response.get("Error", {})
            message = f"{err.get('Code')}: {err.get('Message')}"
            answers.append(Answer(status or 500, (clock() - started) * 1e6, b"", message))
        except BotoCoreError as exc:
            answers.append(Answer(None, (clock() - started) * 1e6, b"", str(exc)))
    return answers


def delete_temporary(sm: Any, name: str) -> None:
    from botocore.exceptions import ClientError

    for call, key in (
        (sm.delete_endpoint, "EndpointName"),
        (sm.delete_endpoint_config, "EndpointConfigName"),
    ):
        with contextlib.suppress(ClientError):
            call(**{key: name})


def replay(
    sm: Any,
    rt: Any,
    model: str,
    records: Sequence[Captured],
    bad: Sequence[BadRecord] = (),
    template: dict[str, Any] | None = None,
    tolerance: float = 1e-6,
    baseline: Sequence[float] | None = None,
    wait_attempts: int = 600,
    owner: str = CLI_OWNER,
) -> dict[str, Any]:
    """Deploy `model` on a temporary endpoint, replay `records`, delete it, report."""
    name = temporary_name()
    sm.describe_model(ModelName=model)  # a missing candidate fails before anything is made
    tags = owner_tags(owner)
    request = endpoint_config(name, model, template)
    request["Tags"] = [*(request.get("Tags") or []), *tags]
    try:
        sm.create_endpoint_config(**request)
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name,
            WaiterConfig={"Delay": _WAIT_DELAY_S, "MaxAttempts": wait_attempts},
        )
        answers = invoke_all(rt, name, records)
    finally:
        delete_temporary(sm, name)
    return {
        "ModelName": model,
        "TemporaryEndpointName": name,
        **compare(records, answers, tolerance, baseline),
        "BadRecords": bad_records(bad),
    }


def read_capture(location: str, s3_endpoint_url: str | None) -> list[tuple[str, str]]:
    """(source, text) of every `.jsonl` capture file at `location` (a file, a folder or an
    `s3://` prefix, read recursively, as a monitoring schedule reads captures), by name."""
    import tempfile
    from pathlib import Path

    from modelhost.jobs.objects import ObjectIO

    io = ObjectIO(s3_endpoint_url)
    objects = [o for o in io.list_inputs("S3Prefix", location) if o.url.endswith(".jsonl")]
    with tempfile.TemporaryDirectory(prefix="modelhost-replay-") as scratch:
        return [
            (o.url, io.read(o, False, Path(scratch)).decode("utf-8", "replace"))
            for o in sorted(objects, key=lambda o: o.url)
        ]


def _field(body: dict[str, Any], name: str, kind: Any, required: bool = False) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        what = {str: "a string", dict: "an object", list: "a list"}.get(kind, "a number")
        raise ValidationException(f"{name} is required and must be {what}.")
    return value


def replay_request(
    body: dict[str, Any], clients: Clients, s3_endpoint_url: str | None, owner: str = CLI_OWNER
) -> dict[str, Any]:
    """`POST /api/replay`: {"CaptureUri", "ModelName", "EndpointConfig"?, "Tolerance"?,
    "Baseline"? (numbers)} -> the replay report."""
    location = _field(body, "CaptureUri", str, required=True)
    model = _field(body, "ModelName", str, required=True)
    template = _field(body, "EndpointConfig", dict)
    given = _field(body, "Tolerance", float | int)
    tolerance = 1e-6 if given is None else float(given)
    if not tolerance >= 0:
        raise ValidationException("Tolerance must be a number >= 0.")
    baseline = _field(body, "Baseline", list)
    if baseline is not None and not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in baseline
    ):
        raise ValidationException("Baseline must be a list of numbers.")
    try:
        files = read_capture(location, s3_endpoint_url)
    except (ModelhostError, OSError) as exc:
        raise ValidationException(f"CaptureUri {location} cannot be read: {exc}") from exc
    records, bad = parse_captures(files)
    if not records:
        raise ValidationException(f"CaptureUri {location} holds no capture records.")
    sm, rt = clients()
    return replay(sm, rt, model, records, bad, template, tolerance, baseline, owner=owner)


def server_replayer(
    settings: Settings, connection: Callable[[], tuple[str, str, str]]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The gateway's `POST /api/replay`: replays through the gateway's own API, with the
    `(url, access key id, secret)` that `connection` gives (the home's admin key)."""

    def clients() -> tuple[Any, Any]:
        import boto3
        from botocore.config import Config

        url, key_id, secret = connection()
        # No retries: a failing answer is what the report counts, once.
        config = Config(
            retries={"total_max_attempts": 1}, read_timeout=settings.invocation_timeout_s + 10
        )
        verify = str(settings.tls_cert_file) if settings.tls_cert_file else None
        sm, rt = (
            boto3.client(
                service,
                endpoint_url=url,
                region_name=settings.region,
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                verify=verify,
                config=config,
            )
            for service in ("sagemaker", "sagemaker-runtime")
        )
        return sm, rt

    def replayer(body: dict[str, Any]) -> dict[str, Any]:
        # A client names the location the server reads: the data prefixes apply, as to
        # every location (never the server's home).
        location = _field(body, "CaptureUri", str, required=True)
        confine(location, settings.allowed_data_prefixes, "CaptureUri", [settings.home])
        return replay_request(body, clients, settings.s3_endpoint_url, owner=settings.base_url)

    return replayer
