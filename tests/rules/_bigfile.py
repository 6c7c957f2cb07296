"""A generated rule file of realistic shape and about 5 MB (18,000 rules), for the loader's bound."""

from __future__ import annotations

from pathlib import Path

#: rules in the generated file (about 280 bytes each, 5 MB in all)
RULES = 18_000


def big_points(n: int = RULES) -> dict[str, str]:
    """The points the generated file watches, name -> unit (one point per four rules)."""
    return {f"line{i // 4}_temp": "degC" for i in range(n)}


def write_big_rule_file(path: Path, n: int = RULES) -> Path:
    """Write ``n`` rules over ``n // 4`` points (limit, stale, spc, rate in turn) to ``path``."""
    out = ["# generated: one limit, stale, spc and rate rule per tunnel", "version: 1", "units:"]
    out += [f"  line{p}_temp: degC" for p in range((n + 3) // 4)]
    out.append("rules:")
    for i in range(n):
        p = f"line{i // 4}_temp"
        kind = i % 4
        out.append(f"  # tunnel {i // 4}, rule {i % 4 + 1} of 4 (generated for the load bound)")
        if kind == 0:
            out += [
                f"  - id: tunnel-{i}-temp-high", "    kind: limit", f"    point: {p}",
                "    high: 8.0 degC", "    deadband: 0.5 degC       # clears at 7.5 degC",
                "    on_delay: 2s", "    off_delay: 2s", "    severity: high",
                "    tags: [cold-chain, haccp]",
                '    message: "tunnel temperature {value} {unit} above {limit} {unit}"',
            ]  # fmt: skip
        elif kind == 1:
            out += [
                f"  - id: tunnel-{i}-temp-stale", "    kind: stale", f"    point: {p}",
                "    max_age: 5s", "    severity: medium", "    tags: [cold-chain]",
                '    message: "no reading from {point} for more than {limit} s"',
            ]  # fmt: skip
        elif kind == 2:
            out += [
                f"  - id: tunnel-{i}-temp-spc", "    kind: spc", f"    point: {p}",
                "    center: 4.0 degC         # the setpoint", "    sigma: 0.25 degC",
                "    nelson: [1, 5]", "    severity: low", "    tags: [spc]",
                '    message: "{point} out of statistical control: {limit}"',
            ]  # fmt: skip
        else:
            out += [
                f"  - id: tunnel-{i}-temp-rate", "    kind: rate", f"    point: {p}",
                "    max_change: 2.0 degC", "    per: 1m", "    window: 30s",
                "    direction: rise", "    severity: medium",
                "    tags: [cold-chain]", '    message: "{point} rises too fast: {value} {unit}"',
            ]  # fmt: skip
        out.append("")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path
