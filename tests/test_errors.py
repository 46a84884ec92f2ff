"""One error hierarchy: every error modelhost raises on purpose is defined in `errors/`."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from modelhost import errors
from modelhost.codecs import errors as codec_errors
from modelhost.frameworks import errors as framework_errors
from modelhost.gateway.errors import error_payload

SRC = Path(errors.__file__).parent.parent

# Exceptions defined outside errors.py, each with the reason it stays where it is. None of
# them is ever answered as-is: each is caught a layer up and becomes a FailureReason, a
# retry or an `errors.py` error. A new exception class must be added to errors.py, or here
# with its reason.
INTERNAL = {
    "gateway/protocols/cbor.py:ProtocolError": "a ValueError the CloudWatch API answers as "
    "InvalidParameterValue",
    "telemetry/log_filter.py:FilterPatternError": "a ValueError the Logs API answers as "
    "InvalidParameterException",
    "compile/jobs.py:CompilationFailed": "ends a compilation job; its text is the FailureReason",
    "compile/sources.py:CompileError": "becomes a compilation job's FailureReason",
    "jobs/records.py:SplitError": "a ValueError the runner turns into the job's FailureReason",
    "jobs/dataprocessing.py:RecordError": "becomes the job's FailureReason",
    "jobs/jsonpath.py:JSONPathError": "a ValueError that becomes a RecordError",
    "jobs/instances.py:JobFailed": "ends a transform job; its text is the FailureReason",
    "jobs/invoke.py:NoInstance": "ends a transform job; its text is the FailureReason",
    "jobs/invoke.py:InvocationFailed": "ends a transform job; its text is the FailureReason",
    "jobs/runner.py:_Rejected": "private control flow of the job runner",
    "control/status.py:_Skip": "private control flow: an endpoint update with nothing to write",
    "loadtest/recommender.py:BenchmarkFailed": "becomes a recommendation step's FailureReason",
    "store/metadata.py:AlreadyExists": "the store's conflict signal; the service raises "
    "ResourceInUse",
    "fleet/http1_parse.py:InstanceUnreachable": "a ConnectionError the data plane retries",
    "fleet/http1_parse.py:InstanceDisconnected": "a ConnectionError the data plane maps",
    "fleet/http1_parse.py:InstanceStreamFailed": "the data plane maps it to ModelStreamError",
    "fleet/http1_stream.py:StreamTimeExceeded": "the data plane maps it to ModelStreamError",
    "container/stream_frames.py:FrameError": "a malformed answer: the stream reader maps it",
    "fleet/launch.py:LaunchError": "becomes the endpoint's FailureReason",
    "fleet/variant.py:StartupError": "becomes the endpoint's FailureReason",
    "fleet/byoc.py:ByocError": "becomes a LaunchError",
    "container/config.py:ConfigError": "inside the instance: ends the process at start",
    "container/model_source.py:LoadRefused": "inside the instance: answered with its own status",
    "container/http_connection.py:_Refused": "private control flow of the instance's HTTP "
    "parser: answered 413/431",
}


def _exception_classes() -> dict[str, list[str]]:
    """`path:Class` -> base names, for every class outside errors.py that looks like an error."""
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("errors/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
                if any(b.endswith(("Error", "Exception")) or b in _OURS for b in bases):
                    found[f"{rel}:{node.name}"] = bases
    return found


_OURS = {
    name
    for name, value in vars(errors).items()
    if isinstance(value, type) and issubclass(value, errors.ModelhostError)
}


def test_no_error_class_outside_errors_py_extends_the_hierarchy() -> None:
    subclasses = {k: b for k, b in _exception_classes().items() if set(b) & _OURS}
    assert subclasses == {}, "define these in errors.py; the gateway only maps them"


def test_every_other_exception_is_a_documented_internal_one() -> None:
    assert sorted(_exception_classes()) == sorted(INTERNAL)


@pytest.mark.parametrize(
    ("cls", "status_code"),
    [
        (errors.DecodeError, 415),
        (errors.UnsupportedContentType, 415),
        (errors.UnsupportedAccept, 406),
        (errors.EncodeError, 406),
        (errors.InferenceError, 500),
        (errors.InvalidInput, 400),
        (errors.PredictionFailed, 400),
        (errors.ModelLoadError, 500),
    ],
)
def test_instance_errors_are_modelhost_errors_with_the_toolkits_status_code(
    cls: type[errors.InstanceError], status_code: int
) -> None:
    assert issubclass(cls, errors.InstanceError) and issubclass(cls, errors.ModelhostError)
    assert cls.status_code == status_code
    # Through the gateway, a container's error answer is a ModelError (424).
    assert (cls.code, cls.status) == ("ModelError", 424)


def test_codec_and_framework_import_paths_name_the_same_classes() -> None:
    # Script-mode code imports these paths; they are the hierarchy's classes, not copies.
    for module in (codec_errors, framework_errors):
        for name in module.__all__:
            assert getattr(module, name) is getattr(errors, name)


def test_instance_error_keeps_message_and_text() -> None:
    exc = errors.UnsupportedAccept("text/html", ["application/json", "text/csv"])
    assert exc.message == str(exc)
    assert "'text/html'" in exc.message and "application/json, text/csv" in exc.message


def test_the_gateway_maps_an_instance_error_as_the_containers_answer() -> None:
    status, headers, body = error_payload(errors.DecodeError("bad csv"), "rid", "application/json")
    assert status == 424 and (b"x-amzn-errortype", b"ModelError") in headers
    assert json.loads(body) == {
        "__type": "ModelError",
        "Message": "bad csv",
        "OriginalStatusCode": 415,
        "OriginalMessage": "bad csv",
    }


def test_moved_gateway_errors_keep_their_codes() -> None:
    assert (errors.SerializationException.code, errors.SerializationException.status) == (
        "SerializationException",
        400,
    )
    assert (errors.NotFound.code, errors.NotFound.status) == ("ResourceNotFound", 404)
    assert issubclass(errors.PredictionNotFound, errors.NotFound)
    assert (errors.MethodNotAllowed.code, errors.MethodNotAllowed.status) == (
        "MethodNotAllowed",
        405,
    )
    assert (errors.UnsafeConfiguration.status, errors.JsonTooDeep.code) == (
        500,
        "ValidationException",
    )
    assert issubclass(errors.EndpointNotFound, errors.ValidationException)
