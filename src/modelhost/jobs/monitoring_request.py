"""A monitoring job definition, inline or a data-quality job definition, and the
processing job request one scheduled run becomes (pure: no I/O).

Both shapes SageMaker accepts reduce to a `Definition`: the analyzer image and its
environment, the endpoint whose captures are read, the baseline statistics and
constraints, and the output location. A run's processing job reads the endpoint's
captures (`{DestinationS3Uri}/{endpoint}`) and writes under SageMaker's layout
`{S3Uri}/{endpoint}/{schedule}/yyyy/mm/dd/hh/`.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from modelhost.errors import ValidationException
from modelhost.jobs.explainability import ANALYSIS_TYPE, CLARIFY_IMAGE, CONFIG_PATH
from modelhost.jobs.processing import ANALYZER_IMAGE
from modelhost.store.outputs import join

ENDPOINT_PATH = "/opt/ml/processing/input/endpoint"
CONSTRAINTS_PATH = "/opt/ml/processing/baseline/constraints/constraints.json"
STATISTICS_PATH = "/opt/ml/processing/baseline/stats/statistics.json"
DEFAULT_OUTPUT_PATH = "/opt/ml/processing/resultdata"
GROUND_TRUTH_PATH = "/opt/ml/processing/groundtruth"
_BATCH_UNSUPPORTED = (
    "FeaturesAttribute",
    "InferenceAttribute",
    "ProbabilityAttribute",
    "ProbabilityThresholdAttribute",
    "StartTimeOffset",
    "EndTimeOffset",
    "ExcludeFeaturesAttribute",
)
_ATTRIBUTES = (
    ("InferenceAttribute", "inference_attribute"),
    ("ProbabilityAttribute", "probability_attribute"),
    ("ProbabilityThresholdAttribute", "probability_threshold_attribute"),
)


@dataclass(frozen=True)
class Definition:
    """What one run of a data-quality schedule needs (see the module docstring)."""

    image: str
    endpoint: str
    constraints_uri: str
    statistics_uri: str
    output_uri: str
    output_path: str
    environment: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    role_arn: str = ""
    stopping: dict[str, Any] = field(default_factory=dict)
    # Model quality: the problem type, the ground truth prefix and the output attributes.
    problem_type: str = ""
    ground_truth_uri: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    # Model explainability: the analysis configuration (headers, label_headers, shap).
    config_uri: str = ""
    # A batch transform job's data capture (BatchTransformInput) instead of an endpoint's.
    batch_capture_uri: str = ""
    batch_format: dict[str, Any] = field(default_factory=dict)


def _baseline(
    config: dict[str, Any] | None, member: str, needs_statistics: bool = True
) -> tuple[str, str]:
    config = config or {}
    constraints = (config.get("ConstraintsResource") or {}).get("S3Uri")
    stats = (config.get("StatisticsResource") or {}).get("S3Uri") or ""
    if not constraints or (needs_statistics and not stats):
        raise ValidationException(
            f"{member}: ConstraintsResource and StatisticsResource are required (the "
            "constraints.json and statistics.json of a baseline, e.g. from suggest_baseline)."
        )
    return constraints, stats


def _input(item: dict[str, Any] | None, member: str, batch_allowed: bool = True) -> dict[str, Any]:
    """The Definition members of a job input: EndpointInput's endpoint, or
    BatchTransformInput's captured destination and dataset format."""
    item = item or {}
    endpoint = (item.get("EndpointInput") or {}).get("EndpointName")
    if endpoint:
        return {"endpoint": str(endpoint)}
    batch = item.get("BatchTransformInput") or {}
    if not batch.get("DataCapturedDestinationS3Uri"):
        raise ValidationException(
            f"{member}: an EndpointInput or a BatchTransformInput is required."
        )
    if not batch_allowed:
        raise ValidationException(
            f"{member}.BatchTransformInput: this modelhost version monitors the data quality "
            "of batch transform captures only; use an EndpointInput."
        )
    unsupported = [k for k in _BATCH_UNSUPPORTED if batch.get(k) is not None]
    if unsupported:
        # Accepted and ignored would be worse than refused.
        raise ValidationException(
            f"{member}.BatchTransformInput: {', '.join(unsupported)} not supported by this "
            "modelhost version (the window is the schedule's; every column is a feature)."
        )
    return {
        "endpoint": "",
        "batch_capture_uri": str(batch["DataCapturedDestinationS3Uri"]),
        "batch_format": batch_format(batch.get("DatasetFormat"), f"{member}.BatchTransformInput"),
    }


def batch_format(given: dict[str, Any] | None, member: str) -> dict[str, Any]:
    """MonitoringDatasetFormat as the analyzer's dataset_format."""
    given = given or {}
    if given.get("Csv") is not None:
        return {"csv": {"header": bool(given["Csv"].get("Header", False))}}
    if given.get("Json") is not None:
        return {"json": {"lines": bool(given["Json"].get("Line", False))}}
    raise ValidationException(
        f"{member}.DatasetFormat: Csv or Json is required (Parquet is not supported by this "
        "modelhost version)."
    )


def _output(config: dict[str, Any], member: str) -> tuple[str, str]:
    outputs = config.get("MonitoringOutputs") or []
    if len(outputs) != 1:
        raise ValidationException(f"{member}.MonitoringOutputs: exactly one output is required.")
    s3 = outputs[0]["S3Output"]
    return s3["S3Uri"], s3.get("LocalPath") or DEFAULT_OUTPUT_PATH


def _check_image(image: str, member: str) -> None:
    if ANALYZER_IMAGE not in image.rsplit("/", 1)[-1]:
        raise ValidationException(
            f"{member}.ImageUri {image}: this modelhost version monitors data quality with "
            f"the model monitor analyzer image ({ANALYZER_IMAGE}) only."
        )


def _definition(
    job: dict[str, Any],
    app: dict[str, Any],
    source: dict[str, Any],
    baseline: tuple[str, str],
    output: tuple[dict[str, Any], str],
    **extra: Any,
) -> Definition:
    """The members every job definition shape has, from `job` (a definition request) and
    its `app` specification; `source` is `_input`'s, `output` the output config and its
    member name."""
    output_uri, output_path = _output(*output)
    return Definition(
        image=app["ImageUri"],
        **source,
        constraints_uri=baseline[0],
        statistics_uri=baseline[1],
        output_uri=output_uri,
        output_path=output_path,
        environment=dict(app.get("Environment") or {}),
        resources=dict(job.get("JobResources") or {}),
        role_arn=job.get("RoleArn", ""),
        stopping=dict(job.get("StoppingCondition") or {}),
        **extra,
    )


def from_inline(job: dict[str, Any]) -> Definition:
    """MonitoringScheduleConfig.MonitoringJobDefinition."""
    member = "MonitoringScheduleConfig.MonitoringJobDefinition"
    app = job["MonitoringAppSpecification"]
    _check_image(app["ImageUri"], f"{member}.MonitoringAppSpecification")
    inputs = job.get("MonitoringInputs") or []
    if len(inputs) != 1:
        raise ValidationException(f"{member}.MonitoringInputs: exactly one input is required.")
    # The inline shape names its environment and resources differently.
    renamed = {**job, "JobResources": job.get("MonitoringResources")}
    return _definition(
        renamed,
        {**app, "Environment": job.get("Environment")},
        _input(inputs[0], f"{member}.MonitoringInputs"),
        _baseline(job.get("BaselineConfig"), f"{member}.BaselineConfig"),
        (job["MonitoringOutputConfig"], member),
    )


def from_data_quality(job: dict[str, Any]) -> Definition:
    """A CreateDataQualityJobDefinition request."""
    app = job["DataQualityAppSpecification"]
    _check_image(app["ImageUri"], "DataQualityAppSpecification")
    return _definition(
        job,
        app,
        _input(job.get("DataQualityJobInput"), "DataQualityJobInput"),
        _baseline(job.get("DataQualityBaselineConfig"), "DataQualityBaselineConfig"),
        (job["DataQualityJobOutputConfig"], "DataQualityJobOutputConfig"),
    )


def from_model_quality(job: dict[str, Any]) -> Definition:
    """A CreateModelQualityJobDefinition request."""
    app = job["ModelQualityAppSpecification"]
    _check_image(app["ImageUri"], "ModelQualityAppSpecification")
    inputs = job.get("ModelQualityJobInput") or {}
    endpoint_input = inputs.get("EndpointInput") or {}
    truth = (inputs.get("GroundTruthS3Input") or {}).get("S3Uri")
    if not truth:
        raise ValidationException("ModelQualityJobInput.GroundTruthS3Input.S3Uri is required.")
    constraints, _ = _baseline(
        job.get("ModelQualityBaselineConfig"), "ModelQualityBaselineConfig", False
    )
    return _definition(
        job,
        app,
        _input(inputs, "ModelQualityJobInput", batch_allowed=False),
        (constraints, ""),
        (job["ModelQualityJobOutputConfig"], "ModelQualityJobOutputConfig"),
        problem_type=app.get("ProblemType", ""),
        ground_truth_uri=truth,
        attributes={env: str(endpoint_input[k]) for k, env in _ATTRIBUTES if endpoint_input.get(k)},
    )


def from_model_explainability(job: dict[str, Any]) -> Definition:
    """A CreateModelExplainabilityJobDefinition request (feature-attribution drift)."""
    app = job["ModelExplainabilityAppSpecification"]
    if not any(i in app["ImageUri"].rsplit("/", 1)[-1] for i in (ANALYZER_IMAGE, CLARIFY_IMAGE)):
        raise ValidationException(
            f"ModelExplainabilityAppSpecification.ImageUri {app['ImageUri']}: feature "
            f"attribution drift runs with the {CLARIFY_IMAGE} (or {ANALYZER_IMAGE}) image."
        )
    baseline = job.get("ModelExplainabilityBaselineConfig") or {}
    constraints = (baseline.get("ConstraintsResource") or {}).get("S3Uri")
    if not constraints:
        raise ValidationException(
            "ModelExplainabilityBaselineConfig.ConstraintsResource.S3Uri is required: the "
            "baseline's analysis.json with its global SHAP values (BaseliningJobName alone "
            "is not supported by this modelhost version)."
        )
    member = "ModelExplainabilityJobOutputConfig"
    return _definition(
        job,
        app,
        _input(
            job.get("ModelExplainabilityJobInput"),
            "ModelExplainabilityJobInput",
            batch_allowed=False,
        ),
        (constraints, ""),
        (job[member], member),
        config_uri=app["ConfigUri"],
    )


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _environment(
    d: Definition, schedule: str, scheduled_s: float, window: tuple[float, float]
) -> dict[str, str]:
    """The analyzer's environment for one run (the names the real image reads)."""
    env = {
        **d.environment,
        "dataset_format": json.dumps(
            {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}
        ),
        "dataset_source": ENDPOINT_PATH,
        "output_path": d.output_path,
        "baseline_constraints": CONSTRAINTS_PATH,
        "baseline_statistics": STATISTICS_PATH,
        # Whole seconds, as inferenceTime has them: the end second is kept whole.
        "start_time": _iso(math.floor(window[0])),
        "end_time": _iso(math.ceil(window[1])),
        "metric_time": _iso(scheduled_s),
        "sagemaker_endpoint_name": d.endpoint,
        "sagemaker_monitoring_schedule_name": schedule,
    }
    if d.batch_capture_uri:
        # A transform job's capture: its inputs in the BatchTransformInput's format.
        del env["sagemaker_endpoint_name"]
        env["dataset_format"] = json.dumps(d.batch_format)
    env.setdefault("publish_cloudwatch_metrics", "Enabled")
    if d.config_uri:
        del env["baseline_statistics"]
        env.update(analysis_type=ANALYSIS_TYPE, analysis_config=CONFIG_PATH)
    if d.ground_truth_uri:
        del env["baseline_statistics"]
        env.update(d.attributes)
        env.update(
            analysis_type="MODEL_QUALITY",
            problem_type=d.problem_type,
            ground_truth_source=GROUND_TRUTH_PATH,
        )
    return env


def processing_request(
    d: Definition,
    schedule: str,
    capture_uri: str,
    scheduled_s: float,
    window: tuple[float, float],
) -> dict[str, Any]:
    """The CreateProcessingJob request of one run (named as SageMaker names them)."""
    stamp = time.strftime("%Y%m%d%H%M", time.gmtime(scheduled_s))
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(scheduled_s))
    env = _environment(d, schedule, scheduled_s, window)

    def s3_input(name: str, uri: str, path: str, kind: str) -> dict[str, Any]:
        return {
            "InputName": name,
            "S3Input": {"S3Uri": uri, "LocalPath": path, "S3DataType": kind, "S3InputMode": "File"},
        }

    return {
        "ProcessingJobName": f"model-monitoring-{stamp}-{uuid.uuid4().hex[:20]}",
        "AppSpecification": {"ImageUri": d.image},
        "Environment": env,
        "ProcessingInputs": [
            s3_input("endpoint_input_1", capture_uri, ENDPOINT_PATH, "S3Prefix"),
            s3_input("baseline_constraints", d.constraints_uri, CONSTRAINTS_PATH, "S3Prefix"),
            s3_input("baseline_statistics", d.statistics_uri, STATISTICS_PATH, "S3Prefix")
            if d.statistics_uri
            else s3_input("analysis_config", d.config_uri, CONFIG_PATH, "S3Object")
            if d.config_uri
            else s3_input("ground_truth_input", d.ground_truth_uri, GROUND_TRUTH_PATH, "S3Prefix"),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {
                        "S3Uri": join(d.output_uri, d.endpoint, schedule, hour),
                        "LocalPath": d.output_path,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": d.resources
        or {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "VolumeSizeInGB": 20,
            }
        },
        "RoleArn": d.role_arn,
        "StoppingCondition": d.stopping or {"MaxRuntimeInSeconds": 3600},
    }
