"""The compiler process: `python -m modelhost.compile.worker REQUEST.json RESULT.json`.

A compilation runs in its own process so StopCompilationJob and MaxRuntimeInSeconds can
end it at once, a crash in native code cannot take the gateway down, and the compilers'
console chatter lands in the job's log rather than the server's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tarfile
from pathlib import Path
from typing import Any

from modelhost.compile.build import CompileRequest, compile_model
from modelhost.compile.sources import CompileError

ARTIFACT = "artifact.tar.gz"


def pack(out_dir: Path, archive: Path) -> str:
    """Tar `out_dir`'s contents (as SageMaker's model.tar.gz: paths relative to its root);
    returns the archive's SHA-256."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(out_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(out_dir)), recursive=False)
    digest = hashlib.sha256()
    with open(archive, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Compile and pack; the result says COMPLETED with the report, or FAILED and why."""
    work = Path(request["WorkDir"])
    req = CompileRequest(
        model_dir=Path(request["ModelDir"]),
        framework=request["Framework"],
        input_shape=request.get("InputShape"),
        out_dir=work / "out",
        timeout_s=float(request["TimeoutSeconds"]),
        digest=request.get("SourceDigest", ""),
        target_device=request.get("TargetDevice", ""),
    )
    try:
        report = compile_model(req)
    except CompileError as exc:
        return {"Status": "FAILED", "FailureReason": str(exc)}
    digest = pack(req.out_dir, work / ARTIFACT)
    return {
        "Status": "COMPLETED",
        "Report": report,
        "Artifact": str(work / ARTIFACT),
        "Digest": digest,
    }


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    request = json.loads(Path(argv[1]).read_text())
    result = run(request)
    tmp = Path(argv[2] + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
