#!/usr/bin/env python3
"""Compactness of slope's derivatives against SymPy's simplified ones.

For each expression, `slope diff --json EXPR` (the release binary) gives a
printed derivative; SymPy reads it back and counts its operations with
`count_ops`. SymPy differentiates the same function, written with
elementary functions only (it has no sigmoid, relu, ...), and its
`count_ops(simplify(diff(e)))` is the reference.

Counting (the same `count_ops` on both sides):
  * slope's built-ins that SymPy lacks (`sigmoid`, `relu`, `softplus`,
    `where`) are undefined SymPy functions: one op per application, plus
    the ops of their arguments; a comparison `x > 0` is one op.
  * SymPy's own `Piecewise`, `Heaviside`, `Max` count as one op each (its
    `count_ops` does so), the same treatment as slope's `where`.
  * numbers, `pi` and `e` are free on both sides; `a - b` and `a/b` count as
    one op each (SymPy's convention).

Run (from the repository root, after `cargo build --release`):
    /work/venv-sympy/bin/python benches/sympy_compare.py
Prints a table and the median ratio slope/SymPy (goal <= 1).
"""

import json
import os
import statistics
import subprocess
import sys

import sympy as sp
from sympy.parsing.sympy_parser import (
    convert_xor,
    parse_expr,
    standard_transformations,
)

SLOPE = os.environ.get("SLOPE", "target/release/slope")
x = sp.Symbol("x", real=True)

# slope's built-ins, as opaque functions for reading slope's output.
OPAQUE = {name: sp.Function(name) for name in ["sigmoid", "relu", "softplus", "where"]}


def read_slope(text):
    """A printed slope expression as a SymPy expression with opaque built-ins."""
    local = dict(OPAQUE)
    local.update({"x": x, "e": sp.E, "pi": sp.pi, "exp": sp.exp, "log": sp.log,
                  "sqrt": sp.sqrt, "abs": sp.Abs, "sin": sp.sin, "cos": sp.cos,
                  "tanh": sp.tanh, "max": sp.Max, "min": sp.Min})
    return parse_expr(text, local_dict=local,
                      transformations=standard_transformations + (convert_xor,))


# Elementary definitions for SymPy (spec §5).
def sigmoid(u):
    return 1 / (1 + sp.exp(-u))


def softplus(u):
    return sp.log(1 + sp.exp(u))


def relu(u):
    return sp.Max(u, 0)


def leaky_relu(u):
    return sp.Piecewise((u, u > 0), (sp.Rational(1, 100) * u, True))


def elu(u):
    return sp.Piecewise((u, u > 0), (sp.exp(u) - 1, True))


def swish(u):
    return u * sigmoid(u)


def gelu(u):
    return sp.Rational(1, 2) * u * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (u + sp.Float(0.044715) * u**3)))


SYMPY_ENV = {"x": x, "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs,
             "sin": sp.sin, "cos": sp.cos, "tanh": sp.tanh, "sigmoid": sigmoid,
             "softplus": softplus, "relu": relu, "leaky_relu": leaky_relu, "elu": elu,
             "swish": swish, "gelu": gelu, "identity": lambda u: u, "pi": sp.pi, "e": sp.E}

EXPRESSIONS = [
    # built-in activations
    "sigmoid(x)", "tanh(x)", "relu(x)", "softplus(x)", "swish(x)", "gelu(x)",
    "leaky_relu(x)", "elu(x)", "identity(x)",
    # polynomials
    "x^3", "2*x^3 - 4*x + 7", "(2*x + 1)^3", "x^2*(x - 1)^2", "(x^2 + 1)^4",
    # quotients
    "1/x", "(x - 1)/(x + 1)", "x/(1 + x^2)", "exp(x)/x", "sin(x)/cos(x)", "x/(1 + abs(x))",
    # general powers and logs
    "x^x", "2^x", "x^0.5", "log(x^2 + 1)", "x*log(x) - x", "log(sigmoid(x))", "log(1 + exp(x))",
    # trig and compositions
    "sin(x)*cos(x)", "sin(cos(x))", "exp(sin(x^2))", "tanh(x)^2", "cos(x^2)",
    "sqrt(1 + x^2)", "x*exp(x)", "exp(-x^2/2)", "sigmoid(2*x + 1)", "tanh(sigmoid(x))",
    "x^2*sin(x)", "softplus(2*x)/2",
]


def slope_derivative(expr):
    out = subprocess.run([SLOPE, "diff", "--json", expr], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["derivative"]


def main():
    rows = []
    for expr in EXPRESSIONS:
        printed = slope_derivative(expr)
        ours = sp.count_ops(read_slope(printed))
        f = parse_expr(expr, local_dict=SYMPY_ENV,
                       transformations=standard_transformations + (convert_xor,))
        ref = sp.simplify(sp.diff(f, x))
        theirs = sp.count_ops(ref)
        ratio = ours / theirs if theirs else (1.0 if ours == 0 else float("inf"))
        rows.append((expr, printed, ours, str(ref), theirs, ratio))
    width = max(len(r[0]) for r in rows)
    print(f"| {'expression':{width}} | slope ops | SymPy ops | ratio | slope derivative | SymPy simplify(diff) |")
    print(f"|{'-' * (width + 2)}|-----------|-----------|-------|------------------|---------------------|")
    for expr, printed, ours, ref, theirs, ratio in rows:
        print(f"| {expr:{width}} | {ours:9} | {theirs:9} | {ratio:5.2f} | `{printed}` | `{ref}` |")
    ratios = [r[5] for r in rows]
    print(f"\n{len(rows)} expressions; median ratio slope/SymPy = {statistics.median(ratios):.3f}; "
          f"slope smaller in {sum(r < 1 for r in ratios)}, equal in {sum(r == 1 for r in ratios)}, "
          f"larger in {sum(r > 1 for r in ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
