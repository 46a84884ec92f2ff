"""Bandit routing as operations: set or clear an endpoint's RoutingConfig, report rewards.

The policy and the reward counts live in the endpoint's record (`spec["Routing"]`), so they
survive restarts and go away with the endpoint; the id ledger (which variant answered which
InferenceId) is in memory only, so rewards for invocations from before a restart count as
Unknown rather than being guessed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from modelhost.control.controller import Controller
from modelhost.control.status import StatusWriter
from modelhost.errors import EndpointNotFound, ValidationException
from modelhost.resources.endpoints import Endpoint
from modelhost.routing.bandit import Bandit, BanditPolicy, Outcome
from modelhost.store.metadata import MetadataStore

MAX_REWARDS_PER_CALL = 10_000


class BanditRouting:
    """`PUT/GET/DELETE /api/endpoints/{name}/routing` and `POST .../rewards`."""

    def __init__(self, store: MetadataStore, controller: Controller) -> None:
        self.store = store
        self.controller = controller

    @property
    def records(self) -> StatusWriter:
        """Records are written where the controller writes them (one writer)."""
        return self.controller.state.status

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self.records.get(name)
        if endpoint is None:
            raise EndpointNotFound(f"Could not find endpoint {name}.")
        return endpoint

    def put(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(name)
        try:
            policy = BanditPolicy.from_json(body)
        except ValueError as exc:
            raise ValidationException(f"RoutingConfig: {exc}") from exc
        if len(endpoint.current.config.variants) < 2:
            raise ValidationException(
                f"Endpoint {name} has one production variant; bandit routing needs at least two."
            )
        routing = {**(endpoint.routing or {}), "RoutingConfig": policy.to_json()}
        self.controller.bandits.configure(name, policy, routing.get("Stats"))
        self._save(name, lambda e: setattr(e, "routing", routing))
        return self.describe(name)

    def delete(self, name: str) -> dict[str, Any]:
        """Back to the configured weights; the reward counts are forgotten."""
        self._endpoint(name)
        self.controller.bandits.drop(name)
        self._save(name, lambda e: setattr(e, "routing", None))
        return {"EndpointName": name, "RoutingConfig": None}

    def describe(self, name: str) -> dict[str, Any]:
        self._endpoint(name)
        bandit = self.controller.bandits.get(name)
        if bandit is None:
            return {"EndpointName": name, "RoutingConfig": None}
        self._weights(name)
        return {"EndpointName": name, **bandit.to_json()}

    def reward(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Credit rewards to the variants that answered; each InferenceId counts once."""
        self._endpoint(name)
        bandit = self.controller.bandits.get(name)
        if bandit is None:
            raise ValidationException(
                f"Endpoint {name} has no bandit RoutingConfig; set one with "
                f"PUT /api/endpoints/{name}/routing (modelhost routing {name} --strategy ...)."
            )
        items = body.get("Rewards", [body])
        rewards = _parse_rewards(items)
        results = []
        for inference_id, value in rewards:
            outcome, variant = bandit.reward(inference_id, value)
            results.append(
                {"InferenceId": inference_id, "Outcome": outcome.value, "VariantName": variant}
            )
        self._recompute(name, bandit)
        stats = bandit.stats_json()

        def change(endpoint: Endpoint) -> None:
            endpoint.routing = {**(endpoint.routing or {}), "Stats": stats}

        self._save(name, change)
        counts = {o.value: 0 for o in Outcome}
        for r in results:
            counts[str(r["Outcome"])] += 1
        return {"EndpointName": name, "Results": results, "Counts": counts}

    def _weights(self, name: str) -> None:
        dep = self.controller.deployment(name)
        if dep is not None:
            self.controller.bandits.weights(name, dep.production_names())

    def _recompute(self, name: str, bandit: Bandit) -> None:
        dep = self.controller.deployment(name)
        if dep is None:
            return
        bandit.recompute(dep.production_names(), self.controller.bandits.rng)

    def _save(self, name: str, change: Callable[[Endpoint], None]) -> None:
        # An API call, which any gateway serves: not fenced as the controller's writes are.
        self.records.update(name, change, deleting=True, fenced=False)
        self.controller.publish(name)


def _parse_rewards(items: Any) -> list[tuple[str, float]]:
    if not isinstance(items, list) or not items:
        raise ValidationException("Rewards must be a non-empty list of {InferenceId, Reward}.")
    if len(items) > MAX_REWARDS_PER_CALL:
        raise ValidationException(f"Rewards takes at most {MAX_REWARDS_PER_CALL} items per call.")
    out = []
    for i, item in enumerate(items):
        where = f"Rewards[{i}]"
        if not isinstance(item, dict):
            raise ValidationException(f"{where} must be an object with InferenceId and Reward.")
        inference_id = item.get("InferenceId")
        if not isinstance(inference_id, str) or not 1 <= len(inference_id) <= 64:
            raise ValidationException(f"{where}.InferenceId must be a string of 1 to 64 chars.")
        value = item.get("Reward")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= 1
        ):
            raise ValidationException(f"{where}.Reward must be a number between 0 and 1.")
        out.append((inference_id, float(value)))
    return out
