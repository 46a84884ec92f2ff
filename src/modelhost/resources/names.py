"""Name patterns and ARNs as SageMaker defines them."""

from __future__ import annotations

import re

# Control-plane names: endpoint, endpoint config, variant (reference §7).
ENDPOINT_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MODEL_NAME_RE = re.compile(r"^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$")
# Runtime URI label and TargetVariant (no length in the pattern; ≤63 enforced separately).
RUNTIME_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


def arn(region: str, account_id: str, kind: str, name: str) -> str:
    """`arn:aws:sagemaker:{region}:{account}:{kind}/{name}`; real ARNs lower-case the name."""
    return f"arn:aws:sagemaker:{region}:{account_id}:{kind}/{name.lower()}"


def runtime_name_error(value: str, member: str) -> str | None:
    """Why `value` is not a valid runtime name (endpoint, TargetVariant, container host
    name) in SageMaker's words, or None when it is."""
    rule = None
    if len(value) > 63:
        rule = "Member must have length less than or equal to 63"
    elif not RUNTIME_NAME_RE.match(value):
        rule = "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*"
    if rule is None:
        return None
    return (
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {rule}"
    )
