"""The compiled tier: tree models compiled to native code in the background, then served by it.

Why: see `modelhost.compile.tier`. In short, one XGBoost call costs 20–40 µs however few
rows it scores, the same trees compiled to C a few µs, and an instance that predicts
request by request (a multi-model endpoint whose requests name different models, or
batching off) pays that cost every time.

How: with `MH_INSTANCE_COMPILE_TREES=on` (or `auto`, the gateway's default, which first
checks the machine has a C compiler and Treelite, and otherwise stays off with one log
line), each model a runtime with a `tree_framework`
loads is offered here. One thread per instance process takes them in turn:

1. the key is a digest of the model directory's files, so the same model (on another
   endpoint, after an eviction, in another worker process) is compiled once per machine;
2. under a lock file on that key, a child process (`python -m modelhost.compile.tier`,
   at a lower CPU priority) compiles it into `<cache dir>/<key>` unless a result is there;
3. the compiled library is loaded and the runtime switches to it only if its own predict
   answers the kept check rows with the same bits (`Runtime.attach_compiled`).

Nothing waits for it: requests are served by the framework meanwhile, and a model that
cannot be compiled (no C compiler, a model Treelite does not read, answers that are not
the same bits) stays on its framework, with one log line saying why. `state(label)` says
the same to the instance's `/models` listing and `GET /modelhost/stats`
(container/instance_stats.py): `pending`, `compiled` (with what the compiler measured),
`failed` (with the reason) or `off`.

Bounded: the cache dir has the artifact cache's layout (`store/cache_bound.py`: an entry
`<key>/` is complete once `<key>.complete` exists, built under `.locks/<key>.lock`). With
`MH_INSTANCE_COMPILE_CACHE_BYTES` the instance leases the entry of each compiled form it
uses, and evicts least recently used unleased entries (failed ones too) after it compiles
one; the gateway's periodic pass does the same. `release` (a multi-model instance
unloading a model) dlcloses the model's library and drops its lease.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import queue
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelhost.container.config import InstanceConfig
    from modelhost.frameworks.base import Runtime
    from modelhost.frameworks.compiled_predictor import CompiledPredictor
    from modelhost.store.cache_bound import Lease

log = logging.getLogger("modelhost.container")

DIGEST_VERSION = b"modelhost-compiled-tier-2\0"
OFF: dict[str, Any] = {"state": "off"}  # shared, never mutated
PENDING: dict[str, Any] = {"state": "pending"}


@dataclass(frozen=True)
class TierConfig:
    """The instance's `MH_INSTANCE_COMPILE_*` variables (container/config.py)."""

    enabled: bool = False
    auto: bool = False  # only where the machine can compile (`unavailable`), quietly else
    cache_dir: Path = Path.home() / ".modelhost" / "compiled"
    timeout_s: float = 600.0
    max_rows: int = 0  # 0: what the compiler measured
    cache_bytes: int = 0  # >0: the cache's budget (store/cache_bound.py)

    @classmethod
    def of(cls, config: InstanceConfig) -> TierConfig:
        return cls(
            enabled=config.compile_trees,
            auto=config.compile_trees_auto,
            cache_dir=config.compile_cache_dir or cls.cache_dir,
            timeout_s=config.compile_timeout_s,
            max_rows=config.compile_max_rows,
            cache_bytes=config.compile_cache_bytes,
        )


def model_digest(model_dir: Path, framework: str) -> str:
    """A digest of every file under `model_dir` (names and bytes) and the framework."""
    digest = hashlib.sha256(DIGEST_VERSION + framework.encode() + b"\0")
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(model_dir)).encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()  # the bounded cache's keys are whole SHA-256 digests


class CompileTier:
    """Compiles the tree models an instance loads and attaches their compiled forms.

    `offer` is cheap and never blocks; the work happens on one daemon thread. `label`
    names the model in log lines (the TargetModel of a multi-model instance).
    """

    def __init__(self, config: TierConfig) -> None:
        self.config = config
        self._queue: queue.SimpleQueue[tuple[Runtime, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._off = False  # `auto` on a machine that cannot compile
        self._off_state: dict[str, Any] = OFF  # then with the reason
        self.attached = 0  # models switched to their compiled form (for tests and logs)
        # Attached forms by runtime, until `release`; the lock orders attach and release.
        self._forms: dict[Runtime, CompiledPredictor] = {}
        self._forms_lock = threading.Lock()
        # Per label: its state document, and the runtime (by id) it describes, so a model
        # unloaded and loaded again under the same label is not given the old one's fate.
        self._states: dict[str, tuple[int, dict[str, Any]]] = {}

    def state(self, label: str) -> dict[str, Any]:
        """`{"state": "off" | "pending" | "compiled" | "failed", ...}` of the model under
        `label` (`reason` when failed; `maxRows`, `nativeUs`, `compiledUs` when compiled)."""
        found = self._states.get(label)
        return OFF if found is None else found[1]

    def forget(self, label: str) -> None:
        """The model under `label` was unloaded: its state goes with it."""
        self._states.pop(label, None)

    def offer(self, runtime: Runtime, label: str) -> None:
        if not self.config.enabled or runtime.tree_framework is None:
            self._states.pop(label, None)
            return
        with self._lock:
            if self._off:
                self._states[label] = (id(runtime), self._off_state)
                return
            self._states[label] = (id(runtime), PENDING)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="modelhost-compile-tier", daemon=True
                )
                self._thread.start()
            self._queue.put((runtime, label))

    def release(self, runtime: Runtime) -> None:
        """`runtime` was unloaded and no call into it is in flight: dlclose its compiled
        library (the last load of a path unmaps it) and drop its lease on the cache entry."""
        with self._forms_lock:
            form = self._forms.pop(runtime, None)
        if form is not None:
            form.close()

    def close(self) -> None:
        """Stop the thread after the model it is on (the child it waits for is killed
        with the instance's process group)."""
        self._queue.put(None)

    def _run(self) -> None:
        if self.config.auto and (reason := unavailable()) is not None:
            log.info("the compiled tier is off on this machine: %s", reason)
            with self._lock:  # no more offers, and none left holding a runtime
                self._off = True
                self._off_state = {"state": "off", "reason": reason}
                for label, (owner, _) in list(self._states.items()):
                    self._states[label] = (owner, self._off_state)
                while not self._queue.empty():
                    self._queue.get_nowait()
            return
        while (item := self._queue.get()) is not None:
            runtime, label = item
            try:
                self._one(runtime, label)
            except Exception as exc:  # a bug here must not stop the next models' turn
                log.exception("the compiled tier failed on %s", label)
                self._set(runtime, label, _failed(f"{type(exc).__name__}: {exc}"))

    def _set(self, runtime: Runtime, label: str, doc: dict[str, Any]) -> None:
        found = self._states.get(label)
        if found is not None and found[0] == id(runtime):  # still the model offered
            self._states[label] = (found[0], doc)

    def _one(self, runtime: Runtime, label: str) -> None:
        model_dir, framework = runtime.model_dir, runtime.tree_framework
        if model_dir is None or framework is None:
            return  # unloaded while queued
        # Imported in the tier's thread: they bring numpy, which an instance does not import
        # before its model loads (container/loading.py).
        from modelhost.frameworks.compiled import MARKER
        from modelhost.frameworks.compiled_predictor import FAILED, CompiledPredictor

        held = self._compiled(model_dir, framework)
        if held is None:
            # Timed out, said above (not recorded on disk: the next load tries again).
            took = f"compiling took longer than {self.config.timeout_s:.0f} s"
            self._set(runtime, label, _failed(took))
            return
        folder = held.entry
        if not (folder / MARKER).is_file():
            held.close()  # failed, or not faster: the lease only marked its last use
            reason = json.loads((folder / FAILED).read_text()).get("reason", "")
            log.info("%s stays on %s: %s", label, runtime.name, reason or "no compiled form")
            self._set(runtime, label, _failed(reason or "no compiled form"))
            return
        predictor = CompiledPredictor.load(folder)
        if predictor is None:
            held.close()
            log.info("%s stays on %s: its compiled form is not faster", label, runtime.name)
            self._set(runtime, label, _failed("its compiled form is not faster"))
            return
        predictor.lease = held
        if self._attach(runtime, predictor):
            self.attached += 1
            self._set(runtime, label, _compiled_state(folder / MARKER, predictor.max_rows))
            log.info(
                "%s now predicts with its compiled form (%s; same bits on %d check rows, "
                "calls of up to %d rows)",
                label,
                folder,
                len(predictor.check_rows),
                predictor.max_rows,
            )
        elif runtime.model_dir is not None:
            log.warning(
                "%s stays on %s: its compiled form answers differently", label, runtime.name
            )
            self._set(runtime, label, _failed("its compiled form answers differently"))

    def _attach(self, runtime: Runtime, predictor: CompiledPredictor) -> bool:
        """Attach and keep `predictor` until `release`; closed at once when not attached
        (or when the model was unloaded meanwhile: nothing would release it)."""
        attached = False
        try:
            with self._forms_lock:
                if runtime.attach_compiled(predictor):
                    if runtime.model_dir is None:  # unloaded while it was checked
                        runtime.compiled = None
                    else:
                        self._forms[runtime] = predictor
                        attached = True
        finally:
            if not attached:
                predictor.close()
        return attached

    def _compiled(self, model_dir: Path, framework: str) -> Lease | None:
        """A lease on the tier folder of this model, compiled first if no process has yet;
        None when the compile timed out (or the entry kept being evicted)."""
        from modelhost.store import cache_bound

        root = self.config.cache_dir
        root.mkdir(parents=True, exist_ok=True)
        key = model_digest(model_dir, framework)
        folder = root / key
        for _ in range(3):  # evicted between its build and its lease: build it again
            with cache_bound.build_lock(root, key, wait=True):
                # Another worker or instance may have compiled it while this one waited.
                built = not (cache_bound.marker(root, key).exists() and folder.is_dir())
                if built and not self._compile(model_dir, framework, folder):
                    return None
            held = cache_bound.lease(root, folder)
            if held is not None:
                if built and self.config.cache_bytes > 0:
                    self._bound(root)
                return held
        return None

    def _bound(self, root: Path) -> None:
        from modelhost.store import cache_bound

        try:
            cache_bound.bound(root, self.config.cache_bytes)
        except OSError as exc:  # the new form is there: a failed eviction is only logged
            log.warning("compiled cache %s: eviction failed: %s", root, exc)

    def _compile(self, model_dir: Path, framework: str, folder: Path) -> bool:
        """Compile into `folder` and mark it complete (the build lock is held); False when
        it timed out."""
        argv = [sys.executable, "-m", "modelhost.compile.tier"]
        argv += [str(model_dir), framework, str(folder), str(self.config.timeout_s)]
        argv += [str(self.config.max_rows)]
        log.info("compiling %s to native code in the background", model_dir.name)
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self.config.timeout_s + 30,
            )
        except subprocess.TimeoutExpired:
            # Not recorded: a busy machine may be why, so the next load tries again.
            log.warning(
                "compiling %s took longer than %.0f s (MH_INSTANCE_COMPILE_TIMEOUT_S); "
                "it stays on its framework",
                model_dir.name,
                self.config.timeout_s,
            )
            return False
        from modelhost.frameworks.compiled import MARKER
        from modelhost.frameworks.compiled_predictor import FAILED
        from modelhost.store import cache_bound

        if proc.returncode != 0 and not (folder / FAILED).is_file():
            tail = " | ".join((proc.stderr or "").strip().splitlines()[-3:])
            _write_failed(folder, f"the compiler process exited with {proc.returncode}: {tail}")
        if not (folder / MARKER).is_file() and not (folder / FAILED).is_file():
            _write_failed(folder, "the compiler process left no result")
        cache_bound.marker(folder.parent, folder.name).touch()  # a failure is an entry too
        return True


def unavailable() -> str | None:
    """Why this machine cannot compile tree models (None: it can). The compile child
    (compile/native_c.py `c_compiler`) also takes $CC; `on` is the way to use only that."""
    missing = [name for name in ("treelite", "tl2cgen") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install treelite tl2cgen)"
    if not (shutil.which("gcc") or shutil.which("cc")):
        return "no C compiler (looked for gcc and cc; Debian: apt-get install gcc)"
    return None


def _failed(reason: str) -> dict[str, Any]:
    return {"state": "failed", "reason": reason}


def _compiled_state(marker: Path, max_rows: int) -> dict[str, Any]:
    """The `compiled` state with what the compiler measured (µs per call by batch rows;
    empty when `MH_INSTANCE_COMPILE_MAX_ROWS` fixed the size instead)."""
    try:
        tier = json.loads(marker.read_text()).get("tier") or {}
    except (OSError, ValueError):
        tier = {}
    return {
        "state": "compiled",
        "maxRows": max_rows,
        "nativeUs": tier.get("native_us") or {},
        "compiledUs": tier.get("compiled_us") or {},
    }


def _write_failed(folder: Path, reason: str) -> None:
    from modelhost.frameworks.compiled_predictor import FAILED

    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAILED).write_text(json.dumps({"reason": reason}))
