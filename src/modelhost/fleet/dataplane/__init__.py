"""The invocation data plane: every path that invokes an instance goes through here.

`core.Invoker` picks an instance (through `routing`), sends over the keep-alive client,
retries what never reached an instance and maps failures to `errors.py`. One small
module per endpoint kind builds on it (`single`, `multimodel`, `pipeline`); `shadow`
mirrors copies to shadow variants; `plane.DataPlane` is what a transport (the gateway's
runtime API) calls. Batch transform (`jobs/invoke.py`) uses the core directly. What the
request path needs from the rest of the system is injected (`ports`), never the
controller.
"""
