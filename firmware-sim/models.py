"""Process models: the physics behind a simulated sensor, deterministic for a given seed.

A model advances in fixed steps of ``step`` seconds of simulation time (default 0.1 s). Its
value at time ``t`` is its state after ``floor(t / step)`` steps, so it depends only on the
seed, the parameters and ``t`` — never on when or how often a master polls. Every random draw
comes from a generator seeded with ``(seed, device, point)``.

Parameters can change over time (``setpoint`` 4.0 -> 12.0 during a cooling failure); the
changes are :class:`ParamChange` events at given times, so a scheduled change is deterministic
too.

- constant (value): stays at ``value`` (changes only by schedule).
- thermal (start, setpoint, tau, noise): first-order lag toward ``setpoint`` with time
  constant ``tau`` s, plus measurement noise N(0, noise).
- normal (mean, sd, drift, period): a new draw N(mean + drift * t, sd) every ``period`` s
  (fill weight, torque per cycle).
- walk (start, mean, tau, sd): mean-reverting random walk (Ornstein-Uhlenbeck): humidity,
  pressure.
- counter (start, rate): start + floor(rate * t) (bottles filled).
- square (low, high, period, duty): ``high`` for the first ``duty`` fraction of each period.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.firmware_sim.faults import Fault, deterministic_random

__all__ = ["MODEL_PARAMS", "Model", "ParamChange", "apply_value_faults"]

#: Parameters of each model kind and their defaults.
MODEL_PARAMS: Mapping[str, Mapping[str, float]] = {
    "constant": {"value": 0.0},
    "thermal": {"start": 20.0, "setpoint": 20.0, "tau": 60.0, "noise": 0.0},
    "normal": {"mean": 0.0, "sd": 1.0, "drift": 0.0, "period": 1.0},
    "walk": {"start": 50.0, "mean": 50.0, "tau": 60.0, "sd": 0.5},
    "counter": {"start": 0.0, "rate": 1.0},
    "square": {"low": 0.0, "high": 1.0, "period": 60.0, "duty": 0.5},
}
_COMMON = {"step": 0.1}


@dataclass(frozen=True, slots=True)
class ParamChange:
    """Set model parameters from ``at`` (seconds) until ``until`` (None: for good)."""

    at: float
    until: float | None
    params: Mapping[str, float]


@dataclass(slots=True)
class Model:
    """One process model, stepped lazily up to the time asked for.

    Args:
        kind: one of :data:`MODEL_PARAMS`.
        params: parameters (defaults filled in for missing ones).
        key: seeds its random generator: ``(seed, device, point)``.
        changes: scheduled parameter changes.
    """

    kind: str
    params: dict[str, float]
    key: tuple[object, ...] = ()
    changes: list[ParamChange] = field(default_factory=list)
    _step_no: int = 0
    _value: float = 0.0
    changed_at: float = 0.0  #: simulation time of the last step that changed the value
    _rng: Any = None

    def __post_init__(self) -> None:
        if self.kind not in MODEL_PARAMS:
            raise ValueError(
                f"unknown model kind {self.kind!r}; expected one of {', '.join(MODEL_PARAMS)}"
            )
        merged = {**_COMMON, **MODEL_PARAMS[self.kind]}
        unknown = set(self.params) - set(merged)
        if unknown:
            raise ValueError(f"model {self.kind!r} has no parameter {', '.join(sorted(unknown))}")
        merged.update(self.params)
        self.params = merged
        self._rng = deterministic_random("model", *self.key)
        self._value = self._initial()

    @property
    def time(self) -> float:
        """Simulation time the model has stepped to (it never steps back)."""
        return self._step_no * self.step

    @property
    def step(self) -> float:
        """Seconds per model step."""
        return self.params["step"]

    def _initial(self) -> float:
        p = self.params
        match self.kind:
            case "constant":
                return p["value"]
            case "thermal" | "walk" | "counter":
                return p["start"]
            case "normal":
                return self._rng.gauss(p["mean"], p["sd"]) if p["sd"] > 0 else p["mean"]
            case _:
                return self._square(0.0, p)

    def params_at(self, t: float) -> dict[str, float]:
        """Parameters in force at time ``t`` (scheduled and commanded changes applied)."""
        p = dict(self.params)
        for change in self.changes:
            if change.at <= t and (change.until is None or t < change.until):
                p.update(change.params)
        return p

    @staticmethod
    def _square(t: float, p: Mapping[str, float]) -> float:
        phase = (t % p["period"]) / p["period"] if p["period"] > 0 else 0.0
        return p["high"] if phase < p["duty"] else p["low"]

    def _advance(self, n: int) -> None:
        """Step from the current step to step ``n``."""
        dt = self.step
        rng = self._rng
        while self._step_no < n:
            self._step_no += 1
            t = self._step_no * dt
            p = self.params_at(t)
            before = self._value
            match self.kind:
                case "constant":
                    self._value = p["value"]
                case "thermal":
                    alpha = 1.0 - math.exp(-dt / p["tau"]) if p["tau"] > 0 else 1.0
                    self._value += (p["setpoint"] - self._value) * alpha
                case "walk":
                    alpha = 1.0 - math.exp(-dt / p["tau"]) if p["tau"] > 0 else 1.0
                    self._value += (p["mean"] - self._value) * alpha + rng.gauss(
                        0.0, p["sd"]
                    ) * math.sqrt(dt)
                case "normal":
                    per = max(1, round(p["period"] / dt))
                    if self._step_no % per == 0:
                        self._value = (
                            rng.gauss(p["mean"] + p["drift"] * t, p["sd"])
                            if p["sd"] > 0
                            else p["mean"] + p["drift"] * t
                        )
                case "counter":
                    self._value = p["start"] + math.floor(t * p["rate"])
                case "square":
                    self._value = self._square(t, p)
            if self._value != before:
                self.changed_at = t

    def value_at(self, t: float) -> float:
        """The model's value at simulation time ``t`` (monotonic use: ``t`` never goes back).

        Thermal noise is measurement noise: drawn per step, it does not feed the lag state.
        """
        n = max(0, math.floor(t / self.step + 1e-9))
        self._advance(n)
        if self.kind == "thermal":
            noise = self.params_at(n * self.step)["noise"]
            if noise > 0:
                return self._value + deterministic_random("noise", *self.key, n).gauss(0.0, noise)
        return self._value

    def set(self, at: float, until: float | None = None, **params: float) -> None:
        """Change parameters from ``at`` on (a commanded or scheduled change)."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise ValueError(f"model {self.kind!r} has no parameter {', '.join(sorted(unknown))}")
        self.changes.append(ParamChange(at, until, dict(params)))


def apply_value_faults(
    value: float,
    faults: Sequence[Fault],
    t: float,
    step: float,
    key: tuple[object, ...],
    stuck_value: float | None,
) -> float:
    """Apply value faults in force to a model value at time ``t``.

    Draws are seeded per (key, fault, step number), so a scheduled fault is deterministic.
    ``stuck_value`` is the value the point had when a ``stuck`` fault began (computed by the
    caller, who can ask the model for it).
    """
    n = math.floor(t / step + 1e-9)
    for fault in faults:
        p = fault.params
        match fault.kind:
            case "stuck":
                value = (
                    float(p["value"])
                    if p.get("value") is not None
                    else (stuck_value if stuck_value is not None else value)
                )
            case "noise":
                value += deterministic_random("fault-noise", *key, n).gauss(0.0, float(p["sd"]))
            case "drift":
                value += float(p["rate"]) * (t - fault.start)
            case "spikes":
                rng = deterministic_random("fault-spike", *key, n)
                if rng.random() < float(p["probability"]):
                    value += float(p["magnitude"]) * (1 if rng.random() < 0.5 else -1)
    return value
