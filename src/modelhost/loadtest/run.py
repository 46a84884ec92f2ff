"""Run a load test: start the Locust process, relay its progress, collect its results.

This module never imports Locust (which monkey-patches the process for gevent); it starts
`python -m modelhost.loadtest.locust_main` and reads what that writes. The results then get
the endpoint's own metrics for the same window and are written as `results.json`, two CSV
files and a self-contained `report.html` (report.py, html_report.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelhost.errors import InternalFailure
from modelhost.loadtest.spec import LoadSpec, total_duration_s

# Time beyond the planned duration for the process to start, connect workers and finish.
GRACE_S = 180.0


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_locust(
    spec: LoadSpec,
    out_dir: Path,
    echo: Callable[[str], None],
    started: Callable[[subprocess.Popen[str]], None] | None = None,
) -> dict[str, Any]:
    """Run the Locust process for `spec`; its progress lines go to `echo`; returns its result.
    `started` receives the process (a caller that may cancel the test kills it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_path = spec.write(out_dir / ".spec.json")
    raw_path = out_dir / ".locust-result.json"
    log_path = out_dir / "locust.log"
    argv = [sys.executable, "-m", "modelhost.loadtest.locust_main", str(spec_path), str(raw_path)]
    try:
        with (
            open(log_path, "wb") as log,
            subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True
            ) as proc,
        ):
            if started is not None:
                started(proc)
            timer = threading.Timer(total_duration_s(spec.phases) + GRACE_S, proc.kill)
            timer.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    echo(line.rstrip("\n"))
                code = proc.wait()
            finally:
                timer.cancel()
                if proc.poll() is None:
                    proc.kill()
    finally:
        spec_path.unlink(missing_ok=True)
    if code != 0 or not raw_path.is_file():
        raise InternalFailure(
            f"the Locust process exited with {code}; see {log_path}:\n{_log_tail(log_path)}"
        )
    result: dict[str, Any] = json.loads(raw_path.read_text())
    raw_path.unlink()
    return result


def signed_client(service: str, url: str, region: str, spec: LoadSpec) -> Any:
    """A boto3 client of `service` signed and verified as `spec`'s load test is."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=spec.access_key_id,
        aws_secret_access_key=spec.secret_access_key,
        verify=spec.ca_bundle,
    )


def attach_endpoint_metrics(
    result: dict[str, Any], cloudwatch: Any, period_s: int = 1
) -> dict[str, Any]:
    """Add the endpoint's metrics for the test's window (best effort: a test against an
    endpoint without CloudWatch access still has its Locust figures)."""
    from modelhost.loadtest.endpoint_metrics import endpoint_metrics

    try:
        result["EndpointMetrics"] = endpoint_metrics(
            cloudwatch, result["Endpoint"], result["StartTime"], result["EndTime"], period_s
        )
    except Exception as exc:  # a report without them beats no report
        result["EndpointMetrics"] = {}
        result["EndpointMetricsError"] = f"{type(exc).__name__}: {exc}"
    return result


def load_test(
    spec: LoadSpec,
    out_dir: Path,
    *,
    cloudwatch: Any = None,
    echo: Callable[[str], None] = print,
    period_s: int = 1,
) -> dict[str, Any]:
    """The whole load test: Locust, the endpoint's metrics, the result files."""
    from modelhost.loadtest.html_report import write_html
    from modelhost.loadtest.report import write_csv, write_json

    result = run_locust(spec, out_dir, echo)
    if cloudwatch is not None:
        attach_endpoint_metrics(result, cloudwatch, period_s)
    result["Files"] = {
        "json": str(out_dir / "results.json"),
        "stats_csv": str(out_dir / "stats.csv"),
        "history_csv": str(out_dir / "history.csv"),
        "html": str(out_dir / "report.html"),
    }
    write_json(result, out_dir / "results.json")
    write_csv(result, out_dir / "stats.csv", out_dir / "history.csv")
    write_html(result, out_dir / "report.html")
    return result
