"""The price model and the cost advisor: every leaf of the decision tree, the seeds' two
comparisons with the bundled 2021 table, and the CLI's output. Pure: no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelhost.cli import main
from modelhost.errors import ValidationException
from modelhost.loadtest.advisor import (
    HostingOption,
    Workload,
    advise,
    capacity_from_result,
    parse_workload,
    walk,
)
from modelhost.loadtest.prices import (
    cost_per_hour,
    cost_per_inference,
    instances_for,
    load_prices,
    monthly_async,
    monthly_batch,
    monthly_realtime,
    monthly_serverless,
)

SEEDS = load_prices("seeds-2021")


def test_bundled_tables_are_dated_and_sourced() -> None:
    for name in ("default", "seeds-2021"):
        table = load_prices(name)
        assert table.date and table.source and table.currency == "USD"
        assert "ml.m5.2xlarge" in table.instance_types("realtime")
        assert table.serverless_gb_second > 0 and table.serverless_per_request > 0


def test_the_seeds_monthly_figures() -> None:
    assert monthly_realtime(SEEDS, "ml.m5.2xlarge") == pytest.approx(387.36)
    # A 3-minute job every night for a month.
    assert monthly_batch(SEEDS, "ml.m5.4xlarge", 3, 30) == pytest.approx(1.6125)
    assert 10 * monthly_realtime(SEEDS, "ml.c5.2xlarge") == pytest.approx(3427.2)


def test_cost_per_inference_is_cost_per_hour_over_invocations_an_hour() -> None:
    hourly = cost_per_hour(SEEDS, "ml.m5.2xlarge", 2)
    assert hourly == pytest.approx(1.076)
    assert cost_per_inference(hourly, 100.0) == pytest.approx(1.076 / 360_000)
    with pytest.raises(ValidationException, match="throughput"):
        cost_per_inference(hourly, 0)


def test_serverless_async_and_sizing() -> None:
    # 1 M requests of 100 ms at 2 GB: 200,000 GB-s + 1 M requests.
    assert monthly_serverless(SEEDS, 2048, 1e6, 100) == pytest.approx(200_000 * 2e-5 + 0.2)
    with pytest.raises(ValidationException, match="MemorySizeInMB"):
        monthly_serverless(SEEDS, 1000, 1, 1)
    assert monthly_async(SEEDS, "ml.m5.2xlarge", 10) == pytest.approx(5.38)
    assert monthly_async(SEEDS, "ml.m5.2xlarge", 10, 1) == pytest.approx(387.36)
    assert [instances_for(p, 100) for p in (0, 50, 100, 101)] == [1, 1, 1, 2]
    assert instances_for(500, None) == 1


def test_price_table_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValidationException, match="no realtime price"):
        cost_per_hour(SEEDS, "ml.p4d.24xlarge")
    with pytest.raises(ValidationException, match="neither a file nor a bundled"):
        load_prices(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\ndate = "2025-01-01"\nsource = "me"\n[realtime]\n"ml.m5.large" = -1\n'
    )
    with pytest.raises(ValidationException, match=r"\[realtime\] ml.m5.large"):
        load_prices(bad)
    mine = tmp_path / "mine.toml"
    mine.write_text(
        'name = "x"\ndate = "2025-01-01"\nsource = "me"\n[realtime]\n"ml.m5.large" = 1\n'
    )
    assert monthly_realtime(load_prices(mine), "ml.m5.large") == 720


@pytest.mark.parametrize(
    ("workload", "leaf"),
    [
        (Workload(live=False), HostingOption.BATCH),
        (Workload(payload_mb=5), HostingOption.ASYNC),
        (Workload(processing_s=90), HostingOption.ASYNC),
        (Workload(tolerates_cold_start=True), HostingOption.SERVERLESS),
        (Workload(models=5), HostingOption.MULTI_MODEL),
        (Workload(containers=3), HostingOption.MULTI_CONTAINER),
        (Workload(peak_to_average=4), HostingOption.REALTIME_AUTOSCALING),
        (Workload(), HostingOption.REALTIME),
    ],
)
def test_each_leaf_of_the_tree(workload: Workload, leaf: HostingOption) -> None:
    found, path = walk(workload)
    assert found == leaf
    advice = advise(workload, SEEDS)
    assert advice["Recommendation"]["Option"] == str(leaf)
    assert advice["Recommendation"]["Fits"] is True
    assert advice["Path"] == path and path[0]["Question"] == "Live predictions needed?"
    options = {a["Option"] for a in advice["Alternatives"]}
    assert (
        str(leaf) not in options
        and {"real-time", "batch-transform", "serverless"} - {str(leaf)} <= options
    )


def test_seeds_nightly_batch_against_an_always_on_endpoint() -> None:
    advice = advise(
        parse_workload(
            {
                "Live": "false",
                "BatchMinutesPerRun": "3",
                "BatchInstanceType": "ml.m5.4xlarge",
                "InstanceType": "ml.m5.2xlarge",
            }
        ),
        SEEDS,
    )
    rec = advice["Recommendation"]
    assert (rec["Option"], rec["MonthlyCost"]) == ("batch-transform", 1.61)
    always_on = next(a for a in advice["Alternatives"] if a["Option"] == "real-time")
    assert always_on["MonthlyCost"] == pytest.approx(387, abs=0.5)
    assert always_on["Fits"] is False  # it would, but nobody needs it live


def test_seeds_ten_endpoints_against_one_multi_model_endpoint() -> None:
    advice = advise(parse_workload({"Models": 10, "InstanceType": "ml.c5.2xlarge"}), SEEDS)
    rec = advice["Recommendation"]
    assert rec["Option"] == "multi-model" and rec["MonthlyCost"] == pytest.approx(343, abs=0.5)
    ten = next(a for a in advice["Alternatives"] if a["Option"] == "real-time")
    assert ten["MonthlyCost"] == pytest.approx(3430, abs=5) and ten["InstanceCount"] == 10


def test_measured_capacity_sizes_the_endpoints() -> None:
    result = {"Summary": {"RequestsPerSecond": 50.0, "LatencyMs": {"p50": 20.0}}}
    measured = capacity_from_result(result)
    assert measured == {"CapacityRPS": 50.0, "ProcessingS": 0.02}
    w = parse_workload({**measured, "RequestsPerDay": 86_400 * 120})  # 120 req/s
    advice = advise(w, SEEDS)
    assert advice["Recommendation"]["InstanceCount"] == 3
    assert "measured" in advice["Capacity"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"Bogus": 1}, "unknown member"),
        ({"Live": "maybe"}, "Live must be true or false"),
        ({"RequestsPerDay": "-3"}, "RequestsPerDay must be a number >= 0"),
        ({"Models": "2.5"}, "Models must be a whole number"),
        ({"ServerlessMemoryMB": "1500"}, "ServerlessMemoryMB must be 1024 to 6144"),
    ],
)
def test_bad_workloads_name_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationException, match=message):
        parse_workload(raw)


def test_cli_prints_the_pick_and_the_alternatives(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["advise", "--models", "10", "--instance-type", "ml.c5.2xlarge"]
    done = runner.invoke(main, [*args, "--prices", "seeds-2021"])
    assert done.exit_code == 0, done.output
    assert "recommended: multi-model, $342.72/month on 1 × ml.c5.2xlarge" in done.output
    assert "$3,427.20" in done.output and "prices: seeds-2021 (2021-11-01" in done.output
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"Summary": {"RequestsPerSecond": 40, "LatencyMs": {}}}))
    done = runner.invoke(main, ["advise", "--from-loadtest", str(results), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["Workload"]["CapacityRPS"] == 40
    done = runner.invoke(main, ["advise", "--instance-type", "ml.x9.huge"])
    assert done.exit_code == 1 and "no realtime price" in done.output


def test_multi_model_note_says_whether_the_models_fit() -> None:
    def note(models: int) -> str:
        w = Workload(models=models, model_size_mb=200, instance_type="ml.c5.2xlarge")
        return str(advise(w, SEEDS)["Recommendation"]["Note"])

    assert "all stay loaded" in note(10)  # 2 GB of a 16 GiB instance's 8 GiB cache
    assert "load on demand" in note(100)
