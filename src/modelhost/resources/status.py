"""Lifecycles as enums. Values are SageMaker's strings where SageMaker has one."""

from __future__ import annotations

from enum import StrEnum


class EndpointStatus(StrEnum):
    OUT_OF_SERVICE = "OutOfService"
    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"


class InstanceStatus(StrEnum):
    """One instance process: Pending → Starting → InService → Stopping → Stopped (or Failed)."""

    PENDING = "Pending"
    STARTING = "Starting"
    IN_SERVICE = "InService"
    UNHEALTHY = "Unhealthy"
    DRAINING = "Draining"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"


class VariantStatus(StrEnum):
    CREATING = "Creating"
    UPDATING = "Updating"
    DELETING = "Deleting"
    ACTIVATING_TRAFFIC = "ActivatingTraffic"
    BAKING = "Baking"


class TransformJobStatus(StrEnum):
    """A transform job: InProgress → Completed | Failed, or Stopping → Stopped."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class CompilationJobStatus(StrEnum):
    """A compilation job (SageMaker's spelling): STARTING → INPROGRESS → COMPLETED | FAILED,
    or STOPPING → STOPPED."""

    STARTING = "STARTING"
    IN_PROGRESS = "INPROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class ProcessingJobStatus(StrEnum):
    """A processing job: InProgress → Completed | Failed, or Stopping → Stopped."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class MonitoringScheduleStatus(StrEnum):
    """A monitoring schedule: Pending → Scheduled, Stopped by StopMonitoringSchedule."""

    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    STOPPED = "Stopped"
    FAILED = "Failed"


class MonitoringExecutionStatus(StrEnum):
    """One run of a schedule, from its processing job (CompletedWithViolations when the
    analyzer found violations)."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    COMPLETED_WITH_VIOLATIONS = "CompletedWithViolations"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class RecommendationJobStatus(StrEnum):
    """An inference recommendations job: PENDING → IN_PROGRESS → COMPLETED | FAILED, or
    STOPPING → STOPPED."""

    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
