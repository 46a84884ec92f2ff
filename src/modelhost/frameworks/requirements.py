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
- Once: an `fcntl.flock` on `<digest>.lock` makes concurrent instances (or threads)
  wait for the one installing, then reuse its result.
- Bounded: pip runs as `python -m pip` (argv list, no shell) with
  `MH_INSTANCE_PIP_TIMEOUT_S` (default 600 s); a failure or timeout raises
  `ModelLoadError` carrying the tail of pip's output, which becomes the endpoint's
  FailureReason. pip inherits the environment, so `PIP_INDEX_URL`, `PIP_NO_INDEX`,
  `PIP_FIND_LINKS` and friends configure it as usual.

Relative paths in the file resolve against the code directory (pip runs there).
"""

from __future__ import annotations

import contextlib
import fcntl
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
from collections.abc import Iterator
from pathlib import Path

from modelhost.errors import ModelLoadError

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
    return h.hexdigest()[:32]


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
    requirements: Path, packages_dir: Path | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Path | None:
    """Install `requirements` (once per digest) and return the directory to import from.

    None when there is nothing to install. Raises `ModelLoadError` when pip fails, times
    out, or the cache directory cannot be written.
    """
    if not has_requirements(requirements):
        return None
    root = packages_dir or default_packages_dir()
    digest = requirements_digest(requirements)
    target = root / f"{sys.implementation.cache_tag or 'py'}-{digest}"
    if target.is_dir():
        log.info("reusing packages for %s from %s", requirements, target)
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(
            f"Cannot create the packages directory {root} for {_label(requirements)}: {exc}; "
            "set MH_INSTANCE_PACKAGES_DIR to a writable directory"
        ) from None
    with _locked(root / f"{target.name}.lock"):
        if target.is_dir():  # another instance installed while we waited
            log.info("reusing packages for %s from %s", requirements, target)
            return target
        _remove_stale(root, target.name)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{target.name}-", dir=root))
        try:
            _pip_install(requirements, tmp, timeout_s)
            shutil.copyfile(requirements, tmp / f".modelhost-{REQUIREMENTS_FILE}")
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # flock locks belong to the open file description, so two threads of one process
    # exclude each other as well as two processes do. The holder's pip is bounded by
    # its timeout, and a dead holder's lock is released by the kernel, so no wait here
    # can last forever.
    with path.open("a") as f:
        started = time.monotonic()
        fcntl.flock(f, fcntl.LOCK_EX)
        waited = time.monotonic() - started
        if waited > 0.5:
            log.info("waited %.1f s for another install of %s", waited, path.stem)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_stale(root: Path, name: str) -> None:
    # Left by an instance killed mid-install; safe to delete as we hold the lock.
    for stale in root.glob(f"{_TMP_PREFIX}{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


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
