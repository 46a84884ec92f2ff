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
