"""Inference recommendations jobs (SageMaker JSON 1.1): Create, Describe, List, Stop and
ListInferenceRecommendationsJobSteps, with durable runs.

A job is a RECOMMENDATION_JOB record in the metadata store: `spec` holds the accepted
request, the finished benchmark steps and, once done, the recommendations. A run tests
each configuration in turn (an Advanced job with parameter ranges: those its search picks,
recommendation_search.py): a temporary endpoint of the job's model on that instance type
(through the control plane, as any endpoint), a Locust load test against it through the
gateway (loadtest/run.py, signed with the home's admin key), the endpoint's metrics, then
the endpoint is deleted. A job that was PENDING or IN_PROGRESS when the server stopped
runs again from its first unfinished configuration when it comes back (its leftover
temporary endpoint is deleted first); one that was STOPPING becomes STOPPED.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhost.control.durable import DurableJobs
from modelhost.control.listing import list_response
from modelhost.errors import InternalFailure, ModelhostError, ResourceInUse, ResourceNotFound
from modelhost.loadtest import recommendation as rules
from modelhost.loadtest import recommendation_search as searched
from modelhost.loadtest import recommendation_wire as wire
from modelhost.loadtest.prices import load_prices
from modelhost.loadtest.spec import LoadSpec
from modelhost.resources.status import RecommendationJobStatus as Status
from modelhost.settings import Settings
from modelhost.store.cache_bound import Leased
from modelhost.store.metadata import Kind, MetadataStore, Record

if TYPE_CHECKING:
    from modelhost.control.service import ControlPlane

log = logging.getLogger("modelhost.recommender")

Handler = Callable[[dict[str, Any]], dict[str, Any]]
# (url, access key id, secret): how a benchmark reaches this gateway.
Connection = Callable[[], tuple[str, str, str]]
_ACTIVE = (Status.PENDING, Status.IN_PROGRESS)
_POLL_S = 0.5


class BenchmarkFailed(Exception):
    """One configuration could not be measured; the message is its step's FailureReason."""


class RecommendationJobs(DurableJobs):
    """The recommender's operations and the runs behind them (see the module docstring)."""

    kind = Kind.RECOMMENDATION_JOB
    arn_type = "inference-recommendations-job"
    directory = "recommendation-jobs"
    noun = "inference recommendations job"
    end_time_key = "CompletionTime"
    active = _ACTIVE
    stopping = Status.STOPPING
    stopped = Status.STOPPED
    failed = Status.FAILED
    log = log

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        control: ControlPlane,
        fetch: Callable[[str], Leased],
        connection: Connection,
    ) -> None:
        super().__init__(settings, store)
        self.control = control
        self._fetch = fetch
        self._connection = connection
        self._locusts: dict[str, subprocess.Popen[str]] = {}
        self.operations: dict[str, Handler] = {
            "CreateInferenceRecommendationsJob": self.create,
            "DescribeInferenceRecommendationsJob": self.describe,
            "ListInferenceRecommendationsJobs": self.list_jobs,
            "StopInferenceRecommendationsJob": self.stop_job,
            "ListInferenceRecommendationsJobSteps": self.list_steps,
        }

    async def stop(self) -> None:
        """Server shutdown: load tests are ended; their jobs stay active, to run next start."""
        for proc in list(self._locusts.values()):
            _kill(proc)
        await super().stop()

    # --- operations -------------------------------------------------------------------

    def _not_found(self, name: str) -> ModelhostError:
        return ResourceNotFound(f"Inference recommendations job {name} does not exist.")

    def _duplicate(self, rec: Record) -> ModelhostError:
        return ResourceInUse(f"Inference recommendations job {rec.name} already exists.")

    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        rules.check_request(p)
        request = {k: copy.deepcopy(v) for k, v in p.items() if k in rules.ECHOED}
        spec = {"Request": request, "JobType": p["JobType"], "Steps": []}
        record = self._submit(p["JobName"], spec, p.get("Tags"), Status.PENDING)
        return {"JobArn": record.arn}

    def describe(self, p: dict[str, Any]) -> dict[str, Any]:
        return wire.describe(self._get(p["JobName"]))

    def list_jobs(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [wire.summary(r) for r in self.store.list(Kind.RECOMMENDATION_JOB)]
        if p.get("ModelNameEquals"):
            items = [i for i in items if i.get("ModelName") == p["ModelNameEquals"]]
        query = {k: v for k, v in p.items() if k != "ModelNameEquals"}
        return list_response(
            items,
            query,
            member="InferenceRecommendationsJobs",
            name_key="JobName",
            sort_keys={"Name": "JobName", "CreationTime": "CreationTime", "Status": "Status"},
            status_key="Status",
        )

    def stop_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(p["JobName"])
        if rec.status not in _ACTIVE:
            return {}
        self._stop(rec)
        return {}

    def list_steps(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(p["JobName"])
        steps = list(rec.spec.get("Steps", []))
        if p.get("Status"):
            steps = [s for s in steps if s["Status"] == p["Status"]]
        if p.get("StepType"):
            steps = [s for s in steps if s["StepType"] == p["StepType"]]
        return {"Steps": steps}

    # --- runs -------------------------------------------------------------------------

    async def _work(self, name: str) -> list[dict[str, Any]]:
        rec = self._get(name)
        self._set_status(rec, Status.IN_PROGRESS)
        return await self._benchmarks(rec)

    def _interrupt(self, name: str) -> None:
        proc = self._locusts.get(name)
        if proc is not None:
            _kill(proc)

    async def _succeeded(self, name: str, outcome: list[dict[str, Any]]) -> None:
        if not outcome:
            reason = "No configuration met the job's stopping conditions; see its steps."
            self._finish(name, Status.FAILED, reason)
        else:
            self._finish(name, Status.COMPLETED, None, InferenceRecommendations=outcome)

    async def _benchmarks(self, rec: Record) -> list[dict[str, Any]]:
        request = {**rec.spec["Request"], "JobType": rec.spec["JobType"]}
        payload_url = request["InputConfig"]["ContainerConfig"]["PayloadConfig"]
        self._delete_leftovers(rec.name)
        # Leased while the steps run: the bounded artifact cache keeps it until the end.
        held = await asyncio.to_thread(self._fetch, payload_url["SamplePayloadUrl"])
        with held as payload_dir:

            async def step(i: int, config: rules.Configuration) -> dict[str, Any]:
                for done in self._get(rec.name).spec["Steps"]:
                    if done["Key"] == config.key():
                        return dict(done)  # measured before a restart
                got = await self._step(rec.name, request, i, config, payload_dir)
                current = self._get(rec.name)
                current.spec["Steps"].append(got)
                self._set_status(current, Status.IN_PROGRESS)
                return got

            if rules.searched(request):  # a smarter search than the grid (search.py)
                await searched.run(rec.name, request, step)
            else:
                for i, config in enumerate(rules.configurations(request)):
                    await step(i, config)
        rec = self._get(rec.name)
        benches = [
            s["InferenceBenchmark"] for s in rec.spec["Steps"] if s["Status"] == Status.COMPLETED
        ]
        return rules.recommendations(rec.name, benches, request.get("StoppingConditions"))

    async def _step(
        self,
        job: str,
        request: dict[str, Any],
        index: int,
        config: rules.Configuration,
        payloads: Path,
    ) -> dict[str, Any]:
        # A fresh name per attempt: a leftover of a stopped server may still be deleting.
        endpoint = f"{_prefix(job)}{index}-{int(time.time() * 1000) % 10**8}"
        # `Key` is modelhost's own member (boto3 drops it): which configuration a step measured.
        step: dict[str, Any] = {"StepType": "BENCHMARK", "JobName": job, "Key": config.key()}
        try:
            bench = await self._measure(job, request, endpoint, config, payloads)
        except (BenchmarkFailed, ModelhostError) as exc:
            endpoint_config = {
                "EndpointName": endpoint,
                "VariantName": "AllTraffic",
                "InstanceType": config.instance_type,
                "InitialInstanceCount": 1,
            }
            step.update(
                Status=Status.FAILED,
                InferenceBenchmark={
                    "EndpointConfiguration": endpoint_config,
                    "ModelConfiguration": rules.model_configuration(config.environment),
                    "FailureReason": str(exc)[:1024],
                },
            )
            return step
        finally:
            self._delete_endpoint(endpoint)
        step.update(Status=Status.COMPLETED, InferenceBenchmark=bench)
        return step

    async def _measure(
        self,
        job: str,
        request: dict[str, Any],
        endpoint: str,
        config: rules.Configuration,
        payloads: Path,
    ) -> dict[str, Any]:
        from modelhost.loadtest.run import attach_endpoint_metrics, run_locust, signed_client

        started = time.monotonic()
        model = self._model_for(request["InputConfig"]["ModelName"], endpoint, config)
        await self._deploy(model, endpoint, config.instance_type)
        setup_s = time.monotonic() - started
        url, key_id, secret = self._connection()
        spec = LoadSpec(
            endpoint=endpoint,
            phases=rules.phases(request, self.settings.recommender_test_duration_s),
            payload_path=str(payloads),
            content_type=rules.content_type(request),
            endpoint_url=url,
            region=self.settings.region,
            access_key_id=key_id,
            secret_access_key=secret,
            # The gateway's own certificate verifies its https URL (self-signed included).
            ca_bundle=str(self.settings.tls_cert_file) if self.settings.tls_cert_file else None,
        )
        watch = rules.ThresholdWatch(request.get("StoppingConditions"))

        def progress(line: str) -> None:
            # A configuration that breaks its latency threshold is not measured to the end.
            if watch.line(line) and (proc := self._locusts.get(job)) is not None:
                _kill(proc)

        try:
            result = await asyncio.to_thread(
                run_locust, spec, self.workdir(job) / endpoint, progress, self._locusts_of(job)
            )
        except InternalFailure:
            if watch.broken:
                raise BenchmarkFailed(watch.broken) from None
            raise
        finally:
            self._locusts.pop(job, None)
        cloudwatch = signed_client("cloudwatch", url, self.settings.region, spec)
        await asyncio.to_thread(attach_endpoint_metrics, result, cloudwatch)
        return rules.benchmark(
            config.instance_type, endpoint, result, load_prices(), setup_s, config.environment
        )

    def _locusts_of(self, job: str) -> Callable[[subprocess.Popen[str]], None]:
        return lambda proc: self._locusts.__setitem__(job, proc)

    def _model_for(self, model: str, endpoint: str, config: rules.Configuration) -> str:
        """The job's model, or a temporary copy (named like the endpoint) whose container has
        the configuration's environment variables."""
        if not config.environment:
            return model
        described = self.control.call("DescribeModel", {"ModelName": model})
        self.control.call("CreateModel", rules.model_copy(described, endpoint, config.environment))
        return endpoint

    async def _deploy(self, model: str, endpoint: str, instance_type: str) -> None:
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": model,
            "InitialInstanceCount": 1,
            "InstanceType": instance_type,
        }
        self.control.call(
            "CreateEndpointConfig",
            {"EndpointConfigName": endpoint, "ProductionVariants": [variant]},
        )
        self.control.call(
            "CreateEndpoint", {"EndpointName": endpoint, "EndpointConfigName": endpoint}
        )
        deadline = time.monotonic() + self.settings.instance_startup_timeout_s + 60.0
        while time.monotonic() < deadline:
            got = self.control.call("DescribeEndpoint", {"EndpointName": endpoint})
            if got["EndpointStatus"] == "InService":
                return
            if got["EndpointStatus"] == "Failed":
                raise BenchmarkFailed(f"endpoint {endpoint} failed: {got.get('FailureReason')}")
            await asyncio.sleep(_POLL_S)
        raise BenchmarkFailed(f"endpoint {endpoint} was not InService in time")

    def _delete_leftovers(self, job: str) -> None:
        """Temporary endpoints of an earlier attempt (the server stopped during a test)."""
        listed = self.control.call(
            "ListEndpoints", {"NameContains": _prefix(job), "MaxResults": 100}
        )
        for item in listed["Endpoints"]:
            if item["EndpointName"].startswith(_prefix(job)):
                self._delete_endpoint(item["EndpointName"])

    def _delete_endpoint(self, endpoint: str) -> None:
        for op, key in (
            ("DeleteEndpoint", "EndpointName"),
            ("DeleteEndpointConfig", "EndpointConfigName"),
            ("DeleteModel", "ModelName"),  # a temporary model of the same name, if any
        ):
            with contextlib.suppress(ModelhostError):
                self.control.call(op, {key: endpoint})


def _prefix(job: str) -> str:
    return f"{job[:40]}-ir"


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
