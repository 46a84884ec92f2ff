"""The packages directory is bounded like the artifact cache: an install a process
activated is leased (never evicted under it), an install evicts the least recently used
idle ones, and the gateway's pass does too. Offline: the requirements name a local wheel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.fleet.manager import FleetManager
from modelhost.frameworks import requirements
from modelhost.settings import Settings
from modelhost.store import cache_bound
from modelhost.testing.fleet import FakeClient, FakeProvider
from tests.frameworks.fw_support import PKG, write_wheel


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")


@pytest.fixture()
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[cache_bound.Lease]]:
    """This test's leases (the process's own would outlive it), released at its end."""
    leases: list[cache_bound.Lease] = []
    monkeypatch.setattr(requirements, "_HELD", leases)
    yield leases
    for lease in leases:
        lease.close()


def _requirements(root: Path, value: int) -> Path:
    """A code dir whose requirements.txt names a wheel of its own (its own digest)."""
    root.mkdir(parents=True)
    write_wheel(root, value=value)
    (root / "requirements.txt").write_text(f"./{PKG}-0.1-py3-none-any.whl\n")
    return root / "requirements.txt"


def _installs(packages: Path) -> set[str]:
    return {e.key for e in cache_bound.scan(packages, leases=False)}


def test_an_activated_install_is_leased_and_an_idle_one_evicted(
    tmp_path: Path, held: list[cache_bound.Lease]
) -> None:
    packages = tmp_path / "packages"
    first = requirements.install_requirements(_requirements(tmp_path / "a", 1), packages, 120, 1)
    assert first is not None and (first / PKG / "__init__.py").is_file()
    assert first.name == requirements.requirements_digest(tmp_path / "a" / "requirements.txt")
    # Over a one-byte budget, yet in use by this process: the next install keeps it.
    second = requirements.install_requirements(_requirements(tmp_path / "b", 2), packages, 120, 1)
    assert second is not None and _installs(packages) == {first.name, second.name}
    held.pop(0).close()  # the process that used `first` is gone
    third = requirements.install_requirements(_requirements(tmp_path / "c", 3), packages, 120, 1)
    assert third is not None
    assert _installs(packages) == {second.name, third.name} and not first.exists()


def test_an_evicted_install_is_installed_again(
    tmp_path: Path, held: list[cache_bound.Lease]
) -> None:
    packages = tmp_path / "packages"
    req = _requirements(tmp_path / "a", 1)
    target = requirements.install_requirements(req, packages, 120, 1)
    assert target is not None
    held.pop().close()
    assert cache_bound.bound(packages, 1).evicted == (target.name,)
    again = requirements.install_requirements(req, packages, 120, 1)
    assert again == target and (target / PKG / "__init__.py").is_file()


def test_the_gateways_pass_bounds_the_packages_directory(
    tmp_path: Path, held: list[cache_bound.Lease]
) -> None:
    settings = Settings(home=tmp_path / "home", packages_cache_bytes=1)
    provider = FakeProvider()
    fleets = FleetManager(settings, provider=provider, client=FakeClient(provider))
    packages = settings.home / "packages"
    used = requirements.install_requirements(_requirements(tmp_path / "a", 1), packages, 120)
    idle = requirements.install_requirements(_requirements(tmp_path / "b", 2), packages, 120)
    assert used is not None and idle is not None
    held.pop().close()  # `idle`'s
    fleets.bound_caches()
    assert used.is_dir() and not idle.exists()
