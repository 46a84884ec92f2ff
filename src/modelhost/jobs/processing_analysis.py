"""What a processing job of the model-monitor analyzer image runs: a baseline, or a
monitoring run over captures (data quality, model quality, feature attribution), from the
job's environment and container paths mapped back to its inputs' and outputs' S3Uri, as
the real image reads them (jobs/processing.py keeps the jobs themselves)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from modelhost.errors import ArtifactError, ValidationException
from modelhost.jobs import clarify_baseline, explainability
from modelhost.monitor import batch_capture
from modelhost.monitor.dataset import DatasetError, parse_format
from modelhost.store.outputs import Locations, join

DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
MODEL_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
BATCH_DATA_METRICS_NAMESPACE = "aws/sagemaker/ModelMonitoring/data-metrics"


class Analysis:
    """Runs one job's analysis: reads its inputs, writes its outputs, returns its
    ExitMessage and the CloudWatch PutMetricData calls it publishes."""

    def __init__(self, locations: Locations, explain: explainability.Explainability) -> None:
        self.locations = locations
        self.explainability = explain

    def run(self, request: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Run the analyzer for `request`: the job's ExitMessage and the CloudWatch
        PutMetricData calls it publishes."""
        # Here, not at the top: the analyzer pulls scipy.stats and scikit-learn (1.5 s),
        # which every gateway start would pay for jobs most gateways never run.
        from modelhost.monitor import analyzer

        env = request.get("Environment") or {}
        if clarify_baseline.is_baseline(request):
            return self._clarify(request), []
        source = resolve(request, env["dataset_source"], "ProcessingInputs")
        output = resolve(request, env["output_path"], "ProcessingOutputConfig")
        files = self.locations.list(source, "ProcessingInputs")
        if env.get("baseline_constraints"):
            start, end = _time(env.get("start_time")), _time(env.get("end_time"))
            files = [url for url in files if analyzer.file_in_window(url, start, end)]
        texts: Iterable[str] = (
            self.locations.read(url, "ProcessingInputs").decode("utf-8") for url in files
        )
        fmt = parse_format(env.get("dataset_format"))
        if env.get("baseline_constraints") and "sagemakerCaptureJson" not in fmt:
            # A batch transform job's capture: manifests of its inputs and outputs.
            texts = ["\n".join(batch_capture.capture_lines(files, self._text, fmt))]
        if not env.get("baseline_constraints"):
            if env.get("analysis_type") == "MODEL_QUALITY":
                stats, constraints = analyzer.suggest_quality_baseline(texts, fmt, env)
            else:
                stats, constraints = analyzer.suggest_baseline(texts, fmt)
            self._write(output, "statistics.json", stats)
            self._write(output, "constraints.json", constraints)
            return "Completed: Job completed successfully with no violations.", []
        constraints = self._read_json(request, env["baseline_constraints"])
        lines = analyzer.capture_lines(
            texts, _time(env.get("start_time")), _time(env.get("end_time"))
        )
        publish = env.get("publish_cloudwatch_metrics") != "Disabled"
        if env.get("analysis_type") == explainability.ANALYSIS_TYPE:
            config = self._read_json(request, env["analysis_config"])
            found, series = self.explainability.analyze(
                env, lines, constraints, config, lambda n, doc: self._write(output, n, doc)
            )
            return _outcome(found, explainability.put_metric_data(env, series) if publish else [])
        if env.get("analysis_type") == "MODEL_QUALITY":
            truth = resolve(request, env["ground_truth_source"], "ProcessingInputs")
            truth_lines = [
                line
                for url in self.locations.list(truth, "ProcessingInputs")
                for line in self.locations.read(url, "ProcessingInputs").decode().splitlines()
                if line.strip()
            ]
            result = analyzer.analyze_quality(lines, truth_lines, constraints, env)
            named, namespace = analyzer.quality_metrics(result), MODEL_METRICS_NAMESPACE
        else:
            baseline = self._read_json(request, env["baseline_statistics"])
            result = analyzer.analyze(lines, baseline, constraints)
            self._write(output, "drift.json", result.drift)
            named, namespace = analyzer.metrics(result), DATA_METRICS_NAMESPACE
        self._write(output, "statistics.json", result.statistics)
        self._write(output, "constraint_violations.json", {"violations": result.violations})
        return _outcome(result.violations, _metrics(env, named, namespace) if publish else [])

    def _clarify(self, request: dict[str, Any]) -> str:
        """run_explainability's job (jobs/clarify_baseline.py)."""

        def texts(url: str) -> list[str]:
            listed = self.locations.list(url, "ProcessingInputs")
            return [self.locations.read(u, "ProcessingInputs").decode("utf-8") for u in listed]

        return clarify_baseline.run(
            lambda path, member: resolve(request, path, member),
            texts,
            self._write,
            self.explainability.store,
            self.explainability.load_model,
        )

    def _text(self, url: str) -> str | None:
        """A file's text; None when it cannot be read (a batch output not written)."""
        try:
            return self.locations.read(url, "ProcessingInputs").decode("utf-8")
        except ArtifactError:
            return None

    def _write(self, output: str, name: str, doc: Any) -> None:
        body = json.dumps(doc, indent=4).encode()
        self.locations.write(join(output, name), body, "ProcessingOutputConfig")

    def _read_json(self, request: dict[str, Any], path: str) -> dict[str, Any]:
        url = resolve(request, path, "ProcessingInputs")
        try:
            doc: dict[str, Any] = json.loads(self.locations.read(url, "ProcessingInputs"))
        except ValueError as exc:
            raise DatasetError(f"{url} is not JSON: {exc}") from exc
        return doc


def _outcome(violations: list[Any], metrics: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """The job's ExitMessage (the execution's status is read from it) and its metrics."""
    if not violations:
        return "Completed: Job completed successfully with no violations.", metrics
    count = len(violations)
    return f"CompletedWithViolations: Job completed successfully with {count} violations.", metrics


def _metrics(
    env: dict[str, Any], named: list[tuple[str, float]], namespace: str
) -> list[dict[str, Any]]:
    """PutMetricData calls of a monitoring run: SageMaker's namespace, names, dimensions."""
    schedule = env.get("sagemaker_monitoring_schedule_name", "")
    dims = [{"Name": "MonitoringSchedule", "Value": schedule}]
    if env.get("sagemaker_endpoint_name"):
        dims.insert(0, {"Name": "Endpoint", "Value": env["sagemaker_endpoint_name"]})
    elif namespace == DATA_METRICS_NAMESPACE:
        namespace = BATCH_DATA_METRICS_NAMESPACE  # a batch transform job's capture
    data = [
        {"MetricName": name, "Dimensions": dims, "Value": value, "Unit": "None"}
        for name, value in named
    ]
    return [
        {"Namespace": namespace, "MetricData": data[i : i + 500]} for i in range(0, len(data), 500)
    ]


def mounts(request: dict[str, Any], member: str) -> list[tuple[str, str]]:
    """(LocalPath, S3Uri) of the request's inputs or outputs."""
    if member == "ProcessingInputs":
        items = [i.get("S3Input") or {} for i in request.get("ProcessingInputs") or []]
    else:
        outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        items = [o.get("S3Output") or {} for o in outputs]
    return [(i["LocalPath"], i["S3Uri"]) for i in items if i.get("LocalPath") and i.get("S3Uri")]


def resolve(request: dict[str, Any], path: str, member: str) -> str:
    """The URL behind a container path: the S3Uri of the longest LocalPath it lies under."""
    best: tuple[str, str] | None = None
    for local, url in mounts(request, member):
        base = local.rstrip("/")
        if (path == base or path.startswith(base + "/")) and (
            best is None or len(base) > len(best[0])
        ):
            best = (base, url)
    if best is None:
        raise ValidationException(
            f"{member}: no LocalPath contains {path} (named by the analyzer's environment)."
        )
    return join(best[1], path[len(best[0]) :]) if path != best[0] else best[1]


def _time(value: Any) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise DatasetError(f"{value} is not an ISO 8601 time") from None
