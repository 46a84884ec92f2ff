"""Edge packages: a compiled model, its manifest and a standard-library server in a folder.

`package(model_dir, out)` turns a compiled artifact (the output of a compilation job, its
marker `modelhost-compiled.json` beside `model.so`) into a folder that runs with
`python3 serve.py --port N` on a machine with nothing installed, and a `.tar.gz` of it.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from importlib import resources
from pathlib import Path
from typing import Any

from modelhost import __version__
from modelhost.compile.sources import CompileError
from modelhost.frameworks.compiled import LIBRARY, MARKER, read_marker
from modelhost.frameworks.errors import ModelLoadError

# What the manifest carries from the compiled model's marker.
_FROM_MARKER = (
    "source_framework",
    "num_feature",
    "num_output",
    "input_dtype",
    "cast_float32",
    "output",
    "classes",
    "input_shape",
    "model_digest",
    "target_device",
)

README = """\
modelhost edge package
======================

Serve:     python3 serve.py --port 8080          (any Python >= 3.8, no packages needed)
Check:     curl localhost:8080/ping
Predict:   curl -H 'Content-Type: text/csv' --data-binary '1,2,3,...' localhost:8080/invocations

manifest.json says what the model takes and answers. model.so is compiled for {arch};
on another CPU, serve.py rebuilds it from src/ with the machine's C compiler (cc).
Data capture (store-and-forward): serve.py --capture-to URL, with AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY set to a modelhost key when the gateway has authentication on.
"""


def manifest(marker: dict[str, Any], capture_to: str | None) -> dict[str, Any]:
    """The package's manifest.json: digest, input shape, content types, versions."""
    doc = {key: marker.get(key) for key in _FROM_MARKER}
    doc.update(
        {
            "library": LIBRARY,
            "content_types": ["text/csv", "application/json"],
            "accept": ["text/csv", "application/json"],
            "modelhost_version": __version__,
            "compiled_with_modelhost_version": marker.get("modelhost_version"),
        }
    )
    if capture_to:
        doc["capture_to"] = capture_to
    return doc


def package(model_dir: Path, out: Path, capture_to: str | None = None) -> Path:
    """Write the package into `out` (created; must be empty or absent); returns the tar.gz."""
    try:
        marker = read_marker(model_dir)
    except ModelLoadError as exc:
        raise CompileError(f"Not a compiled model: {exc}") from None
    if not (model_dir / LIBRARY).is_file():
        targets = marker.get("targets", {})
        reason = targets.get("c", {}).get("Reason", "the C form was not built")
        raise CompileError(
            f"This compiled model has no native library ({reason}); an edge package needs "
            "one, since the edge server runs with the standard library only"
        )
    if out.exists() and any(out.iterdir()):
        raise CompileError(f"{out} is not empty: give a new folder to --out")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_dir / LIBRARY, out / LIBRARY)
    if (model_dir / "src").is_dir():
        shutil.copytree(model_dir / "src", out / "src")
    server = resources.files("modelhost.compile").joinpath("edge_serve.py").read_text()
    (out / "serve.py").write_text(server)
    (out / "manifest.json").write_text(json.dumps(manifest(marker, capture_to), indent=2))
    (out / MARKER).write_text(json.dumps(marker, indent=2))
    import platform

    (out / "README.txt").write_text(README.format(arch=platform.machine()))
    archive = out.with_name(out.name + ".tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(out, arcname=out.name)
    return archive
