"""Inference recommendations jobs on the wire: a job record as Describe and List answer it."""

from __future__ import annotations

from typing import Any

from modelhost.store.metadata import Record


def describe(rec: Record) -> dict[str, Any]:
    """DescribeInferenceRecommendationsJob's answer for a job record."""
    request = rec.spec["Request"]
    out: dict[str, Any] = {
        **request,
        "JobName": rec.name,
        "JobType": rec.spec["JobType"],
        "JobArn": rec.arn,
        "Status": rec.status,
        "CreationTime": rec.created_s,
        "LastModifiedTime": rec.modified_s,
    }
    if rec.failure_reason:
        out["FailureReason"] = rec.failure_reason
    if rec.spec.get("CompletionTime"):
        out["CompletionTime"] = rec.spec["CompletionTime"]
    if rec.spec.get("InferenceRecommendations"):
        out["InferenceRecommendations"] = rec.spec["InferenceRecommendations"]
    return out


def summary(r: Record) -> dict[str, Any]:
    """One job of ListInferenceRecommendationsJobs."""
    cfg = r.spec["Request"]["InputConfig"]
    item: dict[str, Any] = {
        "JobName": r.name,
        "JobDescription": r.spec["Request"].get("JobDescription", ""),
        "JobType": r.spec["JobType"],
        "JobArn": r.arn,
        "Status": r.status,
        "CreationTime": r.created_s,
        "RoleArn": r.spec["Request"]["RoleArn"],
        "LastModifiedTime": r.modified_s,
        "ModelName": cfg.get("ModelName"),
        "SamplePayloadUrl": cfg["ContainerConfig"]["PayloadConfig"]["SamplePayloadUrl"],
    }
    if r.failure_reason:
        item["FailureReason"] = r.failure_reason
    if r.spec.get("CompletionTime"):
        item["CompletionTime"] = r.spec["CompletionTime"]
    return item
