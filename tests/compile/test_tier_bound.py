"""The compiled tier's cache is bounded and its libraries are released: leased entries are
kept, idle ones go least recently used first (failed ones too), and `release` dlcloses a
model's library once no other load of the same path is left (real compile children)."""

from __future__ import annotations

import hashlib
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.compile.tier import compile_for_tier
from modelhost.container.compile_tier import CompileTier, TierConfig, model_digest
from modelhost.container.config import InstanceConfig
from modelhost.container.loading import load_runtime, runtime_options
from modelhost.frameworks.base import Runtime, RuntimeOptions
from modelhost.frameworks.compiled import CompiledRuntime
from modelhost.store import cache_bound
from tests.tier_support import compiled_entry


def _runtime(artifact: Path, root: Path) -> Runtime:
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(artifact) as tar:
        tar.extractall(root, filter="data")
    return load_runtime("auto", root, RuntimeOptions())


def _wait(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _mapped(path: Path) -> bool:
    """Whether this process maps `path` (a library not dlclosed yet)."""
    return str(path) in Path("/proc/self/maps").read_text()


# --- the bound over a compiled dir (no compiler needed) -------------------------------


def test_bound_keeps_leased_entries_and_evicts_idle_ones_lru_first(tmp_path: Path) -> None:
    root = tmp_path / "compiled"
    now = time.time()
    oldest = compiled_entry(root, "oldest", 1000, now - 300)
    failed = compiled_entry(root, "failed", 100, now - 200, failed=True)
    leased = compiled_entry(root, "leased", 1000, now - 400)  # the oldest of all, but in use
    newest = compiled_entry(root, "newest", 1000, now - 100)
    held = cache_bound.lease(root, leased)
    assert held is not None
    try:
        done = cache_bound.bound(root, 2100)
        # LRU first: the oldest idle entry, then the failure record; the leased one stays.
        assert done.evicted == (oldest.name, failed.name)
        assert leased.is_dir() and newest.is_dir()
        assert not oldest.exists() and not failed.exists()
        assert not cache_bound.marker(root, oldest.name).exists()
        assert cache_bound.bound(root, 1).evicted == (newest.name,)
        assert leased.is_dir()  # over budget, but in use
    finally:
        held.close()
    assert cache_bound.bound(root, 1).evicted == (leased.name,)


def test_a_crashed_compile_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "compiled"
    key = hashlib.sha256(b"crashed").hexdigest()
    scratch = root / f".tmp-{key}-12345"  # compile/tier.py's work folder
    scratch.mkdir(parents=True)
    (scratch / "model.so").write_bytes(b"\0" * 10)
    unmarked = root / hashlib.sha256(b"unmarked").hexdigest()  # renamed, but never marked complete
    unmarked.mkdir()
    cache_bound.bound(root, 1 << 30)
    assert not scratch.exists() and not unmarked.exists()


def test_the_budgets_reach_the_instance_through_its_environment() -> None:
    env = {"MH_INSTANCE_COMPILE_CACHE_BYTES": "1234", "MH_INSTANCE_PACKAGES_CACHE_BYTES": "99"}
    config = InstanceConfig.from_env(env)
    assert TierConfig.of(config).cache_bytes == 1234
    assert runtime_options(config).packages_cache_bytes == 99
    unset = InstanceConfig.from_env({})
    assert TierConfig.of(unset).cache_bytes == 0 and unset.packages_cache_bytes == 0  # unbounded


# --- the tier: leases, the bound on write, release (real compile children) -------------


def test_release_dlcloses_and_the_pass_evicts_the_unloaded_models_entry(
    cases: dict[str, Any], tmp_path: Path
) -> None:
    config = TierConfig(enabled=True, cache_dir=tmp_path / "compiled", max_rows=64, cache_bytes=1)
    tier = CompileTier(config)
    binary = _runtime(cases["xgb-binary"].artifact, tmp_path / "binary")
    reg = _runtime(cases["xgb-reg"].artifact, tmp_path / "reg")
    assert binary.model_dir is not None and reg.model_dir is not None
    rows = np.ascontiguousarray(np.random.default_rng(3).normal(size=(20, 8)), dtype=np.float32)
    expected = {id(r): r.predict(rows) for r in (binary, reg)}
    binary_lib = config.cache_dir / model_digest(binary.model_dir, "XGBOOST") / "model.so"
    reg_lib = config.cache_dir / model_digest(reg.model_dir, "XGBOOST") / "model.so"
    tier.offer(binary, "binary")
    tier.offer(reg, "reg")
    _wait(lambda: tier.attached == 2)
    # A budget of one byte: compiling reg evicted nothing, as binary's entry is leased.
    assert binary_lib.is_file() and reg_lib.is_file()
    assert _mapped(binary_lib) and _mapped(reg_lib)
    binary.unload()
    tier.release(binary)
    assert not _mapped(binary_lib)  # dlclosed: the last load of that path
    assert cache_bound.bound(config.cache_dir, 1).evicted == (binary_lib.parent.name,)
    assert not binary_lib.exists() and reg_lib.is_file()
    assert np.array_equal(reg.predict(rows), expected[id(reg)])  # still the compiled form
    assert reg.compiled is not None
    reg.unload()
    tier.release(reg)
    assert not _mapped(reg_lib)
    tier.close()


def test_the_same_model_loaded_twice_shares_its_library_until_both_release(
    cases: dict[str, Any], tmp_path: Path
) -> None:
    config = TierConfig(enabled=True, cache_dir=tmp_path / "compiled", max_rows=64, cache_bytes=1)
    tier = CompileTier(config)
    a = _runtime(cases["lightgbm"].artifact, tmp_path / "a")
    b = _runtime(cases["lightgbm"].artifact, tmp_path / "b")
    assert a.model_dir is not None
    library = config.cache_dir / model_digest(a.model_dir, "LIGHTGBM") / "model.so"
    rows = np.ascontiguousarray(np.random.default_rng(4).normal(size=(10, 8)))
    expected = b.predict(rows)
    tier.offer(a, "a")
    tier.offer(b, "b")
    _wait(lambda: tier.attached == 2)
    a.unload()
    tier.release(a)
    assert _mapped(library)  # b's load of the same path keeps it
    assert np.array_equal(b.predict(rows), expected)
    assert cache_bound.bound(config.cache_dir, 1).evicted == ()  # b's lease holds it
    b.unload()
    tier.release(b)
    assert not _mapped(library)
    assert cache_bound.bound(config.cache_dir, 1).evicted == (library.parent.name,)
    tier.close()


def test_a_model_unloaded_while_its_form_was_checked_keeps_nothing(
    cases: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = TierConfig(enabled=True, cache_dir=tmp_path / "compiled", max_rows=64)
    tier = CompileTier(config)
    runtime = _runtime(cases["xgb-reg"].artifact, tmp_path / "m")
    assert runtime.model_dir is not None
    library = config.cache_dir / model_digest(runtime.model_dir, "XGBOOST") / "model.so"
    original = Runtime.attach_compiled

    def attach_then_unload(self: Runtime, predictor: object) -> bool:
        attached = original(self, predictor)  # type: ignore[arg-type]
        self.model_dir = None  # the instance unloads it right after the check
        return attached

    monkeypatch.setattr(Runtime, "attach_compiled", attach_then_unload)
    tier.offer(runtime, "m")
    tier.close()  # the thread ends after this model
    assert tier._thread is not None
    tier._thread.join(120)
    assert not tier._thread.is_alive() and library.is_file()
    assert tier.attached == 0 and runtime.compiled is None
    assert not _mapped(library)
    assert cache_bound.bound(config.cache_dir, 1).evicted == (library.parent.name,)


def test_a_compiled_artifacts_library_is_released_before_unload(
    cases: dict[str, Any], tmp_path: Path
) -> None:
    """A compiled artifact (a Neo image's model) in a multi-model instance: the instance
    calls `release_native` before `unload` once the model is idle."""
    source = _runtime(cases["xgb-reg"].artifact, tmp_path / "m")
    assert source.model_dir is not None
    out = tmp_path / "compiled-artifact"
    compile_for_tier(source.model_dir, "XGBOOST", out, 120.0, max_rows=64)
    runtime = CompiledRuntime()
    runtime.load(out)
    assert _mapped(out / "model.so")
    runtime.release_native()
    runtime.unload()
    assert not _mapped(out / "model.so")
    runtime.release_native()  # idempotent
