"""What an instance process inherits from the gateway's environment: an allow-list.

The gateway's environment may hold credentials (`AWS_SECRET_ACCESS_KEY`,
`MODELHOST_SECRET_ACCESS_KEY`, a database URL with a password), and an instance runs a
user's code, so it gets only what a process needs to run the same Python the gateway
runs: the search path, home, temp dir, locale, the interpreter's and the numerical
libraries' thread and import settings, the container engine's address, and pip's
configuration (script mode installs `code/requirements.txt`). Everything else an instance
sees is explicit: the launch spec's `env` (the model's `Environment` plus what
`fleet/launch.py` adds, e.g. `artifact_store_env`) and the provider's own variables.
"""

from __future__ import annotations

from collections.abc import Mapping

INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "LANG",
        "LANGUAGE",
        # So instances import the same code as the gateway (a venv, a source checkout).
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "PYTHONHOME",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PYTHONHASHSEED",
        "PYTHONWARNINGS",
        # Thread counts the numerical libraries read (the launch spec's own value wins).
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "NUMEXPR_MAX_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "BLIS_NUM_THREADS",
        # Which GPUs a process may use is the machine's choice, not a secret.
        "CUDA_VISIBLE_DEVICES",
        # The container engine the supervisor drives for `Image` servers (rootless podman
        # finds its socket through XDG_RUNTIME_DIR); addresses, not secrets.
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "CONTAINER_HOST",
        "XDG_RUNTIME_DIR",
        # TLS trust for pip and for a user's server calling out.
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
    }
)
INHERITED_PREFIXES = ("LC_", "PIP_")


def inherited_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` an instance process may see (see the module docstring)."""
    return {
        name: value
        for name, value in environ.items()
        if name in INHERITED or name.startswith(INHERITED_PREFIXES)
    }
