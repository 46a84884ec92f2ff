"""OpenAPI 3.0 description of modelhost's native HTTP API (`/api/...`), served at
`GET /api/openapi.json` and fuzzed with schemathesis in CI. Every operation is signed with
SigV4 (service `sagemaker`), like the SageMaker APIs."""

from __future__ import annotations

from typing import Any

from modelhost import __version__

_NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,255}$"}
_ENDPOINT = {"type": "string", "pattern": "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"}
_KEY_ID = {"type": "string", "pattern": "^[A-Z0-9]{1,40}$"}

_ERROR = {
    "type": "object",
    "required": ["__type", "Message"],
    "properties": {"__type": {"type": "string"}, "Message": {"type": "string"}},
}
_ALARM = {
    "type": "object",
    "required": ["AlarmName", "StateValue", "MetricName"],
    "properties": {
        "AlarmName": {"type": "string"},
        "StateValue": {"type": "string", "enum": ["OK", "ALARM", "INSUFFICIENT_DATA"]},
        "MetricName": {"type": "string"},
    },
}
_ALARM_INPUT = {
    "type": "object",
    "required": ["MetricName", "Threshold"],
    "properties": {
        "MetricName": {
            "type": "string",
            "enum": [
                "Invocations",
                "Invocation4XXErrors",
                "Invocation5XXErrors",
                "ModelLatency",
                "OverheadLatency",
            ],
        },
        "Statistic": {"type": "string"},
        "Period": {"type": "integer"},
        "EvaluationPeriods": {"type": "integer"},
        "DatapointsToAlarm": {"type": "integer"},
        "Threshold": {"type": "number"},
        "ComparisonOperator": {"type": "string"},
        "TreatMissingData": {"type": "string"},
        "Dimensions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["Name", "Value"],
                "properties": {"Name": {"type": "string"}, "Value": {"type": "string"}},
            },
        },
    },
}
_KEY = {
    "type": "object",
    "required": ["AccessKeyId", "Role", "Endpoints", "Status", "CreationTime"],
    "properties": {
        "AccessKeyId": {"type": "string"},
        "Role": {"type": "string", "enum": ["admin", "deployer", "invoker"]},
        "Endpoints": {"type": "string"},
        "Status": {"type": "string", "enum": ["Active", "Revoked"]},
        "CreationTime": {"type": "number"},
        "Bootstrap": {"type": "boolean"},
    },
}


_NULLABLE_NUMBER = {"type": "number", "nullable": True}
_REPLAY_INPUT = {
    "type": "object",
    "required": ["CaptureUri", "ModelName"],
    "properties": {
        "CaptureUri": {
            "type": "string",
            "description": "data capture JSON Lines: a .jsonl file, a folder or an s3:// prefix",
        },
        "ModelName": {**_NAME, "description": "the candidate model (CreateModel)"},
        "EndpointConfig": {
            "type": "object",
            "description": "a CreateEndpointConfig request; every variant's ModelName "
            "becomes the candidate; DataCaptureConfig and shadow variants are dropped",
        },
        "Tolerance": {"type": "number", "minimum": 0, "default": 1e-6},
        "Baseline": {"type": "array", "items": {"type": "number"}},
    },
}
_DRIFT = {
    "type": "object",
    "nullable": True,
    "properties": {
        "ks": {"type": "number"},
        "ks_pvalue": {"type": "number"},
        "psi": {"type": "number"},
    },
}
_REPLAY_REPORT = {
    "type": "object",
    "required": [
        "ModelName",
        "TemporaryEndpointName",
        "Records",
        "ExactAgreement",
        "NumericAgreement",
        "Candidate",
        "OutputDrift",
        "BadRecords",
    ],
    "properties": {
        "ModelName": {"type": "string"},
        "TemporaryEndpointName": {"type": "string"},
        "Records": {"type": "integer"},
        "ExactAgreement": _NULLABLE_NUMBER,
        "NumericAgreement": _NULLABLE_NUMBER,
        "NumericCompared": {"type": "integer"},
        "NumericUnparsed": {"type": "integer"},
        "Tolerance": {"type": "number"},
        "NumericDifference": {
            "type": "object",
            "properties": {"MaxAbs": _NULLABLE_NUMBER, "MeanAbs": _NULLABLE_NUMBER},
        },
        "Candidate": {
            "type": "object",
            "properties": {
                "LatencyP50Us": _NULLABLE_NUMBER,
                "LatencyP99Us": _NULLABLE_NUMBER,
                "ErrorRate": _NULLABLE_NUMBER,
                "Errors": {"type": "array", "items": {"type": "object"}},
            },
        },
        "OutputDrift": {
            "type": "object",
            "properties": {"Captured": _DRIFT, "Baseline": _DRIFT},
        },
        "BadRecords": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "Source": {"type": "string"},
                    "Line": {"type": "integer"},
                    "Reason": {"type": "string"},
                },
            },
        },
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", **_json(ok)}}
    for status in (400, 403, 413, 431, *errors):
        out[str(status)] = {"description": "Error", **_json(_ERROR)}
    return out


def _param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def native_openapi() -> dict[str, Any]:
    """The OpenAPI document (a plain dict)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "modelhost native API", "version": __version__},
        "components": {
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS Signature Version 4, service 'sagemaker'.",
                }
            }
        },
        "security": [{"sigv4": []}],
        "paths": {**_alarm_paths(), **_endpoint_paths(), **_key_paths(), **_replay_paths()},
    }


def _alarm_paths() -> dict[str, Any]:
    return {
        "/api/alarms": {
            "get": {
                "operationId": "ListAlarms",
                "responses": _responses(
                    {
                        "type": "object",
                        "required": ["MetricAlarms"],
                        "properties": {"MetricAlarms": {"type": "array", "items": _ALARM}},
                    }
                ),
            }
        },
        "/api/alarms/{name}": {
            "parameters": [_param("name", _NAME)],
            "get": {"operationId": "DescribeAlarm", "responses": _responses(_ALARM, 404)},
            "put": {
                "operationId": "PutAlarm",
                "requestBody": {"required": True, **_json(_ALARM_INPUT)},
                "responses": _responses(_ALARM),
            },
            "delete": {
                "operationId": "DeleteAlarm",
                "responses": _responses({"type": "object"}, 404),
            },
        },
    }


def _endpoint_paths() -> dict[str, Any]:
    endpoint = [_param("name", _ENDPOINT)]
    return {
        "/api/endpoints/{name}/events": {
            "parameters": endpoint,
            "get": {
                "operationId": "DescribeEndpointEvents",
                "responses": _responses(
                    {
                        "type": "object",
                        "required": ["EndpointName", "Events"],
                        "properties": {
                            "EndpointName": {"type": "string"},
                            "Events": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                    404,
                ),
            },
        },
        "/api/endpoints/{name}/shadow-report": {
            "parameters": endpoint,
            "get": {
                "operationId": "GetShadowReport",
                "parameters": [
                    {
                        "name": "tolerance",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 0},
                    }
                ],
                "responses": _responses({"type": "object"}, 404),
            },
        },
        "/api/endpoints/{name}/promote-shadow": {
            "parameters": endpoint,
            "post": {
                "operationId": "PromoteShadow",
                "responses": _responses({"type": "object"}, 404),
            },
        },
    }


def _key_paths() -> dict[str, Any]:
    return {
        "/api/keys": {
            "get": {
                "operationId": "ListAccessKeys",
                "responses": _responses(
                    {
                        "type": "object",
                        "required": ["AccessKeys"],
                        "properties": {"AccessKeys": {"type": "array", "items": _KEY}},
                    }
                ),
            },
            "post": {
                "operationId": "CreateAccessKey",
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["Role"],
                            "properties": {
                                "Role": {
                                    "type": "string",
                                    "enum": ["admin", "deployer", "invoker"],
                                },
                                "Endpoints": {"type": "string"},
                            },
                        }
                    ),
                },
                "responses": _responses(
                    {
                        "type": "object",
                        "required": ["AccessKeyId", "SecretAccessKey", "Role", "Endpoints"],
                        "properties": {
                            "AccessKeyId": {"type": "string"},
                            "SecretAccessKey": {"type": "string"},
                            "Role": {"type": "string"},
                            "Endpoints": {"type": "string"},
                        },
                    }
                ),
            },
        },
        "/api/keys/{name}": {
            "parameters": [_param("name", _KEY_ID)],
            "delete": {"operationId": "RevokeAccessKey", "responses": _responses(_KEY, 404)},
        },
    }


def _replay_paths() -> dict[str, Any]:
    return {
        "/api/replay": {
            "post": {
                "operationId": "ReplayCapture",
                "description": "Replay captured traffic against a candidate model on a "
                "temporary endpoint (replay-<12 hex>, always deleted) and answer with the "
                "comparison report once done (docs/monitor.md#replay-before-deploy).",
                "requestBody": {"required": True, **_json(_REPLAY_INPUT)},
                "responses": _responses(_REPLAY_REPORT, 404),
            }
        }
    }
