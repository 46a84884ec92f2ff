"""Authentication (SigV4), access keys with roles, the policy, and the request guard."""
