"""Shadow captures and their report.

Each mirrored request is one JSON line in
`<home>/shadow/<endpoint>/<shadow-variant>/<YYYY>/<MM>/<DD>/<HH>.jsonl` (UTC hours) with
both sides of the pair: variant, status (None when there was no answer), latency in µs,
content type and body (utf-8 text, or base64 with `"encoding": "base64"`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from pathlib import Path
from typing import Any


def capture_dir(home: Path, endpoint: str) -> Path:
    return home / "shadow" / endpoint


def capture_path(home: Path, endpoint: str, shadow: str, when: float) -> Path:
    t = time.gmtime(when)
    return (
        capture_dir(home, endpoint)
        / shadow
        / f"{t.tm_year:04d}"
        / f"{t.tm_mon:02d}"
        / f"{t.tm_mday:02d}"
        / f"{t.tm_hour:02d}.jsonl"
    )


def side(
    variant: str, status: int | None, latency_us: float, content_type: str | None, body: bytes
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "variant": variant,
        "status": status,
        "latency_us": round(latency_us, 1),
        "content_type": content_type,
    }
    try:
        out["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        out["body"] = base64.b64encode(body).decode("ascii")
        out["encoding"] = "base64"
    return out


def append_pair(path: Path, record: dict[str, Any]) -> None:
    """One small synchronous append (a single write of one line to an O_APPEND file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(line)


def _body(s: dict[str, Any]) -> bytes | None:
    body = s.get("body")
    if body is None:
        return None
    if s.get("encoding") == "base64":
        try:
            return base64.b64decode(body)
        except (binascii.Error, ValueError):
            return None
    return str(body).encode("utf-8")


_SPLIT = re.compile(r"[,\s]+")


def _flatten(value: Any, out: list[float]) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        out.append(float(value))
        return True
    if isinstance(value, list):
        return all(_flatten(v, out) for v in value) if value else True
    if isinstance(value, dict):
        return all(_flatten(v, out) for v in value.values()) if value else True
    return True  # strings and nulls are skipped: "numbers anywhere"


def parse_numbers(body: bytes | None) -> list[float] | None:
    """The numbers in a body: JSON (numbers anywhere, flattened) or CSV / newline
    separated values. None when it does not parse or holds no number."""
    if body is None:
        return None
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text:
        return None
    out: list[float] = []
    try:
        _flatten(json.loads(text), out)
    except ValueError:
        out = []
        try:
            out = [float(x) for x in _SPLIT.split(text) if x]
        except ValueError:
            return None
    if not out or not all(math.isfinite(x) for x in out):
        return None
    return out


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def _failed(s: dict[str, Any]) -> bool:
    status = s.get("status")
    return status is None or int(status) >= 400


def read_pairs(home: Path, endpoint: str, shadow: str) -> list[dict[str, Any]]:
    pairs = []
    for path in sorted((capture_dir(home, endpoint) / shadow).rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    pairs.append(json.loads(line))
                except ValueError:
                    continue  # a torn last line
    return pairs


def variant_report(pairs: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    exact = numeric_ok = numeric_n = unparsed = 0
    prod_lat: list[float] = []
    shadow_lat: list[float] = []
    prod_err = shadow_err = 0
    for pair in pairs:
        p, s = pair["production"], pair["shadow"]
        pb, sb = _body(p), _body(s)
        if pb is not None and pb == sb:
            exact += 1
        pn, sn = parse_numbers(pb), parse_numbers(sb)
        if pn is None or sn is None:
            unparsed += 1
        else:
            numeric_n += 1
            if len(pn) == len(sn) and all(
                abs(a - b) <= tolerance for a, b in zip(pn, sn, strict=True)
            ):
                numeric_ok += 1
        prod_err += _failed(p)
        shadow_err += _failed(s)
        if p.get("status") is not None:
            prod_lat.append(float(p["latency_us"]))
        if s.get("status") is not None:
            shadow_lat.append(float(s["latency_us"]))
    n = len(pairs)

    def rate(k: int, total: int) -> float | None:
        return k / total if total else None

    return {
        "Pairs": n,
        "ExactAgreement": rate(exact, n),
        "NumericAgreement": rate(numeric_ok, numeric_n),
        "NumericCompared": numeric_n,
        "NumericUnparsed": unparsed,
        "Tolerance": tolerance,
        "Production": {
            "LatencyP50Us": _percentile(prod_lat, 0.5),
            "LatencyP99Us": _percentile(prod_lat, 0.99),
            "ErrorRate": rate(prod_err, n),
        },
        "Shadow": {
            "LatencyP50Us": _percentile(shadow_lat, 0.5),
            "LatencyP99Us": _percentile(shadow_lat, 0.99),
            "ErrorRate": rate(shadow_err, n),
        },
    }


def report(home: Path, endpoint: str, tolerance: float) -> dict[str, Any]:
    """Per shadow variant that has captures."""
    root = capture_dir(home, endpoint)
    variants = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return {
        "EndpointName": endpoint,
        "ShadowVariants": [
            {"VariantName": v, **variant_report(read_pairs(home, endpoint, v), tolerance)}
            for v in variants
        ],
    }
