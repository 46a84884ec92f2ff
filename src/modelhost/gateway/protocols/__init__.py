"""Wire protocols of AWS query-compatible services (CloudWatch): rpc-v2-cbor, JSON 1.0
and query, all driven by botocore's service model so members and types match boto3."""
