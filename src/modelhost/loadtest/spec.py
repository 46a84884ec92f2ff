"""What a load test does: its traffic phases, its payloads and where it sends them.

A load test is a list of phases with Inference Recommender's `Phases` members
(`InitialNumberOfUsers`, `SpawnRate`, `DurationInSeconds`): a phase starts with its initial
users and adds `SpawnRate` users per minute until it ends. The simple form (`--users`,
`--spawn-rate` per second, `--duration`) is one phase that ramps from zero and stops
adding users at `max_users`. `users_at` is the schedule as a pure function of elapsed time;
the Locust process follows it (loadtest/locust_main.py).

`LoadSpec` is handed to the Locust process as a JSON file (mode 0600: it may carry the
signing key), so nothing crosses over the environment.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelhost.errors import ValidationException

PHASE_FIELDS = ("InitialNumberOfUsers", "SpawnRate", "DurationInSeconds")


@dataclass(frozen=True)
class Phase:
    """One traffic phase: `initial_users` at its start, `spawn_rate_per_min` more per minute."""

    initial_users: int
    spawn_rate_per_min: float
    duration_s: float
    max_users: int | None = None

    @classmethod
    def from_wire(cls, raw: Any, index: int = 0) -> Phase:
        """A phase from its Inference Recommender shape, validated field by field."""
        where = f"Phases[{index}]"
        if not isinstance(raw, dict):
            raise ValidationException(f"{where} must be an object with {', '.join(PHASE_FIELDS)}.")
        unknown = sorted(set(raw) - set(PHASE_FIELDS))
        if unknown:
            raise ValidationException(f"{where}: unknown member(s) {', '.join(unknown)}.")
        missing = [f for f in PHASE_FIELDS if f not in raw]
        if missing:
            raise ValidationException(f"{where}: missing {', '.join(missing)}.")
        users, rate, duration = (raw[f] for f in PHASE_FIELDS)
        if not _is_int(users) or users < 0:
            raise ValidationException(f"{where}.InitialNumberOfUsers must be an integer >= 0.")
        if not _is_number(rate) or rate < 0:
            raise ValidationException(f"{where}.SpawnRate must be a number >= 0 (users/minute).")
        if not _is_number(duration) or duration <= 0:
            raise ValidationException(f"{where}.DurationInSeconds must be a number > 0.")
        return cls(int(users), float(rate), float(duration))

    def to_wire(self) -> dict[str, Any]:
        return {
            "InitialNumberOfUsers": self.initial_users,
            "SpawnRate": self.spawn_rate_per_min,
            "DurationInSeconds": self.duration_s,
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_phases(raw: Any) -> tuple[Phase, ...]:
    """`Phases` as JSON text or a list of objects → phases (at least one, at most 100)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationException(f"Phases is not valid JSON: {exc}") from exc
    if not isinstance(raw, list) or not 1 <= len(raw) <= 100:
        raise ValidationException("Phases must be a list of 1 to 100 phases.")
    phases = tuple(Phase.from_wire(p, i) for i, p in enumerate(raw))
    if all(p.initial_users == 0 and p.spawn_rate_per_min == 0 for p in phases):
        raise ValidationException("Phases: at least one phase needs users (InitialNumberOfUsers).")
    return phases


def constant_phase(users: int, spawn_rate_per_s: float, duration_s: float) -> Phase:
    """Locust's simple form: ramp from 0 at `spawn_rate_per_s` up to `users`, for `duration_s`."""
    if users < 1:
        raise ValidationException("users must be at least 1.")
    if not spawn_rate_per_s > 0:
        raise ValidationException("spawn rate must be > 0 users per second.")
    if not duration_s > 0:
        raise ValidationException("duration must be > 0 seconds.")
    # The first user starts at once, as Locust does.
    return Phase(1, spawn_rate_per_s * 60.0, duration_s, max_users=users)


def total_duration_s(phases: tuple[Phase, ...]) -> float:
    return sum(p.duration_s for p in phases)


def users_at(phases: tuple[Phase, ...], elapsed_s: float) -> int | None:
    """The number of users the schedule asks for `elapsed_s` into the test; None once over."""
    start = 0.0
    for phase in phases:
        if elapsed_s < start + phase.duration_s:
            into = max(elapsed_s - start, 0.0)
            users = phase.initial_users + math.floor(phase.spawn_rate_per_min * into / 60.0 + 1e-9)
            return min(users, phase.max_users) if phase.max_users is not None else users
        start += phase.duration_s
    return None


def peak_users(phases: tuple[Phase, ...]) -> int:
    """The most users any phase reaches (sizes the connection pool)."""
    peak = 0
    for p in phases:
        top = p.initial_users + math.floor(p.spawn_rate_per_min * p.duration_s / 60.0)
        peak = max(peak, min(top, p.max_users) if p.max_users is not None else top)
    return max(peak, 1)


@dataclass
class LoadSpec:
    """Everything the Locust process needs; written as JSON next to the results."""

    endpoint: str
    phases: tuple[Phase, ...]
    payload_path: str
    content_type: str | None = None
    accept: str | None = None
    target_model_column: str | None = None
    target_model_template: str = "{}.tar.gz"
    target_variant: str | None = None
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    workers: int = 0
    # A CA bundle (or the server's own certificate) to verify an https endpoint_url with.
    ca_bundle: str | None = None
    read_timeout_s: float = 60.0
    sample_interval_s: float = 1.0
    seed: int | None = None

    def to_json(self) -> str:
        out = asdict(self)
        out["phases"] = [asdict(p) for p in self.phases]
        return json.dumps(out)

    @classmethod
    def from_json(cls, text: str) -> LoadSpec:
        raw = json.loads(text)
        raw["phases"] = tuple(Phase(**p) for p in raw["phases"])
        return cls(**raw)

    def write(self, path: Path) -> Path:
        """Write the spec readable by its owner only (it may carry the secret key)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(self.to_json())
        return path
