"""The instance's configuration, read from its environment.

An instance is configured the way SageMaker configures a container: by environment
variables its parent sets (`SAGEMAKER_*`, `SM_MODEL_DIR`, `OMP_NUM_THREADS`) plus a few
`MH_INSTANCE_*` ones for what SageMaker has no name for. This is deliberately separate
from `modelhost.settings` (the gateway's configuration, `MODELHOST_*`): the env *is* the
container contract, and reading it directly avoids importing pydantic before the socket
binds. The prefix differs from the gateway's so that no name means two things (the
gateway's `MODELHOST_MODEL_CACHE_BYTES` is a default the gateway turns into each
instance's `MH_INSTANCE_MODEL_CACHE_BYTES`). Users set some of these in a model's
`Environment` (docs/runtimes.md). This module is the only reader of them.

| variable | default | meaning |
|---|---|---|
| `SAGEMAKER_BIND_TO_PORT` | 8080 | port to listen on |
| `MH_INSTANCE_HOST` | 127.0.0.1 | address to listen on |
| `MH_INSTANCE_UNIX_SOCKET` | unset | also listen on this Unix domain socket (the gateway's hop) |
| `SM_MODEL_DIR` | /opt/ml/model | unpacked model directory |
| `MH_INSTANCE_RUNTIME` | auto | `auto` or a name in `frameworks.registry.RUNTIMES` |
| `SAGEMAKER_PROGRAM` | (inference.py if present) | script-mode entry, `.py` optional |
| `SAGEMAKER_SUBMIT_DIRECTORY` | `<model dir>/code` | script dir (`/opt/ml/model` = model dir) |
| `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` | runtime's own | Accept used for none or `*/*` |
| `SAGEMAKER_BATCH` | false | batch transform: line formats, newline-terminated |
| `SAGEMAKER_INFERENCE_OUTPUT` | unset | XGBoost selectable outputs, comma-separated keys |
| `SAGEMAKER_INFERENCE_SUPPORTED` | unset | keys the model may answer (others are NaN) |
| `MH_INSTANCE_PACKAGES_DIR` | `~/.modelhost/packages` | cache of `code/requirements.txt` installs |
| `MH_INSTANCE_PIP_TIMEOUT_S` | 600 | limit of one `pip install` |
| `OMP_NUM_THREADS` | 1 | threads one predict may use |
| `MH_INSTANCE_PARENT_PID` | unset | exit when this process is gone |
| `MH_INSTANCE_LOG_LEVEL` | info | log level |
| `MH_INSTANCE_BATCHING` | on | `off`: never merge requests (runtimes that cannot batch never do) |
| `MH_INSTANCE_BATCH_MAX_ROWS` | 64 | most rows one merged predict call takes |
| `MH_INSTANCE_BATCH_MAX_WAIT_MS` | 0 | longest wait for more rows; 0 = take what is already read |
| `SAGEMAKER_MODEL_SERVER_WORKERS` | see below | worker processes sharing the port and socket |
| `MH_INSTANCE_HTTP_SERVER` | modelhost | `modelhost` (its own server) or `uvicorn` (as before) |
| `MH_INSTANCE_CPUS` | unset (not pinned) | cores the instance pins itself to (its CPU share) |
| `SAGEMAKER_MULTI_MODEL` | false | serve the multi-model `/models` API instead of one model |
| `MH_INSTANCE_MODEL_CACHE_BYTES` | RAM / 2 | memory all loaded models may take (multi-model) |
| `MH_INSTANCE_ONNX_OUTPUT` | first output | the ONNX graph output to answer with (name or index) |
| `MH_INSTANCE_COMPILE_TREES` | off | `on`/`auto`: the compiled tier (container/compile_tier.py) |
| `MH_INSTANCE_COMPILE_CACHE_DIR` | `~/.modelhost/compiled` | compiled forms (shared) |
| `MH_INSTANCE_COMPILE_TIMEOUT_S` | 600 | limit of compiling one model |
| `MH_INSTANCE_COMPILE_MAX_ROWS` | 0 (measured) | largest call the compiled form takes |

The gateway also sets `MH_INSTANCE_ID`, `MH_INSTANCE_ENDPOINT_NAME` and
`MH_INSTANCE_VARIANT_NAME` (names for logs and a user's own server; nothing here reads them).

Where a multi-model instance fetches the artifacts `POST /models` names (the gateway sets
these from its settings of the same names; a local directory is loaded in place):

| variable | default | meaning |
|---|---|---|
| `MH_INSTANCE_ARTIFACT_CACHE_DIR` | `~/.modelhost/artifacts` | unpacked artifacts (shared) |
| `MH_INSTANCE_ARTIFACT_CACHE_BYTES` | 0 (unbounded) | budget of the shared cache if bounded |
| `MH_INSTANCE_S3_ENDPOINT_URL` | unset (AWS) | endpoint of an S3-compatible store |
| `MH_INSTANCE_S3_REGION` | unset (boto3's lookup) | region of the S3 client |
| `MH_INSTANCE_ALLOWED_DATA_PREFIXES` | unset (any) | JSON list (or commas) of allowed locations |
| `MH_INSTANCE_ARTIFACT_MAX_UNPACKED_BYTES` | 20 GiB | largest unpacked archive |
| `MH_INSTANCE_ARTIFACT_MAX_RATIO` | 200 | largest unpacked/packed ratio |
| `MH_INSTANCE_ARTIFACT_MAX_MEMBERS` | 100000 | most members of an archive |

`MH_INSTANCE_CPUS` is the instance type's vCPUs as cores of this machine (capped by its
cores; `fleet/cpu_share.py`). The worker default is 1 with batching, and one per core of
the CPU share without it (1 when not pinned). See docs/performance.md for how the
batching and worker defaults were chosen.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from modelhost.resources.gpus import use_cuda


class ConfigError(ValueError):
    """An environment variable has a value the instance cannot use."""


@dataclass(frozen=True)
class InstanceConfig:
    """Everything one instance process needs, parsed and validated."""

    host: str = "127.0.0.1"
    port: int = 8080
    unix_socket: Path | None = None  # also listened on; the gateway connects here
    model_dir: Path = Path("/opt/ml/model")
    runtime: str = "auto"
    program: str | None = None
    submit_dir: Path | None = None
    default_accept: str | None = None
    batch: bool = False
    nthread: int = 1
    parent_pid: int | None = None
    log_level: str = "info"
    inference_output: tuple[str, ...] | None = None
    inference_supported: tuple[str, ...] | None = None
    packages_dir: Path | None = None
    pip_timeout_s: float = 600.0
    batching: bool = True
    batch_max_rows: int = 64
    batch_max_wait_s: float = 0.0
    workers: int = 1
    http_server: str = "modelhost"  # or "uvicorn" (container/server.py)
    cpus: tuple[int, ...] = ()  # the instance's CPU share; empty: not pinned
    multi_model: bool = False
    model_cache_bytes: int = 0  # 0: half of this machine's memory
    onnx_output: str | None = None
    gpu: bool = False  # CUDA_VISIBLE_DEVICES names a device
    compile_trees: bool = False
    compile_trees_auto: bool = False  # "auto": only where a C compiler and Treelite exist
    compile_cache_dir: Path | None = None  # None: ~/.modelhost/compiled
    compile_timeout_s: float = 600.0
    compile_max_rows: int = 0  # 0: measured when compiling
    # --- artifact store of a multi-model instance (read by `_artifact_fields`) ---------
    artifact_cache_dir: Path | None = None  # None: ~/.modelhost/artifacts
    artifact_cache_bytes: int = 0  # >0: a bounded cache (store/cache_bound.py)
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    allowed_data_prefixes: tuple[str, ...] = ()  # empty: any location
    # The defaults are the gateway's `artifact_max_*` settings' defaults.
    artifact_max_unpacked_bytes: int = 20 * 1024**3
    artifact_max_ratio: float = 200.0
    artifact_max_members: int = 100_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InstanceConfig:
        """Parse the environment; raises `ConfigError` naming the bad variable."""
        env = os.environ if env is None else env
        program = env.get("SAGEMAKER_PROGRAM", "").strip() or None
        if program and program.endswith(".py"):
            program = program[:-3]
        model_dir = Path(env.get("SM_MODEL_DIR", "").strip() or "/opt/ml/model")
        parent = env.get("MH_INSTANCE_PARENT_PID", "").strip()
        packages = env.get("MH_INSTANCE_PACKAGES_DIR", "").strip()
        multi_model = _bool(env, "SAGEMAKER_MULTI_MODEL", False)
        cpus = _cpus(env)
        batching = _bool(env, "MH_INSTANCE_BATCHING", DEFAULT_BATCHING)
        return cls(
            host=env.get("MH_INSTANCE_HOST", "").strip() or "127.0.0.1",
            port=_int(env, "SAGEMAKER_BIND_TO_PORT", 8080, low=0, high=65535),
            unix_socket=_unix_socket(env),
            model_dir=model_dir,
            runtime=(env.get("MH_INSTANCE_RUNTIME", "").strip() or "auto").lower(),
            program=program,
            submit_dir=_submit_dir(env.get("SAGEMAKER_SUBMIT_DIRECTORY", ""), model_dir),
            default_accept=env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").strip() or None,
            batch=env.get("SAGEMAKER_BATCH", "").strip().lower() in ("1", "true", "yes"),
            nthread=_int(env, "OMP_NUM_THREADS", 1, low=1),
            parent_pid=_int(env, "MH_INSTANCE_PARENT_PID", 0, low=1) if parent else None,
            log_level=(env.get("MH_INSTANCE_LOG_LEVEL", "").strip() or "info").lower(),
            inference_output=_keys(env.get("SAGEMAKER_INFERENCE_OUTPUT", "")),
            inference_supported=_keys(env.get("SAGEMAKER_INFERENCE_SUPPORTED", "")),
            packages_dir=Path(packages).expanduser() if packages else None,
            pip_timeout_s=float(_int(env, "MH_INSTANCE_PIP_TIMEOUT_S", 600, low=1)),
            batching=batching,
            batch_max_rows=_int(env, "MH_INSTANCE_BATCH_MAX_ROWS", 64, low=1, high=1_000_000),
            batch_max_wait_s=_float(env, "MH_INSTANCE_BATCH_MAX_WAIT_MS", 0.0, high=1000.0) / 1000,
            # A multi-model instance is one process, as SageMaker's MME stack forces one
            # worker: one cache, so the gateway's view of what is loaded stays true.
            workers=1
            if multi_model
            else _int(
                env,
                "SAGEMAKER_MODEL_SERVER_WORKERS",
                default_workers(cpus, batching),
                low=1,
                high=64,
            ),
            cpus=cpus,
            http_server=_http_server(env),
            multi_model=multi_model,
            model_cache_bytes=_int(env, "MH_INSTANCE_MODEL_CACHE_BYTES", 0, low=0, high=2**62),
            onnx_output=env.get("MH_INSTANCE_ONNX_OUTPUT", "").strip() or None,
            gpu=use_cuda(env),
            compile_trees=_compile_trees(env) != "off",
            compile_trees_auto=_compile_trees(env) == "auto",
            compile_cache_dir=_path(env, "MH_INSTANCE_COMPILE_CACHE_DIR"),
            compile_timeout_s=float(_int(env, "MH_INSTANCE_COMPILE_TIMEOUT_S", 600, low=1)),
            compile_max_rows=_int(env, "MH_INSTANCE_COMPILE_MAX_ROWS", 0, low=0, high=2**31),
            **_artifact_fields(env),
        )


def default_workers(cpus: tuple[int, ...], batching: bool) -> int:
    """Workers when `SAGEMAKER_MODEL_SERVER_WORKERS` is not set. With batching off, one per
    core of the instance's CPU share (its type's vCPUs capped by this machine's cores);
    with batching one, which merges more requests per predict and measured faster than
    two on 2 cores (docs/performance.md); unpinned instances keep one. The switch decides,
    not the runtime: workers are forked before the model (and its runtime) loads."""
    if cpus and not batching:
        return min(len(cpus), 64)
    return DEFAULT_WORKERS


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def _http_server(env: Mapping[str, str]) -> str:
    raw = env.get("MH_INSTANCE_HTTP_SERVER", "").strip().lower() or "modelhost"
    if raw not in HTTP_SERVERS:
        names = ", ".join(HTTP_SERVERS)
        raise ConfigError(f"MH_INSTANCE_HTTP_SERVER={raw!r} is not one of {names}")
    return raw


def _unix_socket(env: Mapping[str, str]) -> Path | None:
    raw = env.get("MH_INSTANCE_UNIX_SOCKET", "").strip()
    if not raw:
        return None
    if len(os.fsencode(raw)) > 107:  # sun_path holds 108 bytes with the NUL
        raise ConfigError(f"MH_INSTANCE_UNIX_SOCKET={raw!r} is longer than 107 bytes")
    return Path(raw)


def _cpus(env: Mapping[str, str]) -> tuple[int, ...]:
    raw = env.get("MH_INSTANCE_CPUS", "").strip()
    if not raw:
        return ()
    try:
        cpus = tuple(sorted({int(c) for c in raw.split(",") if c.strip()}))
    except ValueError:
        raise ConfigError(f"MH_INSTANCE_CPUS={raw!r} is not a comma-separated core list") from None
    if any(c < 0 for c in cpus):
        raise ConfigError(f"MH_INSTANCE_CPUS={raw!r} names a negative core")
    return cpus


# The variables `_artifact_fields` reads (the BYOC host agent reads only these).
ARTIFACT_VARIABLES = (
    "MH_INSTANCE_ARTIFACT_CACHE_DIR",
    "MH_INSTANCE_ARTIFACT_CACHE_BYTES",
    "MH_INSTANCE_S3_ENDPOINT_URL",
    "MH_INSTANCE_S3_REGION",
    "MH_INSTANCE_ALLOWED_DATA_PREFIXES",
    "MH_INSTANCE_ARTIFACT_MAX_UNPACKED_BYTES",
    "MH_INSTANCE_ARTIFACT_MAX_RATIO",
    "MH_INSTANCE_ARTIFACT_MAX_MEMBERS",
)


def _artifact_fields(env: Mapping[str, str]) -> dict[str, Any]:
    """The artifact-store fields (see the second table of the module docstring)."""
    cache = env.get("MH_INSTANCE_ARTIFACT_CACHE_DIR", "").strip()
    ratio = _float(env, "MH_INSTANCE_ARTIFACT_MAX_RATIO", 200.0, high=1e12)
    if ratio < 1:
        raise ConfigError(f"MH_INSTANCE_ARTIFACT_MAX_RATIO={ratio:g} is below 1")
    return {
        "artifact_cache_dir": Path(cache).expanduser() if cache else None,
        "artifact_cache_bytes": _int(env, "MH_INSTANCE_ARTIFACT_CACHE_BYTES", 0, low=0, high=2**62),
        "s3_endpoint_url": env.get("MH_INSTANCE_S3_ENDPOINT_URL", "").strip() or None,
        "s3_region": env.get("MH_INSTANCE_S3_REGION", "").strip() or None,
        "allowed_data_prefixes": _prefixes(env, "MH_INSTANCE_ALLOWED_DATA_PREFIXES"),
        "artifact_max_unpacked_bytes": _int(
            env, "MH_INSTANCE_ARTIFACT_MAX_UNPACKED_BYTES", 20 * 1024**3, low=1, high=2**62
        ),
        "artifact_max_ratio": ratio,
        "artifact_max_members": _int(
            env, "MH_INSTANCE_ARTIFACT_MAX_MEMBERS", 100_000, low=1, high=2**62
        ),
    }


def _prefixes(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A JSON list of strings (as the gateway's list settings are written) or commas."""
    raw = env.get(name, "").strip()
    if not raw:
        return ()
    if raw.startswith(("[", "{", '"')):  # JSON, as the gateway's list settings take
        try:
            values = json.loads(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a JSON list") from None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{name}={raw!r} is not a JSON list of strings")
    else:
        values = raw.split(",")
    return tuple(v.strip() for v in values if v.strip())


# Chosen from measurements on 2 cores (docs/performance.md).
DEFAULT_BATCHING = True
DEFAULT_WORKERS = 1
# The instance's own server (container/http_server.py), or uvicorn as before it.
HTTP_SERVERS = ("modelhost", "uvicorn")

_SAGEMAKER_MODEL_DIR = PurePosixPath("/opt/ml/model")


def _submit_dir(raw: str, model_dir: Path) -> Path | None:
    """`SAGEMAKER_SUBMIT_DIRECTORY` as a local path, or None for `<model dir>/code`."""
    submit = raw.strip().removeprefix("file://")
    if not submit or submit.startswith("s3://"):
        # The SDK points here at sourcedir.tar.gz when not repacking; modelhost
        # only serves code shipped inside the model directory.
        return None
    path = PurePosixPath(submit)
    if path.is_relative_to(_SAGEMAKER_MODEL_DIR):
        # The SDK writes /opt/ml/model/code when it repacks the model: that is the
        # model directory wherever this instance unpacked it.
        return model_dir / path.relative_to(_SAGEMAKER_MODEL_DIR)
    return Path(submit) if path.is_absolute() else model_dir / submit


def _keys(raw: str) -> tuple[str, ...] | None:
    """`"predicted_label, Probability"` → `("predicted_label", "probability")`; empty → None.

    SageMaker's XGBoost container strips spaces and lower-cases the keys the same way.
    """
    keys = tuple(k for k in raw.replace(" ", "").lower().split(",") if k)
    return keys or None


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int = 2**31) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range {low}..{high}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not on/off (true/false)")


def _compile_trees(env: Mapping[str, str]) -> str:
    """`MH_INSTANCE_COMPILE_TREES`: on/off (true/false), or auto."""
    name = "MH_INSTANCE_COMPILE_TREES"
    raw = env.get(name, "").strip().lower()
    if raw == "auto":
        return raw
    return "on" if _bool(env, name, False) else "off"


def _float(env: Mapping[str, str], name: str, default: float, *, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not 0 <= value <= high:
        raise ConfigError(f"{name}={value:g} is out of range 0..{high:g}")
    return value
