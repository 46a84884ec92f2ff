"""Application Auto Scaling for endpoint variants: pure policies, the API, the loop."""
