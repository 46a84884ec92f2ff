"""The compiled tier end to end for scikit-learn: a real server, a single-model endpoint
serving a RandomForest regressor with the tier on in the model's environment, boto3. The
instance compiles the forest in a child process, says so in the endpoint's log
(CloudWatch Logs), and answers with the same bytes before and after the switch."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.testing.churn import csv_body
from modelhost.testing.server import ModelhostServer
from tests.compile.sklearn_support import fit, held_out, write_model_dir
from tests.support import FAST_ENV, deploy, unique
from tests.tier_support import attached_lines

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    env = {**FAST_ENV, "MODELHOST_LOGS_POLL_INTERVAL_S": "0.2"}
    with ModelhostServer(tmp_path_factory.mktemp("sktier-home"), env=env) as srv:
        yield srv


@pytest.mark.integration
def test_random_forest_endpoint_switches_to_its_compiled_form_with_the_same_answers(
    server: ModelhostServer, tmp_path: Path
) -> None:
    sm, rt = server.clients()
    logs = server.client("logs")
    forest = fit("rf-regressor", n_estimators=50)
    name = unique("sktier")
    environment = {
        "MH_INSTANCE_COMPILE_TREES": "on",
        "MH_INSTANCE_COMPILE_CACHE_DIR": str(tmp_path / "compiled"),
        # The measured crossover depends on the machine; a fixed one keeps the test exact.
        "MH_INSTANCE_COMPILE_MAX_ROWS": "64",
    }
    model_dir = write_model_dir(forest, tmp_path / "forest")
    deploy(sm, name, str(model_dir), image=SKLEARN_IMAGE, environment=environment)
    rows = held_out()
    bodies = [csv_body(rows[:1]), csv_body(rows[:40]), csv_body(rows)]

    def answers() -> list[bytes]:
        return [
            rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)["Body"].read()
            for body in bodies
        ]

    before = answers()
    assert json.loads(before[1]) == forest.predict(rows[:40]).tolist()
    deadline = time.monotonic() + 180
    while not (lines := attached_lines(logs, name)):
        assert time.monotonic() < deadline, "the forest's compiled form was never attached"
        time.sleep(0.5)
    assert len(lines) == 1
    assert answers() == before  # the first two from the compiled form, the last too large
    sm.delete_endpoint(EndpointName=name)
