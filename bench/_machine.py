"""What machine a benchmark ran on: CPU, cores, memory, kernel, Python and library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_bytes() -> int | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def wrk_version() -> str | None:
    path = shutil.which("wrk")
    if path is None:
        return None
    result = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    first = (result.stdout or result.stderr).splitlines()
    return first[0].strip() if first else None


def machine_info() -> dict[str, Any]:
    """Facts that make a benchmark result readable later, as a JSON-friendly dict."""
    memory = memory_bytes()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "kernel": f"{platform.system()} {platform.release()}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "xgboost": package_version("xgboost"),
        "numpy": package_version("numpy"),
        "modelhost": package_version("modelhost"),
        "boto3": package_version("boto3"),
        "wrk": wrk_version(),
    }


def format_machine_info(info: dict[str, Any]) -> str:
    lines = [
        f"cpu:      {info['cpu_model']} ({info['cpu_count']} cores, {info['cpus_usable']} usable)",
        f"memory:   {info['memory_gib']} GiB",
        f"kernel:   {info['kernel']}  (load average {info['load_average']})",
        f"python:   {info['python']}",
        f"versions: xgboost {info['xgboost']}, numpy {info['numpy']}, "
        f"modelhost {info['modelhost']}, boto3 {info['boto3']}",
        f"wrk:      {info['wrk']}",
    ]
    if info.get("mlserver"):
        lines.append(f"mlserver: {info['mlserver']}")
    return "\n".join(lines)
