"""Scaling activities with Application Auto Scaling's texts (Description, Cause,
StatusCode, StatusMessage), written to the book and followed until they end."""

from __future__ import annotations

import json
from typing import Any

from modelhost.scaling.book import Dimension, ScalingBook
from modelhost.scaling.capacity import Capacity


def desired_text(dim: Dimension, value: int) -> str:
    return f"Setting {dim.noun} to {value}."


def alarm_cause(alarm: str, policy: str) -> str:
    return f"monitor alarm {alarm} in state ALARM triggered policy {policy}"


class Activities:
    """Writes activities and moves InProgress ones to Successful or Failed."""

    def __init__(self, book: ScalingBook, capacity: Capacity) -> None:
        self.book = book
        self.capacity = capacity

    def _base(self, target: dict[str, Any]) -> dict[str, Any]:
        return {
            "ResourceId": target["ResourceId"],
            "ScalableDimension": target["ScalableDimension"],
        }

    def started(
        self, target: dict[str, Any], dim: Dimension, before: int, desired: int, cause: str
    ) -> dict[str, Any]:
        return self.book.add_activity(
            {
                **self._base(target),
                "Description": desired_text(dim, desired),
                "Cause": cause,
                "StatusCode": "InProgress",
                "Details": json.dumps({"CurrentCapacity": before, "DesiredCapacity": desired}),
            }
        )

    def failed(
        self, target: dict[str, Any], dim: Dimension, desired: int, cause: str, reason: str
    ) -> None:
        """A change that could not be made; written once while the same reason holds."""
        message = f"Failed to set {dim.noun} to {desired}. Reason: {reason}"
        recent = self.book.activities(target["ResourceId"], target["ScalableDimension"])[:1]
        if recent and recent[0].get("StatusMessage") == message:
            return
        now = self.book.clock()
        self.book.add_activity(
            {
                **self._base(target),
                "Description": desired_text(dim, desired),
                "Cause": cause,
                "StatusCode": "Failed",
                "StatusMessage": message,
                "EndTime": now,
            }
        )

    def done(self, target: dict[str, Any], description: str, cause: str, message: str) -> None:
        """An activity that ends as it starts (a scheduled action setting min and max)."""
        self.book.add_activity(
            {
                **self._base(target),
                "Description": description,
                "Cause": cause,
                "StatusCode": "Successful",
                "StatusMessage": message,
                "EndTime": self.book.clock(),
            }
        )

    def follow(self, target: dict[str, Any], dim: Dimension, endpoint: str, variant: str) -> None:
        """InProgress activities of the target: Successful once the wanted number of
        instances serve; Overridden when a later change replaced the wanted count; Failed
        when the controller gave the change up (the count went back)."""
        current = self.capacity.current(endpoint, variant, dim)
        serving = self.capacity.serving(endpoint, variant, dim)
        running = [
            a
            for a in self.book.activities(target["ResourceId"], target["ScalableDimension"])
            if a["StatusCode"] == "InProgress"
        ]
        for i, activity in enumerate(running):
            details = json.loads(activity.get("Details") or "{}")
            wanted = int(details.get("DesiredCapacity", -1))
            before = int(details.get("CurrentCapacity", wanted))
            reached = serving is not None and (
                serving == wanted or (before < wanted <= serving) or (before > wanted >= serving)
            )
            now = self.book.clock()
            if reached:
                activity.update(
                    StatusCode="Successful",
                    EndTime=now,
                    StatusMessage=(
                        f"Successfully set {dim.noun} to {wanted}. Change successfully "
                        "fulfilled by sagemaker."
                    ),
                )
            elif i > 0:
                activity.update(
                    StatusCode="Overridden",
                    EndTime=now,
                    StatusMessage=(f"Overridden by a later change of the {dim.noun}."),
                )
            elif current != wanted:
                endpoint_state = self.capacity.endpoint(endpoint)
                why = endpoint_state.failure_reason if endpoint_state else None
                activity.update(
                    StatusCode="Failed",
                    EndTime=now,
                    StatusMessage=(
                        f"Failed to set {dim.noun} to {wanted}. Reason: "
                        f"{why or f'the {dim.noun} is {current} now'}"
                    ),
                )
            else:
                continue
            self.book.update_activity(activity)
