"""Split py-spy samples of the gateway into the stages of an invocation.

`py-spy record --format raw` writes one line per distinct stack: `frame;frame;... count`,
root first, each frame `function (file:line)`. A sample counts for the stage of its
deepest frame that matches a rule (so time in the hop's client called from the data
plane is the hop's, not the data plane's). Samples whose Python stack ends in the event
loop's own `run` are uvloop's C code and the kernel: reading sockets, epoll, scheduling
callbacks. A socket write is counted where Python called it (the hop's client, or the
answer's write).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

# (stage, substrings of a frame), checked from the leaf upwards; the first match wins.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("metrics", ("telemetry/metrics.py", "telemetry/series.py", "variant_counts.py")),
    ("capture", ("telemetry/capture.py",)),
    ("hop (gateway → instance client)", ("fleet/http1.py",)),
    ("routing", ("routing/choose.py", "routing/table.py")),
    ("data plane", ("fleet/dataplane/",)),
    ("auth (guard, SigV4, policy)", ("gateway/auth/",)),
    ("fast path (gateway/fastpath.py)", ("gateway/fastpath.py",)),
    (
        "runtime API (validate, encode)",
        ("gateway/runtime_api.py", "gateway/errors.py", "gateway/asgi.py", "uuid.py"),
    ),
    ("dispatch (gateway/app.py)", ("gateway/app.py",)),
    ("answer written to the client (send syscall)", ("container/http_protocol.py",)),
    (
        "ASGI cycle (uvicorn), proxy-headers middleware",
        ("RequestResponseCycle", "run_asgi", "proxy_headers.py"),
    ),
    (
        "HTTP parse (uvicorn protocol, limits)",
        ("httptools_impl.py", "http_limits.py", "flow_control.py"),
    ),
    (
        "asyncio tasks, futures, events",
        ("asyncio/locks.py", "asyncio/tasks.py", "asyncio/futures.py", "asyncio/events.py"),
    ),
)
LOOP = "event loop (uvloop C: socket reads, epoll, callbacks)"
THREADS = "other threads (metric flushes, capture writer)"
OTHER = "other"


def stage_of(stack: str) -> str:
    frames = stack.split(";")
    if frames and "threading.py" in frames[0]:
        return THREADS
    for frame in reversed(frames):
        for stage, needles in RULES:
            if any(needle in frame for needle in needles):
                return stage
    leaf = frames[-1] if frames else ""
    if "asyncio/runners.py" in leaf or "run_until_complete" in leaf or "run_forever" in leaf:
        return LOOP
    return OTHER


def split(raw: Path) -> Counter[str]:
    """Samples per stage in a py-spy raw file."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stage_of(stack)] += int(count)
    return counts


def table(counts: Counter[str], cpu_us_per_request: float) -> str:
    """Markdown rows: stage, share of samples, µs per request (the share of the
    process's CPU time per request)."""
    total = sum(counts.values()) or 1
    lines = ["| stage | share of samples | µs CPU per request |", "|---|---|---|"]
    for stage, n in counts.most_common():
        share = n / total
        lines.append(f"| {stage} | {share:.1%} | {share * cpu_us_per_request:.1f} |")
    lines.append(f"| total ({total} samples) | 100% | {cpu_us_per_request:.1f} |")
    return "\n".join(lines)
