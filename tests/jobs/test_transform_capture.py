"""A transform job's DataCaptureConfig is refused until transform capture is written."""

from __future__ import annotations

import pytest

from modelhost.errors import ValidationException
from modelhost.jobs.requests import check_request


def test_transform_data_capture_is_refused_not_ignored() -> None:
    request = {
        "TransformJobName": "t",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "/d"}}
        },
        "TransformOutput": {"S3OutputPath": "/o"},
        "DataCaptureConfig": {"DestinationS3Uri": "s3://bucket/capture"},
    }
    with pytest.raises(ValidationException, match="DataCaptureConfig is not supported"):
        check_request(request)
    del request["DataCaptureConfig"]
    check_request(request)
