"""The Locust user of `modelhost loadtest`: signed boto3 `InvokeEndpoint` calls.

Imported only inside a Locust process (it imports locust, which monkey-patches the process
for gevent): the load-test process `locust_main` and, in distributed mode, each worker
started as `locust -f <this file> --worker --modelhost-spec SPEC`. Every request sends one
payload row picked at random; a failure is reported to Locust as its error code
(`ModelError`, `ThrottlingException`, `ReadTimeoutError`…), so the final table counts
failures by code.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import locust.runners
from locust import User, constant, events, task

from modelhost.loadtest.payloads import Payload, load_payloads
from modelhost.loadtest.spec import LoadSpec, peak_users


class Target:
    """The endpoint, the payloads and one boto3 client shared by the process's users."""

    def __init__(self, spec: LoadSpec) -> None:
        import boto3
        from botocore.config import Config

        self.spec = spec
        self.payloads: list[Payload] = load_payloads(
            spec.payload_path,
            content_type=spec.content_type,
            target_model_column=spec.target_model_column,
            target_model_template=spec.target_model_template,
        )
        self.random = random.Random(spec.seed)
        kwargs: dict[str, Any] = {"region_name": spec.region}
        if spec.endpoint_url:
            kwargs["endpoint_url"] = spec.endpoint_url
        if spec.ca_bundle:
            kwargs["verify"] = spec.ca_bundle
        if spec.access_key_id and spec.secret_access_key:
            kwargs["aws_access_key_id"] = spec.access_key_id
            kwargs["aws_secret_access_key"] = spec.secret_access_key
        # No retries: a load test counts every failure instead of hiding it.
        config = Config(
            retries={"total_max_attempts": 1},
            max_pool_connections=peak_users(spec.phases) + 4,
            read_timeout=spec.read_timeout_s,
        )
        self.client = boto3.client("sagemaker-runtime", config=config, **kwargs)

    def request_args(self) -> tuple[dict[str, Any], Payload]:
        payload = self.random.choice(self.payloads)
        args: dict[str, Any] = {
            "EndpointName": self.spec.endpoint,
            "Body": payload.body,
            "ContentType": payload.content_type,
        }
        if self.spec.accept:
            args["Accept"] = self.spec.accept
        if payload.target_model:
            args["TargetModel"] = payload.target_model
        if self.spec.target_variant:
            args["TargetVariant"] = self.spec.target_variant
        return args, payload


_TARGET: dict[str, Target] = {}

# Workers report to the master every second (Locust's default is 3 s), so the master's
# timeline has one point per second in distributed mode too.
locust.runners.WORKER_REPORT_INTERVAL = 1.0


def configure(spec: LoadSpec) -> None:
    """Set the target every SageMakerUser of this process invokes."""
    _TARGET["current"] = Target(spec)


def error_code(exc: Exception) -> str:
    """A failure's name in the results: the AWS error code, else the exception's class."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


class SageMakerUser(User):
    """One user: invokes the endpoint with a random payload row, back to back."""

    wait_time = constant(0)

    @task
    def invoke(self) -> None:
        target = _TARGET["current"]
        args, payload = target.request_args()
        name = payload.target_model or target.spec.endpoint
        started = time.perf_counter()
        length = 0
        failure: str | None = None
        try:
            response = target.client.invoke_endpoint(**args)
            length = len(response["Body"].read())
        except Exception as exc:
            failure = error_code(exc)
        self.environment.events.request.fire(
            request_type="InvokeEndpoint",
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=failure,
            context={},
        )


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument("--modelhost-spec", default="", help="modelhost load-test spec (JSON)")


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    # Workers started by the `locust` command read the spec named on their command line.
    options = getattr(environment, "parsed_options", None)
    path = getattr(options, "modelhost_spec", "") if options is not None else ""
    if path:
        configure(LoadSpec.from_json(Path(path).read_text()))
