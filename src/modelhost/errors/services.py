"""Errors of the other AWS services modelhost speaks: CloudWatch, CloudWatch Logs and
Application Auto Scaling, each with that service's own code."""

from __future__ import annotations

from modelhost.errors.core import ModelhostError

# --- CloudWatch (rpc-v2-cbor and query protocols; awsQueryCompatible codes) -------------


class InvalidParameterValue(ModelhostError):
    code = "InvalidParameterValue"
    status = 400


class MissingParameter(ModelhostError):
    code = "MissingParameter"
    status = 400


class InvalidParameterCombination(ModelhostError):
    code = "InvalidParameterCombination"
    status = 400


class CloudWatchResourceNotFound(ModelhostError):
    """CloudWatch's ResourceNotFound (404), e.g. SetAlarmState on a missing alarm."""

    code = "ResourceNotFound"
    status = 404


# --- CloudWatch Logs (JSON 1.1, `Logs_20140328.*`) ------------------------------------------


class LogResourceNotFound(ModelhostError):
    """A log group or log stream that does not exist (CloudWatch Logs' code)."""

    code = "ResourceNotFoundException"
    status = 400


class InvalidParameterException(ModelhostError):
    """A CloudWatch Logs parameter that is malformed, out of range or in conflict."""

    code = "InvalidParameterException"
    status = 400


# --- Application Auto Scaling (JSON 1.1, `AnyScaleFrontendService.*`) ----------------------


class ObjectNotFoundException(ModelhostError):  # a target, policy or action that does not exist
    code = "ObjectNotFoundException"
    status = 400


class ConcurrentUpdateException(ModelhostError):  # another change to the target is in progress
    code = "ConcurrentUpdateException"
    status = 400


class FailedResourceAccessException(ModelhostError):  # the variant a target names is unreachable
    code = "FailedResourceAccessException"
    status = 400


class ScalingResourceNotFound(ModelhostError):
    """TagResource and friends on an ARN that names nothing (Application Auto Scaling)."""

    code = "ResourceNotFoundException"
    status = 400


class LimitExceededException(ModelhostError):  # too many policies or actions on a target
    code = "LimitExceededException"
    status = 400


class InvalidNextTokenException(ModelhostError):  # a NextToken this API did not hand out
    code = "InvalidNextTokenException"
    status = 400
