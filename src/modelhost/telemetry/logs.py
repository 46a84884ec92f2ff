"""CloudWatch Logs names for instance logs: log groups, streams and their ARNs.

Each instance writes its stdout/stderr to a file under the logs directory (`fleet.launch`
lays them out as `<endpoint>/<variant>/[<container>/]<instance-id>.log`, and a transform
job's instances under `transform-<job>/instances/`). These functions map those files onto
the names SageMaker uses in CloudWatch Logs:

- endpoints: group `/aws/sagemaker/Endpoints/<endpoint>`, stream `<variant>/<instance-id>`
  (a container of a multi-container endpoint: `<variant>/<instance-id>/<container>`);
- transform jobs: group `/aws/sagemaker/TransformJobs`, stream `<job>/<instance-id>`.

Endpoint, variant and job names cannot contain `/` (SageMaker's name pattern), so the
mapping is unambiguous except for an endpoint called `transform-<x>` with a variant called
`instances`, which reads as transform job `<x>`.
"""

from __future__ import annotations

from pathlib import Path

ENDPOINT_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
TRANSFORM_GROUP = "/aws/sagemaker/TransformJobs"
# How `jobs` names a transform job's fleet (its log directory) and its one variant.
TRANSFORM_FLEET_PREFIX = "transform-"
TRANSFORM_VARIANT = "instances"
LOG_SUFFIX = ".log"


def endpoint_group(endpoint: str) -> str:
    return ENDPOINT_GROUP_PREFIX + endpoint


def endpoint_stream(variant: str, instance_id: str, container: str | None = None) -> str:
    """The stream of one instance of a variant (SageMaker's `<variant>/<instance-id>`)."""
    stream = f"{variant}/{instance_id}"
    return f"{stream}/{container}" if container else stream


def transform_stream(job: str, instance_id: str, container: str | None = None) -> str:
    stream = f"{job}/{instance_id}"
    return f"{stream}/{container}" if container else stream


def log_group_arn(region: str, account_id: str, group: str) -> str:
    """The ARN DescribeLogGroups reports as `logGroupArn` (no trailing `:*`)."""
    return f"arn:aws:logs:{region}:{account_id}:log-group:{group}"


def log_stream_arn(region: str, account_id: str, group: str, stream: str) -> str:
    """`arn:aws:logs:<region>:<account>:log-group:<group>:log-stream:<stream>`."""
    return f"{log_group_arn(region, account_id, group)}:log-stream:{stream}"


def instance_log_stream_arn(
    region: str,
    account_id: str,
    endpoint: str,
    variant: str,
    instance_id: str,
    container: str | None = None,
) -> str:
    """The stream ARN of an endpoint instance's log, for the `LogStreamArn` of a ModelError
    (`container`: the host name of a multi-container endpoint's member, whose own
    instance id is the member's)."""
    return log_stream_arn(
        region,
        account_id,
        endpoint_group(endpoint),
        endpoint_stream(variant, instance_id, container),
    )


def log_stream_arn_for_file(
    region: str, account_id: str, logs_dir: Path, log_path: Path
) -> str | None:
    """The stream ARN of the instance that writes `log_path` (an `Instance.log_path`, which
    for a container group is the member that failed), or None outside `logs_dir`."""
    names = stream_for_path(logs_dir, log_path)
    return log_stream_arn(region, account_id, *names) if names else None


def group_from_arn(identifier: str) -> str:
    """A log group name from a `logGroupIdentifier`: a name, or an ARN with or without `:*`."""
    if not identifier.startswith("arn:"):
        return identifier
    _, _, rest = identifier.partition(":log-group:")
    return rest[:-2] if rest.endswith(":*") else rest


def stream_for_path(logs_dir: Path, path: Path) -> tuple[str, str] | None:
    """(group, stream) of an instance log file under `logs_dir`, or None if it is none."""
    try:
        parts = path.relative_to(logs_dir).parts
    except ValueError:
        return None
    if len(parts) not in (3, 4) or not parts[-1].endswith(LOG_SUFFIX):
        return None
    instance_id = parts[-1][: -len(LOG_SUFFIX)]
    fleet, variant = parts[0], parts[1]
    container = parts[2] if len(parts) == 4 else None
    if not instance_id:
        return None
    if fleet.startswith(TRANSFORM_FLEET_PREFIX) and variant == TRANSFORM_VARIANT:
        job = fleet[len(TRANSFORM_FLEET_PREFIX) :]
        return TRANSFORM_GROUP, transform_stream(job, instance_id, container)
    return endpoint_group(fleet), endpoint_stream(variant, instance_id, container)


def group_endpoint(group: str) -> str | None:
    """The endpoint a log group belongs to (for endpoint-scoped access keys), else None."""
    if group.startswith(ENDPOINT_GROUP_PREFIX):
        return group[len(ENDPOINT_GROUP_PREFIX) :] or None
    return None
