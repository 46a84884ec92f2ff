"""Data capture of a transform job (CreateTransformJob's DataCaptureConfig), as SageMaker
writes it for batch transform: not a copy of the data but two manifests per job,

    {DestinationS3Uri}/input/yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{uuid}.json
    {DestinationS3Uri}/output/yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{uuid}.json

each a manifest in the ManifestFile format (`[{"prefix": P}, "rel", ...]`) of the job's
input objects and of their `.out` outputs, labelled with the hour (and here the minute,
second and millisecond) the job started. A monitoring schedule's BatchTransformInput
(`DataCapturedDestinationS3Uri`) reads them (monitor/batch_capture.py).

`GenerateInferenceId` appends an inference id and time to every output record (SplitType
Line): keys `SageMakerInferenceId` and `SageMakerInferenceTime` of a JSON object line, two
more columns of a CSV line. `KmsKeyId` is accepted and echoed (nothing is encrypted here).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from modelhost.errors import ValidationException
from modelhost.jobs.objects import InputObject
from modelhost.monitor.batch_capture import ID_KEY, TIME_KEY
from modelhost.settings import Settings
from modelhost.store.locations import confine
from modelhost.store.outputs import Locations, join

_LABEL = "DataCaptureConfig"


def check(p: dict[str, Any], settings: Settings) -> None:
    """CreateTransformJob's DataCaptureConfig: a destination that may be written, and
    record-wise outputs when inference ids are asked for."""
    config = p.get("DataCaptureConfig")
    if not config:
        return
    destination = config["DestinationS3Uri"]
    confine(
        destination,
        settings.allowed_data_prefixes,
        "dataCaptureConfig.destinationS3Uri",
        [settings.home],
    )
    split = p["TransformInput"].get("SplitType", "None")
    if config.get("GenerateInferenceId") and split != "Line":
        raise ValidationException(
            f"Transform job {p['TransformJobName']}: DataCaptureConfig.GenerateInferenceId "
            "needs SplitType Line (an inference id is added to every output record)."
        )


def capture_key(start_s: float) -> str:
    """`yyyy/mm/dd/hh/MM-SS-mmm-<uuid>.json` of a job started at `start_s`."""
    stamp = time.gmtime(start_s)
    millis = round((start_s % 1) * 1000) % 1000
    return time.strftime("%Y/%m/%d/%H/%M-%S-", stamp) + f"{millis:03d}-{uuid.uuid4().hex[:12]}.json"


def manifest(objects: Iterable[tuple[str, str]]) -> list[Any]:
    """A ManifestFile document of (url, rel) pairs sharing one prefix (url = prefix + rel)."""
    pairs = list(objects)
    prefix = pairs[0][0][: len(pairs[0][0]) - len(pairs[0][1])] if pairs else ""
    return [{"prefix": prefix}, *(rel for _, rel in pairs)]


def write(
    locations: Locations,
    config: dict[str, Any],
    inputs: list[InputObject],
    outputs: dict[str, str],
    start_s: float,
) -> None:
    """The job's two manifests (inputs, and the outputs `{rel: url}` that were written);
    with GenerateInferenceId, the outputs get their ids first."""
    done = [obj for obj in inputs if obj.rel in outputs]
    if not done:
        return
    if config.get("GenerateInferenceId"):
        for obj in done:
            url = outputs[obj.rel]
            body = locations.read(url, "TransformOutput")
            locations.write(url, with_inference_ids(body, time.time()), "TransformOutput")
    key = capture_key(start_s)
    destination = config["DestinationS3Uri"]
    docs = (
        ("input", manifest((o.url, o.rel) for o in done)),
        ("output", manifest((outputs[o.rel], o.rel + ".out") for o in done)),
    )
    for side, doc in docs:
        locations.write(join(destination, side, key), json.dumps(doc).encode(), _LABEL)


def with_inference_ids(body: bytes, now_s: float) -> bytes:
    """Every non-empty line of an output with an inference id and time appended."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_s))
    out = []
    for line in body.decode("utf-8").splitlines():
        if not line.strip():
            out.append(line)
            continue
        inference_id = str(uuid.uuid4())
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            out.append(json.dumps({**doc, ID_KEY: inference_id, TIME_KEY: when}))
        else:
            out.append(f"{line},{inference_id},{when}")
    return ("\n".join(out) + "\n").encode()
