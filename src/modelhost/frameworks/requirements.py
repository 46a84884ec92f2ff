"""Installing a script's `code/requirements.txt` into a cached per-model environment.

SageMaker's inference toolkit pip-installs `code/requirements.txt` into the container
when it starts. An instance here shares its Python with every other instance, so the
packages go into their own directory instead (`pip install --target`), which is put
on `sys.path` before the script is imported.

The directory is keyed by a digest of the requirements (the file's bytes, the bytes of
local files it names such as `./pkg.whl` or `-r other.txt`) and of the interpreter
(version, ABI, platform), under `MH_INSTANCE_PACKAGES_DIR` (default
`~/.modelhost/packages`; model directories may be read-only and are shared). So the
first instance of a model installs, later instances and restarts reuse the result,
and two models with the same requirements share it.

- Atomic: pip writes into a temporary directory beside the target, renamed into place
  only after pip succeeded; a directory under its final name is always complete.
- Once: the build lock `.locks/<digest>.lock` (an `fcntl.flock`) makes concurrent
  instances (or threads) wait for the one installing, then reuse its result.
- Bounded: the directory has the artifact cache's layout (`store/cache_bound.py`: an
  install `<digest>/` is complete once `<digest>.complete` exists). A process that
  activates an install holds a lease on it until it exits (imported packages cannot be
  unloaded), and with `MH_INSTANCE_PACKAGES_CACHE_BYTES` an install evicts the least
  recently used installs nobody leases; the gateway's periodic pass does the same.
- Time-limited: pip runs as `python -m pip` (argv list, no shell) with
  `MH_INSTANCE_PIP_TIMEOUT_S` (default 600 s); a failure or timeout raises
  `ModelLoadError` carrying the tail of pip's output, which becomes the endpoint's
  FailureReason. pip inherits the environment, so `PIP_INDEX_URL`, `PIP_NO_INDEX`,
  `PIP_FIND_LINKS` and friends configure it as usual.

Relative paths in the file resolve against the code directory (pip runs there).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import platform
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from modelhost.errors import ModelLoadError
from modelhost.store import cache_bound

log = logging.getLogger(__name__)

REQUIREMENTS_FILE = "requirements.txt"
DEFAULT_TIMEOUT_S = 600.0
# FailureReason is clipped at 1024 characters; leave room for the text around the tail.
_TAIL_CHARS = 600
_TAIL_LINES = 8
_TMP_PREFIX = ".tmp-"
_SKIP_DIRS = {"__pycache__", ".git", "build", "dist", ".eggs"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def default_packages_dir() -> Path:
    """`~/.modelhost/packages`: where installs go when MH_INSTANCE_PACKAGES_DIR is unset."""
    return Path.home() / ".modelhost" / "packages"


def has_requirements(requirements: Path) -> bool:
    """True when the file exists and lists something besides comments and blank lines."""
    try:
        text = requirements.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return False
    return any(line.split("#", 1)[0].strip() for line in text.splitlines())


def requirements_digest(requirements: Path) -> str:
    """Digest of what the install depends on: requirement texts, local files, interpreter."""
    code_dir = requirements.parent
    h = hashlib.sha256()
    for part in (
        sys.version,
        sys.implementation.cache_tag or "",
        sysconfig.get_platform(),
        platform.machine(),
        getattr(sys, "abiflags", ""),
    ):
        h.update(part.encode() + b"\0")
    seen: set[Path] = set()
    _hash_file(h, requirements, code_dir, seen)
    return h.hexdigest()  # the bounded cache's keys are whole SHA-256 digests


def _hash_file(h: hashlib._Hash, path: Path, code_dir: Path, seen: set[Path]) -> None:
    """Fold a requirements file in, then every local path it mentions (wheels, `-r`)."""
    resolved = path.resolve()
    if resolved in seen:
        return
    seen.add(resolved)
    data = path.read_bytes()
    h.update(b"file\0" + data + b"\0")
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        # `-r other.txt`, `--constraint=c.txt`, `./pkg.whl`, `-e ./src`, `pkg @ file:./x`
        for token in re.split(r"[\s=]+", line):
            token = token.removeprefix("file:").strip()
            if not token or token.startswith("-") or "://" in token:
                continue
            local = code_dir / token
            try:
                is_file, is_dir = local.is_file(), local.is_dir()
            except OSError:
                continue
            if is_file and token.endswith((".txt", ".in")):
                _hash_file(h, local, code_dir, seen)
            elif is_file:
                h.update(token.encode() + b"\0" + _file_digest(local))
            elif is_dir and local.resolve() != code_dir.resolve():
                _hash_tree(h, token, local)


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def _hash_tree(h: hashlib._Hash, name: str, root: Path) -> None:
    # A local source tree (`./mylib`): its content, not its mtimes, which change every
    # time the model archive is unpacked.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            rel = path.relative_to(root).as_posix()
            h.update(f"{name}/{rel}".encode() + b"\0" + _file_digest(path))


def install_requirements(
    requirements: Path,
    packages_dir: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cache_bytes: int = 0,
) -> Path | None:
    """Install `requirements` (once per digest) and return the directory to import from,
    leased until this process exits. `cache_bytes` > 0 bounds the packages directory.

    None when there is nothing to install. Raises `ModelLoadError` when pip fails, times
    out, or the cache directory cannot be written.
    """
    if not has_requirements(requirements):
        return None
    root = packages_dir or default_packages_dir()
    key = requirements_digest(requirements)
    target = root / key
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(
            f"Cannot create the packages directory {root} for {_label(requirements)}: {exc}; "
            "set MH_INSTANCE_PACKAGES_DIR to a writable directory"
        ) from None
    for _ in range(3):  # evicted between its install and its lease: install it again
        installed = _install_once(requirements, root, key, timeout_s)
        held = cache_bound.lease(root, target)
        if held is None:
            continue
        _HELD.append(held)
        if installed and cache_bytes > 0:
            try:
                cache_bound.bound(root, cache_bytes)
            except OSError as exc:  # the install is there: a failed eviction is only logged
                log.warning("packages cache %s: eviction failed: %s", root, exc)
        return target
    raise ModelLoadError(
        f"The packages of {_label(requirements)} were evicted from {root} three times while "
        "they were installed: raise packages_cache_bytes"
    )


# Leases on the installs this process activated: held until it exits (see the docstring).
_HELD: list[cache_bound.Lease] = []


def _install_once(requirements: Path, root: Path, key: str, timeout_s: float) -> bool:
    """Install into `root/key` unless a complete install is there; whether this did."""
    target = root / key
    if cache_bound.marker(root, key).exists() and target.is_dir():
        log.info("reusing packages for %s from %s", requirements, target)
        return False
    # flock locks belong to the open file description, so two threads of one process
    # exclude each other as well as two processes do. The holder's pip is bounded by
    # its timeout, and a dead holder's lock is released by the kernel, so no wait here
    # can last forever.
    started = time.monotonic()
    with cache_bound.build_lock(root, key, wait=True):
        if (waited := time.monotonic() - started) > 0.5:
            log.info("waited %.1f s for another install of %s", waited, key)
        if cache_bound.marker(root, key).exists() and target.is_dir():  # installed meanwhile
            log.info("reusing packages for %s from %s", requirements, target)
            return False
        _remove_stale(root, key)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{key}-", dir=root))
        try:
            _pip_install(requirements, tmp, timeout_s)
            shutil.copyfile(requirements, tmp / f".modelhost-{REQUIREMENTS_FILE}")
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        cache_bound.marker(root, key).touch()
    return True


def _remove_stale(root: Path, key: str) -> None:
    # Left by an instance killed mid-install (or an unmarked rename); safe to delete as
    # we hold the lock.
    for stale in root.glob(f"{_TMP_PREFIX}{key}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(root / key, ignore_errors=True)


def pip_argv(requirements: Path, target: Path) -> list[str]:
    """The pip command line (a list: never a shell)."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--requirement",
        str(requirements.resolve()),
        "--disable-pip-version-check",
        "--no-input",
        "--no-warn-script-location",
    ]


def _pip_install(requirements: Path, target: Path, timeout_s: float) -> None:
    argv = pip_argv(requirements, target)
    log.info("installing %s into %s: %s", requirements, target, " ".join(argv))
    started = time.monotonic()
    # Same process group as the instance: stopping the instance stops pip with it.
    proc = subprocess.Popen(
        argv,
        cwd=requirements.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise ModelLoadError(
            f"{_label(requirements)} did not install within {timeout_s:.0f} s "
            f"(MH_INSTANCE_PIP_TIMEOUT_S); pip's last output: {_tail(out)}"
        ) from None
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        log.error("pip failed (exit %d):\n%s", proc.returncode, text)
        raise ModelLoadError(
            f"{_label(requirements)} failed to install (pip exited with "
            f"{proc.returncode}): {_tail(out)}"
        )
    log.info("installed %s in %.1f s", requirements, time.monotonic() - started)
    log.debug("pip output:\n%s", text)


def _label(requirements: Path) -> str:
    return f"{requirements.parent.name}/{requirements.name}"


def _tail(out: bytes) -> str:
    """pip's last lines, errors first in mind: what a FailureReason can show."""
    lines = [_ANSI.sub("", ln).rstrip() for ln in out.decode("utf-8", "replace").splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return "(no output)"
    text = " | ".join(ln.strip() for ln in lines[-_TAIL_LINES:])
    return text if len(text) <= _TAIL_CHARS else "..." + text[-(_TAIL_CHARS - 3) :]


def activate(packages: Path) -> None:
    """Put `packages` at the front of `sys.path`, honouring its `.pth` files.

    Front, as SageMaker installs requirements over the image's own packages, so the
    script gets the versions it asked for. Modules this process already imported
    (numpy, the framework) stay as they are.
    """
    before = list(sys.path)
    site.addsitedir(str(packages))  # appends, and runs the directory's .pth files
    added = [p for p in sys.path if p not in before]
    if str(packages) not in added:
        added.insert(0, str(packages))
    sys.path[:] = added + [p for p in before if p not in added]
    importlib.invalidate_caches()
