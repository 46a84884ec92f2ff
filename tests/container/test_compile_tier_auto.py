"""`MH_INSTANCE_COMPILE_TREES=auto` (the gateway's default): the compiled tier where the
machine can compile, and one log line, no child process and no queued model where not."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from modelhost.container import compile_tier
from modelhost.container.compile_tier import CompileTier, TierConfig
from modelhost.container.config import ConfigError, InstanceConfig


class TreeRuntime:
    """What the tier reads of a runtime before it compiles: a tree framework and a folder."""

    name = "xgboost"
    tree_framework = "XGBOOST"

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir


@pytest.mark.parametrize(
    ("raw", "on", "auto"),
    [("auto", True, True), ("AUTO", True, True), ("on", True, False), ("true", True, False),
     ("off", False, False), ("", False, False)],
)  # fmt: skip
def test_the_variable_reads_on_off_and_auto(raw: str, on: bool, auto: bool) -> None:
    config = InstanceConfig.from_env({"MH_INSTANCE_COMPILE_TREES": raw})
    assert (config.compile_trees, config.compile_trees_auto) == (on, auto)
    tier = TierConfig.of(config)
    assert (tier.enabled, tier.auto) == (on, auto)


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="MH_INSTANCE_COMPILE_TREES"):
        InstanceConfig.from_env({"MH_INSTANCE_COMPILE_TREES": "sometimes"})


def test_this_machine_can_compile() -> None:
    """CI installs gcc and the core's Treelite/TL2cgen: `auto` means compiled there."""
    assert compile_tier.unavailable() is None


def test_without_a_compiler_auto_says_so_once_and_compiles_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(compile_tier.shutil, "which", lambda _name: None)
    compiles: list[Path] = []
    monkeypatch.setattr(
        CompileTier, "_compile", lambda _s, model_dir, *_a: compiles.append(model_dir)
    )
    tier = CompileTier(TierConfig(enabled=True, auto=True, cache_dir=tmp_path / "compiled"))
    with caplog.at_level(logging.INFO, logger="modelhost.container"):
        for i in range(3):
            tier.offer(TreeRuntime(tmp_path / f"m{i}"), f"m{i}")  # type: ignore[arg-type]
        deadline = time.monotonic() + 30
        while not tier._off:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        tier.offer(TreeRuntime(tmp_path / "late"), "late")  # type: ignore[arg-type]
    assert compiles == []
    assert tier._queue.empty()  # no runtime kept alive by a queue nobody reads
    lines = [r.getMessage() for r in caplog.records if "compiled tier is off" in r.getMessage()]
    assert lines == ["the compiled tier is off on this machine: no C compiler (looked for gcc "
                     "and cc; Debian: apt-get install gcc)"]  # fmt: skip
    assert not (tmp_path / "compiled").exists()


def test_on_compiles_even_where_auto_would_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`on` leaves it to the compile child, which also takes $CC and records why it failed."""
    monkeypatch.setattr(compile_tier.shutil, "which", lambda _name: None)
    compiles: list[Path] = []
    monkeypatch.setattr(
        CompileTier, "_compile", lambda _s, model_dir, *_a: compiles.append(model_dir)
    )
    tier = CompileTier(TierConfig(enabled=True, cache_dir=tmp_path / "compiled"))
    model = tmp_path / "m"
    model.mkdir()
    (model / "xgboost-model").write_bytes(b"{}")
    tier.offer(TreeRuntime(model), "m")  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    while not compiles:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    tier.close()
    assert compiles == [model]
