"""Where edge devices' data capture lands: SageMaker's capture layout under the home.

An edge server (`modelhost edge package --capture-to URL`) uploads its buffered JSON Lines
files; each is stored as `<home>/data-capture/edge/<name>/<yyyy>/<mm>/<dd>/<hh>/<file>`,
the layout SageMaker uses under a capture's S3 prefix, so the same analysis reads both.
A file uploaded twice (a retry after a lost answer) replaces itself: no record doubles.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from modelhost.errors import ValidationException

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.jsonl$")


class EdgeCaptures:
    """Stores and lists capture files uploaded by edge servers."""

    def __init__(self, home: Path) -> None:
        self.root = home / "data-capture" / "edge"

    def put(self, name: str, file_name: str, data: bytes, now_s: float | None = None) -> int:
        """Store one uploaded file; returns its record count."""
        if not _NAME.match(name):
            raise ValidationException(
                f"Edge capture name '{name}' must be 1-63 letters, digits or hyphens."
            )
        if not _FILE.match(file_name):
            raise ValidationException(
                f"Capture file name '{file_name}' must be letters, digits, '_', '.', '-' "
                "ending in .jsonl."
            )
        records = 0
        for i, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                raise ValidationException(f"Line {i} of {file_name} is not JSON.") from None
            if not isinstance(event, dict) or "captureData" not in event:
                raise ValidationException(
                    f"Line {i} of {file_name} is not a data-capture record (no captureData)."
                )
            records += 1
        hour = time.strftime("%Y/%m/%d/%H", time.gmtime(now_s or time.time()))
        # The file's name carries its creation time in ms: keep it in that hour's folder.
        stamp = file_name.split("-", 1)[0]
        if stamp.isdigit():
            hour = time.strftime("%Y/%m/%d/%H", time.gmtime(int(stamp) / 1000))
        target = self.root / name / hour / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{file_name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return records

    def list(self, name: str) -> dict[str, Any]:
        files = []
        total = 0
        for path in sorted((self.root / name).rglob("*.jsonl")):
            count = sum(1 for line in path.read_bytes().splitlines() if line.strip())
            total += count
            files.append({"Path": str(path.relative_to(self.root / name)), "Records": count})
        return {"Name": name, "Files": files, "Records": total}
