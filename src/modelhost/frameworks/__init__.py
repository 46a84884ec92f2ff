"""Built-in runtimes (one module each) and script mode.

`registry.select_runtime` picks one for a model directory; `base.Runtime` is the
contract a new framework implements. Framework libraries are imported lazily, inside
`Runtime.load`, so importing this package stays cheap.
"""
