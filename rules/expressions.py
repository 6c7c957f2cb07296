"""Safe arithmetic expressions over points, checked with :mod:`ast` and compiled to closures.

The grammar is a tiny subset of Python's: numbers, point names, ``+ - * / **``, unary ``-``/``+``,
parentheses, and calls of ``abs(x)``, ``min(x, ...)``, ``max(x, ...)``, ``avg(x, ...)``. Nothing
else parses: no attribute access, no subscripts, no comparisons, no other calls. The text is
never handed to ``eval``/``compile``; each node of the checked tree becomes a Python closure
(scalar form) and a numpy closure (vector form) with identical semantics:

* every value is a float (integer literals included), so ``2 ** 1000`` cannot build a huge int;
* ``x / 0``, an overflowing ``**``, ``0 ** -1`` and a fractional power of a negative number
  give NaN; NaN propagates through every operation (``min``/``max`` return NaN if any argument
  is NaN, ``nan ** 0`` is NaN, unlike Python's and numpy's 1);
* a result that is not finite (inf or NaN) is NaN: callers read NaN as "no value".
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from edge.rules.model import Expression

if TYPE_CHECKING:
    from edge.rules.model import FloatArray

__all__ = ["FUNCTIONS", "ExpressionError", "compile_expression", "did_you_mean"]

#: Functions an expression may call, with their least and most argument counts (None = any).
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1),
    "min": (1, None),
    "max": (1, None),
    "avg": (1, None),
}

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_NAN = math.nan

Scalar = Callable[[Sequence[float]], float]


class ExpressionError(ValueError):
    """An expression is not acceptable.

    Attributes:
        problems: ``(col, message)`` pairs; ``col`` is the 0-based character offset in the
            expression text where the problem starts.
    """

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


def did_you_mean(name: str, candidates: Collection[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(node: ast.AST) -> str:
    """Name a disallowed construct the way an integrator would."""
    if isinstance(node, ast.Attribute):
        return f"attribute access '{ast.unparse(node)}' is not allowed"
    if isinstance(node, ast.Subscript):
        return f"indexing '{ast.unparse(node)}' is not allowed"
    if isinstance(node, ast.Compare):
        return "comparisons are not allowed in an expression (use a limit rule)"
    if isinstance(node, ast.BoolOp):
        return "'and'/'or' are not allowed in an expression"
    if isinstance(node, ast.Constant):
        return f"constant {node.value!r} is not a number"
    if isinstance(node, ast.BinOp):
        return f"operator '{type(node.op).__name__}' is not allowed (allowed: + - * / **)"
    if isinstance(node, ast.UnaryOp):
        return f"unary operator '{type(node.op).__name__}' is not allowed (allowed: -)"
    return f"{type(node).__name__.lower()} is not allowed in an expression"


class _Checker:
    """Walk a parsed tree, collecting every problem and the point names it reads."""

    def __init__(self, known: Collection[str] | None) -> None:
        self.known = known
        self.problems: list[tuple[int, str]] = []
        self.names: set[str] = set()

    def check(self, node: ast.AST) -> None:
        col = getattr(node, "col_offset", 0)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.problems.append((col, _describe(node)))
            elif (isinstance(value, int) and abs(value) >= 2**1023) or not math.isfinite(value):
                self.problems.append((col, "number is too large"))
        elif isinstance(node, ast.Name):
            if self.known is not None and node.id not in self.known:
                hint = did_you_mean(node.id, self.known)
                self.problems.append((col, f"unknown point {node.id!r}{hint}"))
            self.names.add(node.id)
        elif isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            self.check(node.left)
            self.check(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            self.check(node.operand)
        elif isinstance(node, ast.Call):
            self._check_call(node)
        else:
            self.problems.append((col, _describe(node)))

    def _check_call(self, node: ast.Call) -> None:
        col = node.col_offset
        if not isinstance(node.func, ast.Name):
            self.problems.append((col, f"call of '{ast.unparse(node.func)}' is not allowed"))
            return
        name = node.func.id
        allowed = ", ".join(FUNCTIONS)
        if name not in FUNCTIONS:
            hint = did_you_mean(name, FUNCTIONS)
            self.problems.append(
                (col, f"function {name!r} is not allowed{hint} (allowed: {allowed})")
            )
            return
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            self.problems.append((col, f"{name}() takes plain arguments only"))
            return
        least, most = FUNCTIONS[name]
        n = len(node.args)
        if n < least or (most is not None and n > most):
            want = f"exactly {least}" if least == most else f"at least {least}"
            self.problems.append((col, f"{name}() takes {want} argument(s), got {n}"))
        for arg in node.args:
            self.check(arg)


def parse_expression(text: str, known: Collection[str] | None = None) -> tuple[ast.expr, set[str]]:
    """Parse and check ``text``; return the tree and the point names it reads.

    Args:
        text: the expression.
        known: point names it may read; None = any name.

    Raises:
        ExpressionError: every problem found.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError([(0, "empty expression")])
    lead = len(text) - len(text.lstrip())
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = lead + max(0, (exc.offset or 1) - 1)
        raise ExpressionError([(col, f"syntax error in expression: {exc.msg}")]) from None
    checker = _Checker(known)
    checker.check(tree.body)
    if checker.problems:
        raise ExpressionError(sorted((lead + col, msg) for col, msg in checker.problems))
    return tree.body, checker.names


def compile_expression(text: str, known: Collection[str] | None = None) -> Expression:
    """Check ``text`` and compile it to an :class:`~edge.rules.model.Expression`.

    Raises:
        ExpressionError: every problem found (syntax, disallowed constructs, unknown names).
    """
    tree, names = parse_expression(text, known)
    inputs = tuple(sorted(names))
    index = {name: i for i, name in enumerate(inputs)}
    scalar = _scalar(tree, index)

    def fn(*values: float) -> float:
        try:
            result = scalar(values)
        except (ZeroDivisionError, OverflowError):
            return _NAN
        return result if math.isfinite(result) else _NAN

    vector: list[Callable[..., FloatArray]] = []

    def vector_fn(*arrays: FloatArray) -> FloatArray:
        # numpy's form is built on first use (replay, rule tests): a running node evaluates
        # scalars only and does not load numpy (docs/design.md, "Memory and CPU ...")
        if not vector:
            from edge.rules.expressions_vector import vector_function

            vector.append(vector_function(tree, index))
        return vector[0](*arrays)

    return Expression(source=ast.unparse(tree), inputs=inputs, fn=fn, vector_fn=vector_fn)


# --- scalar closures ------------------------------------------------------------------------


def _s_div(a: float, b: float) -> float:
    return _NAN if b == 0 else a / b


def _s_pow(a: float, b: float) -> float:
    if a != a or b != b:  # NaN propagates (Python says nan ** 0 == 1 ** nan == 1)
        return _NAN
    try:
        r = a**b
    except (OverflowError, ZeroDivisionError):
        return _NAN
    return _NAN if isinstance(r, complex) else r


def _s_min(xs: list[float]) -> float:
    m = xs[0]
    for x in xs:
        if x != x:  # NaN wins, whatever its position (builtin min depends on order)
            return _NAN
        if x < m:
            m = x
    return m


def _s_max(xs: list[float]) -> float:
    m = xs[0]
    for x in xs:
        if x != x:
            return _NAN
        if x > m:
            m = x
    return m


def _s_min2(a: float, b: float) -> float:
    if a != a or b != b:
        return _NAN
    return b if b < a else a  # as builtin min: the first of equals


def _s_max2(a: float, b: float) -> float:
    if a != a or b != b:
        return _NAN
    return b if b > a else a


def _s_avg(xs: list[float]) -> float:
    acc = xs[0]
    for x in xs[1:]:
        acc = acc + x
    return acc / len(xs)


_S_BIN: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: _s_div,
    ast.Pow: _s_pow,
}
_S_FUNCS: dict[str, Callable[[list[float]], float]] = {
    "abs": lambda xs: abs(xs[0]),
    "min": _s_min,
    "max": _s_max,
    "avg": _s_avg,
}


def _scalar(node: ast.expr, index: dict[str, int]) -> Scalar:
    """Build the scalar closure of a checked node."""
    if isinstance(node, ast.Constant):
        c = float(node.value)  # type: ignore[arg-type]  # checked: int or float
        return lambda v: c
    if isinstance(node, ast.Name):
        i = index[node.id]
        return lambda v: v[i]
    if isinstance(node, ast.UnaryOp):
        inner = _scalar(node.operand, index)
        if isinstance(node.op, ast.UAdd):
            return inner
        return lambda v: -inner(v)
    if isinstance(node, ast.BinOp):
        left, right = _scalar(node.left, index), _scalar(node.right, index)
        fast = _fast_binop(node, index, left, right)
        if fast is not None:
            return fast
        op = _S_BIN[type(node.op)]
        return lambda v: op(left(v), right(v))
    assert isinstance(node, ast.Call)
    assert isinstance(node.func, ast.Name)
    args = [_scalar(a, index) for a in node.args]
    func = _S_FUNCS[node.func.id]
    if len(args) == 1:
        (x,) = args
        if node.func.id == "abs":
            return lambda v: abs(x(v))
        return lambda v: func([x(v)])
    if len(args) == 2:
        x, y = args
        if node.func.id == "min":
            return lambda v: _s_min2(x(v), y(v))
        if node.func.id == "max":
            return lambda v: _s_max2(x(v), y(v))
        return lambda v: func([x(v), y(v)])
    return lambda v: func([a(v) for a in args])


def _fast_binop(
    node: ast.BinOp, index: dict[str, int], left: Scalar, right: Scalar
) -> Scalar | None:
    """Closures for + - * / that read point values and constants inline (one call, not three).

    Per-reading cost matters (docs/design.md: a few microseconds per reading); the generic closure
    calls two operand closures and an operator function.
    """
    op = type(node.op)
    a, b = node.left, node.right
    if op is ast.Div:
        if isinstance(b, ast.Constant) and float(b.value) != 0:  # type: ignore[arg-type]
            c = float(b.value)  # type: ignore[arg-type]
            return lambda v: left(v) / c

        def divide(v: Sequence[float]) -> float:
            d = right(v)
            return _NAN if d == 0 else left(v) / d

        return divide
    if op not in (ast.Add, ast.Sub, ast.Mult):
        return None
    if isinstance(a, ast.Name) and isinstance(b, ast.Constant):
        i, c = index[a.id], float(b.value)  # type: ignore[arg-type]
        if op is ast.Add:
            return lambda v: v[i] + c
        if op is ast.Sub:
            return lambda v: v[i] - c
        return lambda v: v[i] * c
    if isinstance(a, ast.Constant) and isinstance(b, ast.Name):
        c, j = float(a.value), index[b.id]  # type: ignore[arg-type]
        if op is ast.Add:
            return lambda v: c + v[j]
        if op is ast.Sub:
            return lambda v: c - v[j]
        return lambda v: c * v[j]
    if isinstance(a, ast.Name) and isinstance(b, ast.Name):
        i, j = index[a.id], index[b.id]
        if op is ast.Add:
            return lambda v: v[i] + v[j]
        if op is ast.Sub:
            return lambda v: v[i] - v[j]
        return lambda v: v[i] * v[j]
    if op is ast.Add:
        return lambda v: left(v) + right(v)
    if op is ast.Sub:
        return lambda v: left(v) - right(v)
    return lambda v: left(v) * right(v)
