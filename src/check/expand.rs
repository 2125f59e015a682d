//! Limits on formulas once the activations they call are inlined.
//!
//! The parser bounds the nesting of one formula, but activations may call
//! each other: `a2(x) = tanh(a1(x))`, `a3(x) = tanh(a2(x))`, ... nests one
//! level deeper per item, and `a2(x) = a1(a1(x))` doubles the size per item.
//! Lowering inlines every call, and differentiation, simplification and the
//! printers walk the result recursively and print it as a tree, so without
//! these limits such a file overflows the stack or runs for ever. Each
//! activation and loss item is measured as the tree it becomes after
//! inlining (saturating arithmetic: the sizes can exceed any integer).

use super::builtins::Builtin;
use crate::diag::Diagnostic;
use crate::syntax::ast::{Expr, ExprKind, FuncDef};
use std::collections::HashMap;

/// Nesting depth allowed after inlining: the parser's limit for one formula.
pub const MAX_EXPANDED_DEPTH: u64 = crate::syntax::MAX_DEPTH as u64;

/// Tree size (number of operations, numbers and variables) allowed after
/// inlining. Hand-written activations are a few dozen nodes; the printed
/// derivative of a tree grows with its size times its depth. A formula
/// written larger than this (a long flat sum, say) may keep its own size:
/// the limit is on what inlining adds, never on what is written.
pub const MAX_EXPANDED_SIZE: u64 = 2_000;

/// Chains (`a + b + c ...`, [`ExprKind::Chain`]) of up to this many
/// operands are lowered as the nested binary nodes they mean; longer ones
/// as one n-ary node, so that a sum of a million terms is not a graph a
/// million levels deep. Lowering and the measure here agree on it.
pub const NESTED_CHAIN: usize = 32;

/// The measure of a formula after inlining, with its parameters as holes.
#[derive(Clone, Copy, Debug)]
struct Measure {
    /// Number of nodes of the tree.
    size: u64,
    /// Nesting depth (a leaf is 1).
    depth: u64,
    /// Number of parameter occurrences (holes).
    holes: u64,
    /// Levels above the deepest hole, if there is one.
    hole_depth: Option<u64>,
}

impl Measure {
    const LEAF: Measure = Measure {
        size: 1,
        depth: 1,
        holes: 0,
        hole_depth: None,
    };
    const HOLE: Measure = Measure {
        size: 1,
        depth: 1,
        holes: 1,
        hole_depth: Some(0),
    };

    /// A node over `children`.
    fn node(children: &[Measure]) -> Measure {
        let mut m = Measure {
            size: 1,
            depth: 1,
            holes: 0,
            hole_depth: None,
        };
        for c in children {
            m.size = m.size.saturating_add(c.size);
            m.depth = m.depth.max(c.depth.saturating_add(1));
            m.holes = m.holes.saturating_add(c.holes);
            m.hole_depth = m.hole_depth.max(c.hole_depth.map(|d| d.saturating_add(1)));
        }
        m
    }

    /// `f` (a one-parameter activation) with its holes replaced by `arg`.
    fn substitute(f: Measure, arg: Measure) -> Measure {
        let Some(fd) = f.hole_depth else {
            return f;
        };
        Measure {
            size: (f.size - f.holes).saturating_add(f.holes.saturating_mul(arg.size)),
            depth: f.depth.max(fd.saturating_add(arg.depth)),
            holes: f.holes.saturating_mul(arg.holes),
            hole_depth: arg.hole_depth.map(|d| d.saturating_add(fd)),
        }
    }

    /// Beyond the limits, for a formula of `written` nodes as written.
    fn too_large(&self, written: u64) -> bool {
        self.size > MAX_EXPANDED_SIZE.max(written) || self.depth > MAX_EXPANDED_DEPTH
    }

    /// A chain's measure from its operands' (in order), built as lowering
    /// builds it ([`NESTED_CHAIN`]).
    fn chain(operands: &[Measure]) -> Measure {
        if operands.len() > NESTED_CHAIN {
            return Measure::node(operands);
        }
        let mut m = operands[0];
        for c in &operands[1..] {
            m = Measure::node(&[m, *c]);
        }
        m
    }
}

/// Reports every activation and loss item whose inlined tree is too deep or
/// too large. Must only run when the activations have no cycles and every
/// call names a known function: `calls[i]` lists the activations that
/// activation `i` calls.
pub(super) fn check_sizes(
    activations: &[&FuncDef],
    losses: &[&FuncDef],
    calls: &[Vec<usize>],
    diags: &mut Vec<Diagnostic>,
) {
    // A map, not a list: a file with thousands of activations must not make
    // every call's lookup a linear scan. Only lookups use it, never its order.
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, d) in activations.iter().enumerate() {
        names.entry(d.name.name.as_str()).or_insert(i);
    }
    let builtins = builtin_measures();
    // None: not measured yet, or (after reporting) too large; callers of a
    // reported activation are not reported again.
    let mut measures: Vec<Option<Measure>> = vec![None; activations.len()];
    let mut reported = vec![false; activations.len()];
    for i in post_order(calls) {
        if calls[i].iter().any(|&c| reported[c]) {
            reported[i] = true;
            continue;
        }
        let (m, written) = measure(activations[i], &names, &measures, builtins);
        if m.too_large(written) {
            reported[i] = true;
            diags.push(too_large(activations[i], "activation", m));
        } else {
            measures[i] = Some(m);
        }
    }
    for def in losses {
        let calls_reported = calls_any(&def.body, &names, &reported);
        if calls_reported {
            continue;
        }
        let (m, written) = measure(def, &names, &measures, builtins);
        if m.too_large(written) {
            diags.push(too_large(def, "loss", m));
        }
    }
}

/// The activations in an order where every callee comes before its callers
/// (an iterative depth-first search: chains of items can be long).
fn post_order(calls: &[Vec<usize>]) -> Vec<usize> {
    let mut done = vec![false; calls.len()];
    let mut order = Vec::with_capacity(calls.len());
    for root in 0..calls.len() {
        if done[root] {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        done[root] = true;
        while let Some(frame) = path.last_mut() {
            let (node, next) = *frame;
            match calls[node].get(next) {
                Some(&callee) => {
                    frame.1 += 1;
                    if !done[callee] {
                        done[callee] = true;
                        path.push((callee, 0));
                    }
                }
                None => {
                    order.push(node);
                    path.pop();
                }
            }
        }
    }
    order
}

/// The measure of `def`'s body, its parameters as holes; calls to
/// activations use their measures (`None` ones count as leaves: they were
/// reported or are unknown, which other checks report). Also the number of
/// nodes as written.
fn measure(
    def: &FuncDef,
    names: &HashMap<&str, usize>,
    measures: &[Option<Measure>],
    builtins: &[(&str, Measure)],
) -> (Measure, u64) {
    let params: Vec<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
    measure_expr(&def.body, &params, names, measures, builtins)
}

/// The measures of the built-in activations that lowering expands into
/// their formulas ([`Builtin::formula`]), which use their argument several
/// times (spec section 5): nesting them multiplies sizes.
///
/// Computed once per process: parsing the formulas on every check cost
/// about a microsecond, a quarter of checking a small file.
fn builtin_measures() -> &'static [(&'static str, Measure)] {
    static MEASURES: std::sync::OnceLock<Vec<(&'static str, Measure)>> = std::sync::OnceLock::new();
    MEASURES.get_or_init(|| {
        Builtin::ALL
            .iter()
            .filter_map(|b| Some((b.name(), b.formula()?)))
            .map(|(name, formula)| {
                let body = crate::syntax::parse_expr(formula)
                    .expect("the built-in formulas of the spec parse");
                (
                    name,
                    measure_expr(&body, &["x"], &HashMap::new(), &[], &[]).0,
                )
            })
            .collect()
    })
}

/// The measure of `body` with `params` as holes, and its number of nodes
/// as written.
fn measure_expr(
    body: &Expr,
    params: &[&str],
    names: &HashMap<&str, usize>,
    measures: &[Option<Measure>],
    builtins: &[(&str, Measure)],
) -> (Measure, u64) {
    // Post-order walk with an explicit stack: (expression, children done).
    let mut stack: Vec<(&Expr, bool)> = vec![(body, false)];
    let mut values: Vec<Measure> = Vec::new();
    let mut written: u64 = 0;
    while let Some((expr, expanded)) = stack.pop() {
        // Children are pushed straight onto the stack (no list per node):
        // this walk runs over every formula of the file.
        let arity = match &expr.kind {
            ExprKind::Number { .. } | ExprKind::Var(_) => 0,
            ExprKind::Neg(_) | ExprKind::Paren(_) => 1,
            ExprKind::Binary { .. } => 2,
            ExprKind::Chain { rest, .. } => 1 + rest.len(),
            ExprKind::Call { args, .. } => args.len(),
        };
        if !expanded {
            written = written.saturating_add(arity.max(1) as u64);
        }
        if !expanded && arity > 0 {
            stack.push((expr, true));
            match &expr.kind {
                ExprKind::Number { .. } | ExprKind::Var(_) => {}
                ExprKind::Neg(a) | ExprKind::Paren(a) => stack.push((a, false)),
                ExprKind::Binary { lhs, rhs, .. } => {
                    stack.push((rhs, false));
                    stack.push((lhs, false));
                }
                ExprKind::Chain { first, rest } => {
                    stack.extend(rest.iter().rev().map(|(_, c)| (c, false)));
                    stack.push((first, false));
                }
                ExprKind::Call { args, .. } => stack.extend(args.iter().rev().map(|c| (c, false))),
            }
            continue;
        }
        let first = values.len() - arity;
        let args = &values[first..];
        let m = match &expr.kind {
            ExprKind::Number { .. } => Measure::LEAF,
            ExprKind::Var(v) if params.contains(&v.as_str()) => Measure::HOLE,
            ExprKind::Var(_) => Measure::LEAF,
            // Parentheses are not a node of the lowered formula.
            ExprKind::Paren(_) => args[0],
            ExprKind::Call { func, .. } => {
                let callee = names
                    .get(func.name.as_str())
                    .and_then(|&i| measures[i])
                    .or_else(|| {
                        builtins
                            .iter()
                            .find(|(n, _)| *n == func.name)
                            .map(|(_, m)| *m)
                    });
                match (callee, args) {
                    (Some(f), [arg]) => Measure::substitute(f, *arg),
                    _ => Measure::node(args),
                }
            }
            ExprKind::Neg(_) | ExprKind::Binary { .. } => Measure::node(args),
            ExprKind::Chain { .. } => Measure::chain(args),
        };
        values.truncate(first);
        values.push(m);
    }
    let m = values
        .pop()
        .expect("the walk leaves exactly the body's measure");
    (m, written)
}

/// Whether `body` calls an activation marked in `flags`.
fn calls_any(body: &Expr, names: &HashMap<&str, usize>, flags: &[bool]) -> bool {
    let mut stack = vec![body];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Number { .. } | ExprKind::Var(_) => {}
            ExprKind::Neg(a) | ExprKind::Paren(a) => stack.push(a),
            ExprKind::Binary { lhs, rhs, .. } => {
                stack.push(lhs);
                stack.push(rhs);
            }
            ExprKind::Chain { first, rest } => {
                stack.push(first);
                stack.extend(rest.iter().map(|(_, c)| c));
            }
            ExprKind::Call { func, args } => {
                if names.get(func.name.as_str()).is_some_and(|&i| flags[i]) {
                    return true;
                }
                stack.extend(args);
            }
        }
    }
    false
}

fn too_large(def: &FuncDef, kind: &str, m: Measure) -> Diagnostic {
    let name = &def.name.name;
    let (what, label) = if m.depth > MAX_EXPANDED_DEPTH {
        (
            format!(
                "{kind} '{name}' nests more than {MAX_EXPANDED_DEPTH} levels deep once the activations it calls are inlined"
            ),
            format!("{} levels deep", shown(m.depth)),
        )
    } else {
        (
            format!(
                "{kind} '{name}' has more than {} operations once the activations it calls are inlined",
                shown(MAX_EXPANDED_SIZE)
            ),
            format!("{} operations", shown(m.size)),
        )
    };
    let note = if m.depth > MAX_EXPANDED_DEPTH {
        "every call is inlined, so each activation that calls another nests one level deeper"
    } else {
        "every call is inlined, so calling an activation twice in a formula doubles the size"
    };
    Diagnostic::error(what, def.name.span)
        .with_label(label)
        .with_note(note)
        .with_help("define it with fewer nested calls")
}

/// A count with thousands separators; saturated counts are shown as a bound.
fn shown(n: u64) -> String {
    if n == u64::MAX {
        return "more than 10^19".to_string();
    }
    crate::diag::thousands(n)
}

/// The names of the built-ins with a formula: `leaky_relu, elu, ... and gelu`.
fn expanded_names() -> String {
    let names: Vec<&str> = Builtin::ALL
        .iter()
        .filter(|b| b.formula().is_some())
        .map(|b| b.name())
        .collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The size `slope diff` accepts for one expression once built-in
/// activations are expanded: larger than [`MAX_EXPANDED_SIZE`] so printed
/// derivatives can be pasted back, small enough that `gelu(gelu(...))`
/// nested seven deep (about 20,000 operations; its derivative printed for
/// minutes) is refused. Five deep (2,179) prints in a fraction of a second.
pub const MAX_EXPRESSION_SIZE: u64 = 5_000;

/// Checks one standalone expression (variables are leaves) against
/// [`MAX_EXPRESSION_SIZE`] and [`MAX_EXPANDED_DEPTH`]; the diagnostic points
/// at the whole expression.
pub fn check_expression(expr: &Expr) -> Option<Diagnostic> {
    let builtins = builtin_measures();
    let (m, written) = measure_expr(expr, &[], &HashMap::new(), &[], builtins);
    let what = if m.depth > MAX_EXPANDED_DEPTH {
        format!(
            "the expression nests more than {MAX_EXPANDED_DEPTH} levels deep once built-in activations are expanded"
        )
    } else if m.size > MAX_EXPRESSION_SIZE.max(written) {
        format!(
            "the expression has more than {} operations once built-in activations are expanded",
            shown(MAX_EXPRESSION_SIZE)
        )
    } else {
        return None;
    };
    Some(
        Diagnostic::error(what, expr.span)
            .with_label(format!(
                "{} operations, {} levels deep",
                shown(m.size),
                shown(m.depth)
            ))
            .with_note(format!(
                "{} use their argument several times, so nesting them multiplies the size",
                expanded_names()
            ))
            .with_help("nest fewer of them"),
    )
}
