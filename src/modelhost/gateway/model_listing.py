"""What each instance of a multi-model endpoint holds: `GET /api/endpoints/{name}/models`.

Asked of the instances themselves (`GET /models`, every page), so the answer is the
truth even where the gateway's own record (`Instance.models`) is behind; the record is
corrected on the way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelhost.fleet.dataplane.core import json_object
from modelhost.fleet.http1 import InstanceDisconnected, InstanceUnreachable

if TYPE_CHECKING:
    from modelhost.control.controller import Controller
    from modelhost.fleet.instance import Instance


async def loaded_models(controller: Controller, endpoint: str, timeout_s: float) -> dict[str, Any]:
    """What each instance of `endpoint` holds, asked of the instances (`GET /models`)."""
    deployment = controller.deployment(endpoint)
    instances: list[dict[str, Any]] = []
    if deployment is not None:
        for variant, fleet in deployment.fleets.items():
            if fleet.spec.model_data_prefix is None:
                continue
            for inst in fleet.serving():
                instances.append(await _instance_models(controller, variant, inst, timeout_s))
    return {"EndpointName": endpoint, "Instances": instances}


async def _instance_models(
    controller: Controller, variant: str, inst: Instance, timeout_s: float
) -> dict[str, Any]:
    models: list[dict[str, Any]] = []
    token: str | None = None
    doc: dict[str, Any] = {}
    while True:
        query = b"" if token is None else b"?next_page_token=" + quote(token).encode()
        try:
            status, _h, out = await controller.client.http.request(
                inst.address, b"GET", b"/models" + query, [], b"", timeout_s
            )
        except (InstanceUnreachable, InstanceDisconnected, TimeoutError) as exc:
            return {"InstanceId": inst.instance_id, "VariantName": variant, "Error": str(exc)}
        doc = json_object(out) if status == 200 else {}
        models.extend(
            {
                "ModelName": m.get("modelName"),
                "MemoryBytes": m.get("memoryBytes"),
                "InFlight": m.get("inFlight"),
                # modelhost's instances only (None from a server of the user's own).
                "CompiledTier": m.get("compiledTier"),
                "Batching": m.get("batching"),
            }
            for m in doc.get("models") or []
        )
        token = doc.get("nextPageToken")
        if not token:
            break
    # A server that lists fewer models than we believed: believe the server.
    inst.models.intersection_update(m["ModelName"] for m in models)
    return {
        "InstanceId": inst.instance_id,
        "VariantName": variant,
        "Models": models,
        "BudgetBytes": doc.get("budgetBytes"),
        "UsedBytes": doc.get("usedBytes"),
        "Outstanding": inst.outstanding,
    }
