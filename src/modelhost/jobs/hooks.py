"""Extension point called when a transform job completes.

MERGE HOOK (issue 6 part 4): the prediction store lives on another branch
(`modelhost.store.predictions`). At merge time `on_job_completed` is wired to its loader:
when the job carries a prediction-store option (`job.prediction_store`), load the job's
outputs keyed by `job.prediction_store["KeyColumn"]` into the store named
`job.prediction_store["StoreName"]`. Until then it does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CompletedJob:
    """What the hook gets: the job's name, its accepted request, the prediction-store
    option (None when not asked for) and `{relative input name: output URL}`."""

    name: str
    request: dict[str, Any]
    prediction_store: dict[str, str] | None
    outputs: dict[str, str] = field(default_factory=dict)


def on_job_completed(job: CompletedJob) -> None:
    """Called once, off the event loop, after a job reaches Completed (not Failed or
    Stopped). An exception here is logged and does not change the job's status."""
    if job.prediction_store is None:
        return
    # TODO(merge): call modelhost.store.predictions' loader here, e.g.
    # load_transform_output(job.prediction_store["StoreName"],
    #                       job.prediction_store["KeyColumn"], job.outputs, job.request)
