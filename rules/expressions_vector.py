"""The numpy (vector) form of a checked expression, for replay and rule tests.

Apart from :mod:`edge.rules.expressions` so that a running node, which evaluates expressions
one reading at a time (the scalar form), does not import numpy. Same semantics as the scalar
form: division by zero and non-finite results are NaN, ``**`` through the C library's pow.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.rules.expressions import _s_pow

FloatArray = npt.NDArray[np.float64]

__all__ = ["vector_function"]

_NAN = math.nan
Vector = Callable[[Sequence[FloatArray]], Any]


def vector_function(tree: ast.expr, index: dict[str, int]) -> Callable[..., FloatArray]:
    """The numpy function of a checked expression tree (inputs by position, as ``index``)."""
    vector = _vector(tree, index)

    def vector_fn(*arrays: FloatArray) -> FloatArray:
        with np.errstate(all="ignore"):
            result = np.asarray(vector([np.asarray(a, dtype=np.float64) for a in arrays]))
            result = result.astype(np.float64, copy=True)
            result[~np.isfinite(result)] = _NAN
        return result

    return vector_fn


# --- vector closures ------------------------------------------------------------------------


def _v_div(a: Any, b: Any) -> Any:
    return np.where(b == 0, _NAN, np.divide(a, np.where(b == 0, 1.0, b)))


def _v_pow(a: Any, b: Any) -> Any:
    # Element by element through the scalar form, not np.power: numpy's power is vectorised
    # (SVML on AVX-512 CPUs) and differs from the C library's pow, which Python's ** calls, in
    # the last bit for some inputs (0.5 ** -1.898), and replay must reach the decisions that
    # streaming reaches. ~0.1 us per element; ** is rare in derived points.
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    flat = map(_s_pow, a.ravel().tolist(), b.ravel().tolist())
    return np.fromiter(flat, dtype=np.float64, count=a.size).reshape(a.shape)


def _v_reduce(op: Callable[[Any, Any], Any]) -> Callable[[list[Any]], Any]:
    def reduce(xs: list[Any]) -> Any:
        acc = xs[0]
        for x in xs[1:]:
            acc = op(acc, x)
        return acc

    return reduce


def _v_avg(xs: list[Any]) -> Any:
    acc = xs[0]
    for x in xs[1:]:
        acc = acc + x
    return acc / len(xs)


_V_BIN: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: _v_div,
    ast.Pow: _v_pow,
}
_V_FUNCS: dict[str, Callable[[list[Any]], Any]] = {
    "abs": lambda xs: np.abs(xs[0]),
    "min": _v_reduce(np.minimum),
    "max": _v_reduce(np.maximum),
    "avg": _v_avg,
}


def _vector(node: ast.expr, index: dict[str, int]) -> Vector:
    """Build the numpy closure of a checked node."""
    if isinstance(node, ast.Constant):
        cv = np.float64(node.value)  # type: ignore[arg-type]  # checked: int or float
        return lambda v: cv
    if isinstance(node, ast.Name):
        i = index[node.id]
        return lambda v: v[i]
    if isinstance(node, ast.UnaryOp):
        inner = _vector(node.operand, index)
        if isinstance(node.op, ast.UAdd):
            return inner
        return lambda v: np.negative(inner(v))
    if isinstance(node, ast.BinOp):
        left, right = _vector(node.left, index), _vector(node.right, index)
        op = _V_BIN[type(node.op)]
        return lambda v: op(left(v), right(v))
    assert isinstance(node, ast.Call)
    assert isinstance(node.func, ast.Name)
    args = [_vector(a, index) for a in node.args]
    func = _V_FUNCS[node.func.id]
    return lambda v: func([a(v) for a in args])
