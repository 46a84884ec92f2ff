"""The instance process ("container"): the SageMaker container contract over HTTP.

`python -m modelhost.container` serves GET /ping, POST /invocations and
GET /execution-parameters for one model; `config` documents the environment it reads,
`app` the HTTP contract, `server` the process lifecycle.
"""
