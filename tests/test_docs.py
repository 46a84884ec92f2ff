"""Docs are part of the product: every setting, command, action and metric is documented."""

from __future__ import annotations

from pathlib import Path

from click import Group

from modelhost.cli import main
from modelhost.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.md").read_text()
    for field in Settings.model_fields:
        assert f"`{field}`" in text, field
        assert f"MODELHOST_{field.upper()}" in text, field


def test_every_cli_command_is_documented() -> None:
    assert isinstance(main, Group)
    text = (DOCS / "cli.md").read_text()
    for name, command in main.commands.items():
        assert f"`modelhost {name}" in text, name
        for sub in command.commands if isinstance(command, Group) else ():
            assert f"`modelhost {name} {sub}" in text, f"{name} {sub}"
    for option in ("--url", "--home", "MODELHOST_URL", "MODELHOST_HOME"):
        assert f"`{option}" in text, option


def test_every_api_action_is_documented() -> None:
    from modelhost.control.service import ControlPlane

    text = (DOCS / "api.md").read_text()
    plane = ControlPlane(Settings(), None, None)  # type: ignore[arg-type]
    assert len(plane.operations) >= 13
    for op in plane.operations:
        assert f"`{op}`" in text, op


def test_every_transform_job_action_is_documented() -> None:
    from modelhost.jobs.manager import TransformJobs

    text = (DOCS / "api.md").read_text()
    jobs = TransformJobs(Settings(), None, None, None)  # type: ignore[arg-type]
    for op in jobs.operations:
        assert f"`{op}`" in text, op


def test_every_metric_is_documented() -> None:
    from modelhost.telemetry.metrics import InvocationMetrics

    text = (DOCS / "metrics.md").read_text()
    for metric in InvocationMetrics().registry.collect():
        assert f"`{metric.name}`" in text, metric.name


def test_ci_runs_the_readmes_test_command() -> None:
    root = DOCS.parent
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m pip install"))
    assert f"\n{command}\n" in readme
    assert command.endswith("python3 -m pytest -n 2")


def test_every_cloudwatch_action_is_documented() -> None:
    from modelhost.telemetry.cloudwatch import CloudWatch

    text = (DOCS / "api.md").read_text()
    for op in CloudWatch(None, None, "r", "a").operations:  # type: ignore[arg-type]
        assert f"`{op}`" in text, op


def test_every_autoscaling_action_is_documented() -> None:
    from modelhost.scaling.service import ScalingService

    text = (DOCS / "api.md").read_text()
    for op in ScalingService(None, None).operations:  # type: ignore[arg-type]
        assert f"`{op}`" in text, op
