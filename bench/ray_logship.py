"""What shipping an instance's output costs (fleet/ray/logship.py), without Ray, same run.

    python bench/ray_logship.py [--mb 200] [--rates 0.5,2,8] [--seconds 5] [--rounds 3]

1. Full speed: a process prints `--mb` MB of 100-byte lines as fast as it can (a) into a
   file, as an instance on a node that sees the gateway's log file does, and (b) into a
   pipe pumped into a `LogBuffer` (as the actor does) that a reader drains continuously
   into a file, with no cap: seconds and MB/s of each, and their ratio (the pipe and pump
   against the kernel's file writes).
2. As the gateway pulls: a process prints at each of `--rates` MB/s for `--seconds`; the
   reader pulls one batch (at most `SHIP_BYTES`) per `--check-s` (the health check
   interval, 2 s by default) from a buffer of `--cap-mib` (`ray_log_buffer_bytes`):
   bytes dropped.

The pulls here are in-process calls: a real pull is one Ray call (~1 ms). Medians over
`--rounds`. The machine is shared: read ratios and drop counts, not absolute figures.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import format_machine_info, machine_info
from modelhost.fleet.ray.logship import SHIP_BYTES, LogBuffer, append_batch

LINE_BYTES = 100
FAST = "import sys\nline = 'x' * 99 + '\\n'\nfor _ in range({lines}):\n    sys.stdout.write(line)\n"
PACED = (
    "import sys, time\n"
    "line = 'x' * 99 + '\\n'\n"
    "per_tick = max(1, int({rate_mb} * 1e6 / 100 / 100))\n"  # 100 ticks a second
    "start = time.monotonic()\n"
    "for tick in range(int({seconds} * 100)):\n"
    "    sys.stdout.write(line * per_tick)\n"
    "    sys.stdout.flush()\n"
    "    time.sleep(max(0.0, start + (tick + 1) / 100 - time.monotonic()))\n"
)


def _direct(path: Path, script: str) -> float:
    started = time.perf_counter()
    with open(path, "ab") as out:
        subprocess.run([sys.executable, "-c", script], stdout=out, check=True)
    return time.perf_counter() - started


def _shipped(path: Path, script: str, cap_bytes: int, check_s: float) -> tuple[float, int]:
    """Seconds until the last line is in the file, and bytes dropped. `check_s` 0: drain
    continuously."""
    buffer = LogBuffer(cap_bytes)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    buffer.follow(proc.stdout)
    dropped, since = 0, 0
    while True:
        batch = buffer.read(since, SHIP_BYTES)
        append_batch(path, batch, "bench")
        dropped += batch.dropped_bytes
        since = batch.end
        if batch.closed:
            break
        if check_s:
            time.sleep(check_s)
    proc.wait()
    return time.perf_counter() - started, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=200.0)
    parser.add_argument("--rates", default="0.5,2,8", help="MB/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--check-s", type=float, default=2.0)
    parser.add_argument("--cap-mib", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(format_machine_info(machine_info()))
    fast = FAST.format(lines=int(args.mb * 1e6 / LINE_BYTES))
    direct, piped = [], []
    with tempfile.TemporaryDirectory(prefix="mh-bench-logship-") as tmp:
        for i in range(args.rounds):
            direct.append(_direct(Path(tmp) / f"direct-{i}.log", fast))
            piped.append(_shipped(Path(tmp) / f"piped-{i}.log", fast, 2**40, 0.0)[0])
        d, p = statistics.median(direct), statistics.median(piped)
        print(f"full speed, {args.mb:g} MB: file {d:.2f} s ({args.mb / d:.0f} MB/s), ", end="")
        print(f"pipe + buffer {p:.2f} s ({args.mb / p:.0f} MB/s), ratio {p / d:.2f}")
        print(f"pulls of {SHIP_BYTES / 2**20:g} MiB every {args.check_s:g} s, ", end="")
        print(f"buffer {args.cap_mib:g} MiB, {args.seconds:g} s of output:")
        for rate in (float(r) for r in args.rates.split(",")):
            paced = PACED.format(rate_mb=rate, seconds=args.seconds)
            runs = [
                _shipped(
                    Path(tmp) / f"paced-{rate}-{i}.log",
                    paced,
                    int(args.cap_mib * 2**20),
                    args.check_s,
                )
                for i in range(args.rounds)
            ]
            total = int(rate * 1e6 * args.seconds)
            print(f"  {rate:g} MB/s: bytes dropped of ~{total}: {[r[1] for r in runs]}")


if __name__ == "__main__":
    main()
