"""Server-side input validation driven by botocore's own SageMaker service model.

boto3 checks only required members, types and minimum lengths, so the server enforces
patterns, maximum lengths, ranges and enums itself. We walk the operation's input shape
in the `sagemaker` service-2 model shipped with botocore and report every violation in
SageMaker's wording: `1 validation error detected: Value 'my_endpoint' at 'endpointName'
failed to satisfy constraint: Member must satisfy regular expression pattern: ^...`.

Paths are lower-camel member names joined with '.'; list items read
`productionVariants.1.member.initialInstanceCount` (1-based, as AWS writes them); map
values read `primaryContainer.environment.<key>`; a bad map key is reported at the map's
path, prefixed `Map key must satisfy constraint: `.

Unknown members are ignored on purpose: a client built on a newer botocore may send
members our model does not know yet, and refusing them would break code that works
against AWS. Cross-field rules (say, "one variant when shadowing") are not in the model
and are left to the callers.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

from modelhost.control.accelerators import check_accelerators
from modelhost.control.java_regex import python_pattern
from modelhost.errors import UnknownOperation, ValidationException

MAX_REPORTED = 10
"""At most this many violations are spelled out in one message (the count is exact)."""

_VALUE_TEXT_MAX = 256  # long values (a 101-entry map) are cut so the message stays readable
_REDACTED = "*** Sensitive Data Redacted ***"

# --- the model ------------------------------------------------------------------------


@functools.cache
def _model() -> dict[str, Any]:
    # Loading and parsing service-2.json takes ~0.25 s, so it happens once per process
    # and only when the first request needs it (importing this module stays cheap).
    from botocore.loaders import Loader

    model: dict[str, Any] = Loader().load_service_model("sagemaker", "service-2")
    return model


def _input_shape(operation: str, model: dict[str, Any] | None = None) -> dict[str, Any] | None:
    op = (model := model or _model())["operations"].get(operation)
    if op is None:
        raise UnknownOperation(f"Operation {operation} is not supported.")
    ref = op.get("input")
    return None if ref is None else model["shapes"][ref["shape"]]


def input_members(operation: str) -> set[str]:
    """The top-level input member names of `operation` (e.g. `{"EndpointName", ...}`)."""
    shape = _input_shape(operation)
    return set() if shape is None else set(shape.get("members", {}))


def untranslatable_patterns(operations: Iterable[str] | None = None) -> list[str]:
    """Patterns reachable from these operations' inputs (default: the whole model) that
    `python_pattern` cannot compile; values are then not checked against them."""
    shapes = _model()["shapes"]
    if operations is None:
        names = set(shapes)
    else:
        ops = [_model()["operations"][op] for op in operations]
        names, todo = set(), [op["input"]["shape"] for op in ops if "input" in op]
        while todo:
            name = todo.pop()
            if name not in names:
                names.add(name)
                shape = shapes[name]
                refs = list(shape.get("members", {}).values())
                refs += [shape[k] for k in ("member", "key", "value") if k in shape]
                todo += [r["shape"] for r in refs]
    patterns = {shapes[n]["pattern"] for n in names if "pattern" in shapes[n]}
    return sorted(p for p in patterns if python_pattern(p) is None)


# --- messages -------------------------------------------------------------------------


def _java_text(value: object) -> str:
    # Mirror how the Java service prints values: true/false, [a, b], {k=v}.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _violation_text(value: object, path: str, constraint: str, sensitive: bool = False) -> str:
    if value is None:
        shown = "null"
    else:
        text = _REDACTED if sensitive else _java_text(value)
        if len(text) > _VALUE_TEXT_MAX:
            text = text[: _VALUE_TEXT_MAX - 3] + "..."
        shown = f"'{text}'"
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def _summary(count: int, texts: list[str]) -> str:
    head = f"{count} validation error{'s' if count != 1 else ''} detected: "
    more = f"; ({count - len(texts)} more not shown)" if count > len(texts) else ""
    return head + "; ".join(texts) + more


def violation(value: object, path: str, constraint: str) -> ValidationException:
    """A one-violation ValidationException in SageMaker's wording, for checks outside the
    model (cross-field rules, listing parameters)."""
    return ValidationException(_summary(1, [_violation_text(value, path, constraint)]))


def parse_timestamp(value: object) -> float:
    """Epoch seconds from an epoch number, a numeric string, an ISO-8601 string or a
    datetime (naive means UTC). Raises ValidationException for anything else."""
    seconds, when = math.nan, value
    try:
        if isinstance(value, str):
            try:
                seconds = float(value)
            except ValueError:
                when = dt.datetime.fromisoformat(value.strip())
        if isinstance(when, dt.datetime):
            seconds = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
    except (ValueError, OverflowError):
        pass
    if math.isfinite(seconds):
        return seconds
    raise ValidationException(
        f"Value '{_java_text(value)}' is not a valid timestamp: "
        "expected epoch seconds or an ISO-8601 date-time"
    )


# --- the walk -------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_timestamp(value: object) -> bool:
    try:
        parse_timestamp(value)
    except ValidationException:
        return False
    return True


# Shape type -> (accepts the JSON value?, what the message says it must be).
_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {
    "string": (lambda v: isinstance(v, str), "a string"),
    "integer": (_is_int, "an integer"),
    "long": (_is_int, "an integer"),
    "float": (_is_number, "a finite number"),
    "double": (_is_number, "a finite number"),
    "boolean": (lambda v: isinstance(v, bool), "a boolean"),
    "timestamp": (_is_timestamp, "a timestamp (epoch seconds or ISO-8601)"),
    "blob": (lambda v: isinstance(v, str | bytes | bytearray), "a base64-encoded string"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "map": (lambda v: isinstance(v, dict), "a map"),  # keys are checked as strings below
    "structure": (lambda v: isinstance(v, dict), "a structure"),
}


# modelhost extends SageMaker: these members (artifacts, job input and output, async outputs,
# capture destinations) also take a local path or file:// URL; an Image may be a command
# line (`command:node server.js`); an async topic may be an http(s):// webhook.
_LOCAL_URL_MEMBERS: tuple[str, ...] = ("modelDataUrl", "s3Uri", "s3OutputPath")
_LOCAL_URL_MEMBERS += ("s3OutputLocation", "s3FailurePath", "destinationS3Uri")
_LOCAL_URL_MEMBERS += ("samplePayloadUrl",)  # recommender sample payloads
_LOCAL_URL_MEMBERS += ("dataCapturedDestinationS3Uri",)  # a transform job's capture


def _local_location(path: str, value: str) -> bool:
    member = path.rsplit(".", 1)[-1]
    if member == "image":
        return value.startswith("command:")
    if member in ("successTopic", "errorTopic"):
        return value.startswith(("http://", "https://"))
    return member in _LOCAL_URL_MEMBERS and (value.startswith("file://") or "://" not in value)


class _Walker:
    """Collects violations while walking one value down its shape."""

    def __init__(self, model: dict[str, Any] | None = None) -> None:
        self.count, self.texts, self.shapes = 0, list[str](), (model or _model())["shapes"]

    def add(self, value: object, path: str, constraint: str, shape: dict[str, Any]) -> None:
        self.count += 1
        if len(self.texts) < MAX_REPORTED:
            sensitive = bool(shape.get("sensitive"))
            self.texts.append(_violation_text(value, path, constraint, sensitive))

    def item(self, shape_name: str, value: object, path: str, owner: dict[str, Any]) -> None:
        if value is None:  # JSON null inside a list or map
            self.add(None, path, "Member must not be null", owner)
        else:
            self.check(shape_name, value, path)

    def check(self, shape_name: str, value: Any, path: str, prefix: str = "") -> None:
        shape = self.shapes[shape_name]
        kind = shape["type"]

        def add(constraint: str) -> None:
            self.add(value, path, prefix + constraint, shape)

        accepts, noun = _TYPES.get(kind, (lambda v: True, kind))
        if not accepts(value):
            add(f"Member must be {noun}")
        elif kind == "structure":
            self.structure(shape, value, path)
        elif kind == "list":
            self.lengths(shape, len(value), add)
            for idx, item in enumerate(value, 1):
                self.item(shape["member"]["shape"], item, f"{path}.{idx}.member", shape)
        elif kind == "map":
            self.lengths(shape, len(value), add)
            for key, item in value.items():
                self.check(shape["key"]["shape"], key, path, "Map key must satisfy constraint: ")
                self.item(shape["value"]["shape"], item, f"{path}.{key}", shape)
        elif kind == "string":
            self.lengths(shape, len(value), add)
            pattern = shape.get("pattern")
            compiled = python_pattern(pattern) if pattern else None
            if (
                pattern
                and compiled is not None
                and compiled.fullmatch(value) is None
                and not _local_location(path, value)
            ):
                shown = pattern if pattern.startswith("^") else "^" + pattern
                add(f"Member must satisfy regular expression pattern: {shown}")
            if "enum" in shape and value not in shape["enum"]:
                add(f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]")
        elif kind in ("integer", "long", "float", "double"):
            if "min" in shape and value < shape["min"]:
                add(f"Member must have value greater than or equal to {_num(shape['min'])}")
            if "max" in shape and value > shape["max"]:
                add(f"Member must have value less than or equal to {_num(shape['max'])}")

    @staticmethod
    def lengths(shape: dict[str, Any], size: int, add: Callable[[str], None]) -> None:
        if "min" in shape and size < shape["min"]:
            add(f"Member must have length greater than or equal to {shape['min']}")
        if "max" in shape and size > shape["max"]:
            add(f"Member must have length less than or equal to {shape['max']}")

    def structure(self, shape: dict[str, Any], value: dict[str, Any], path: str) -> None:
        required = set(shape.get("required", ()))
        present = 0
        for name, ref in shape.get("members", {}).items():
            camel = name[:1].lower() + name[1:]
            sub = f"{path}.{camel}" if path else camel
            item = value.get(name)
            if item is None:  # JSON null counts as absent, as in AWS
                if name in required:
                    self.add(None, sub, "Member must not be null", shape)
                continue
            present += 1
            self.check(ref["shape"], item, sub)
        if shape.get("union") and present != 1:
            self.add(value, path, "Member must have exactly one of its members set", shape)


def validate_input(operation: str, params: dict[str, Any], model: Any = None) -> None:
    """Check `params` against `operation`'s input shape in botocore's `model` (SageMaker's).

    Raises ValidationException naming every violation (the first MAX_REPORTED spelled
    out), UnknownOperation if the model has no such operation. Unknown members pass.
    """
    shape = _input_shape(operation, model)
    if not isinstance(params, dict):
        raise ValidationException("The request body must be a JSON object.")
    if shape is None:
        return
    walker = _Walker(model)
    walker.structure(shape, params, "")
    if walker.count:
        raise ValidationException(_summary(walker.count, walker.texts))
    if operation == "CreateEndpointConfig":
        check_accelerators(params)
