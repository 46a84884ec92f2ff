"""Child processes for benchmarks: start in their own group, stop surely, count their CPU."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelhost.testing.server import free_port as free_port  # re-exported

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Managed:
    """A server started in its own session so that it and all its children can be stopped."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_http_ok(self, url: str, timeout_s: float) -> None:
        """Poll `url` until it answers 200; fail early if the process exits."""
        deadline = time.monotonic() + timeout_s
        while True:
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(url, timeout=2) as response,
            ):
                if response.status == 200:
                    return
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited (code {self.process.returncode}) before {url} "
                    f"answered 200; log {self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name}: {url} did not answer 200 within {timeout_s:.0f} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def stop(self, timeout_s: float = 40.0) -> int | None:
        """SIGTERM the leader, wait, then SIGKILL the whole group (children included)."""
        try:
            # modelhost's instances run in sessions of their own and escape killpg; they
            # exit by themselves within ~2 s of their gateway.
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    print(f"  {self.name} ignored SIGTERM for {timeout_s:.0f} s; SIGKILL")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            return self.process.returncode
        finally:
            self._log.close()


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) of a live process, from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # After "pid (comm) ": state ppid ... utime(14th overall) stime(15th overall)
    return int(fields[1]), int(fields[11]) + int(fields[12])


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and every live descendant."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents[int(entry)], ticks[int(entry)] = stat
    total = 0
    for pid, tick in ticks.items():
        node = pid
        for _ in range(64):  # bounded walk up the tree
            if node == root:
                total += tick
                break
            parent = parents.get(node)
            if parent is None or parent == node or parent == 0:
                break
            node = parent
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all processes on this machine have used since boot (from /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    # cpu user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    values = [int(v) for v in first[1:9]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS


def busy_elsewhere_pct(sample_s: float = 1.0) -> float:
    """CPU in use on the machine over `sample_s`, in percent of one core."""
    before = machine_busy_seconds()
    time.sleep(sample_s)
    return (machine_busy_seconds() - before) / sample_s * 100
