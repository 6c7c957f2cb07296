"""The evaluator of derived points: recomputed from their inputs' latest values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.readings import Quality
from edge.rules.alarms import AlarmRuntime
from edge.rules.evaluator import QUALITIES, QUALITY_CODE, Evaluator, Out
from edge.rules.model import DerivedRule

if TYPE_CHECKING:
    from edge.rules.state import EngineState

__all__ = ["DerivedEval", "as_float"]


class DerivedEval(Evaluator):
    """A derived point: recomputed when an input gets a reading and every input has a value."""

    __slots__ = ("fn", "inputs", "pos", "vfn")

    def __init__(self, rule: DerivedRule, idx: int) -> None:
        super().__init__(rule, idx)
        assert rule.expression is not None
        self.fn = rule.expression.fn
        self.vfn = rule.expression.vector_fn
        self.inputs = rule.expression.inputs
        self.pos = {name: i for i, name in enumerate(self.inputs)}

    def new_runtime(self) -> AlarmRuntime:
        """Runtime holding each input's last value (None: no value) and quality code."""
        rt = AlarmRuntime()
        rt.aux.update(vals=[None] * len(self.inputs), quals=[0] * len(self.inputs))
        return rt

    def update(
        self, st: EngineState, point: str, value: Any, q: Quality
    ) -> tuple[float | None, Quality] | None:
        """Record an input reading; return the derived ``(value, quality)`` or None."""
        rt = st.rt[self.idx]
        i = self.pos[point]
        vals: list[float | None] = rt.aux["vals"]
        quals: list[int] = rt.aux["quals"]
        vals[i] = as_float(value)
        quals[i] = QUALITY_CODE[q]
        if None in vals:
            return None
        out = self.fn(*vals)
        if out != out:  # NaN: undefined arithmetic
            return None, Quality.CONFIG_ERROR
        return out, QUALITIES[max(quals)]

    def on_reading(
        self, st: EngineState, t: float, seq: int, fv: float | None, q: Quality, out: Out
    ) -> None:
        """Derived rules are driven by the engine's dispatch (see :meth:`update`)."""


def as_float(value: Any) -> float | None:
    """A reading's value as a finite-or-infinite float, None when not numeric or NaN."""
    tv = type(value)
    if tv is float:
        f: float = value
        return f if f == f else None
    if tv is int or tv is bool:
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        f = float(value)
        return f if f == f else None
    return None
