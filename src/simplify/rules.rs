//! The rewrite rules: one named line each in [`RULES`], each a function that
//! looks at one node (whose operands are already simplified) and returns its
//! replacement, or `None` when it does not apply.
//!
//! **Soundness policy.** A rewrite must leave every root's value unchanged
//! wherever that value is a number (not NaN or ±inf). Most rules are plain
//! identities. Two (`div-self`: `x/x = 1`, `exp-log`: `exp(log(x)) = x`)
//! change a value only where the node was NaN (`0/0`, `log(-1)`). They fire
//! when the operand is provably non-zero (positive), or when the node is in
//! a *strict* [`Context`]: every path from a root to it propagates NaN, so
//! each root that depends on it was NaN at those points anyway. That is
//! why `d/dx x*log(x)` prints `log(x) + 1` (the derivative is only stated
//! where it, and `log(x)`, is defined) while `x/x > 0.5` keeps its `x/x`: a
//! comparison turns NaN into 0, a defined value. `tests/simplify.rs` checks
//! each rule on random inputs against the f64 interpreter.

use super::canon::{
    add, args, bounded, constant, fold, is, mul, nary, nonzero, order, positive, shape,
};
pub use super::canon::{const_value, fixed_len};
use crate::graph::{Graph, NanFlow, NodeId, Op};
use std::cmp::Ordering;

/// A named rewrite rule.
pub struct Rule {
    /// The egg-style name printed by `--steps`.
    pub name: &'static str,
    /// Returns the replacement of the node, if the rule applies.
    pub apply: fn(&mut Graph, NodeId, Context) -> Option<NodeId>,
}

/// What the runner knows about the position of the node being rewritten.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// True when every path from a root to the node passes only through
    /// operand slots that propagate NaN (see [`propagates`]): a NaN here
    /// makes every root that uses it NaN (or is not selected by a `where`).
    /// Rules that only turn NaN into a number (`x/x = 1`) may fire then.
    pub strict: bool,
}

macro_rules! rule {
    ($name:literal, $f:ident) => {
        Rule {
            name: $name,
            apply: |g, id, _| $f(g, id),
        }
    };
    ($name:literal, $f:ident, ctx) => {
        Rule {
            name: $name,
            apply: $f,
        }
    };
}

/// True when operand `slot` of `node` passes a NaN on to the node's value
/// (wherever the value is used): arithmetic and the math functions do, and
/// so do the branches of `where`; comparisons, `max`, `min`, `relu`, a
/// `where`'s condition, arg-max and one-hot absorb it (`NaN > 0` is 0), and
/// so does a power's exponent or a base raised to a possibly-zero exponent
/// (`NaN^0 = 1`).
pub fn propagates(g: &Graph, node: NodeId, slot: usize) -> bool {
    let n = g.node(node);
    match n.op.nan_flow() {
        NanFlow::Propagates => true,
        NanFlow::Absorbed => false,
        NanFlow::FromBranches => slot != 0,
        NanFlow::FromBaseOfNonzeroPower => {
            slot == 0 && const_value(g, n.args[1]).is_some_and(|k| k != 0.0)
        }
    }
}

/// Rules that only restore the canonical form; `--steps` may hide them.
pub const CANONICAL: &[&str] = &[
    "flatten-add",
    "flatten-mul",
    "sort-operands",
    "neg-canon",
    "broadcast-const",
    "broadcast-mul",
];

/// The rule table, tried in order at each node.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    rule!("broadcast-const",   broadcast_const),     // bcast(bcast(s)) = bcast(s), s a scalar
    rule!("broadcast-mul",     broadcast_mul),       // bcast(c*a) = bcast(c)*bcast(a)
    rule!("const-fold",        const_fold),          // 2*3 = 6, exp(0) = 1
    rule!("neg-canon",         neg_canon),           // -a = (-1)*a
    rule!("neg-neg",           neg_neg),             // (-1)*((-1)*x) = x
    rule!("flatten-add",       flatten_add),         // a + (b + c) = a + b + c
    rule!("flatten-mul",       flatten_mul),         // a*(b*c) = a*b*c
    rule!("add-zero",          add_zero),            // x + 0 = x
    rule!("mul-zero",          mul_zero, ctx),       // x*0 = 0, x bounded or a strict context
    rule!("mul-one",           mul_one),             // x*1 = x
    rule!("fold-consts",       fold_consts),         // 2 + x + 3 = 5 + x
    rule!("pow-one",           pow_one),             // x^1 = x
    rule!("pow-zero",          pow_zero),            // x^0 = 1
    rule!("pow-pow",           pow_pow),             // (x^a)^n = x^(a*n), n an integer
    rule!("recip-pow",         recip_pow),           // x^-1 = 1/x, 1/x^a = x^-a
    rule!("recip-recip",       recip_recip),         // 1/(1/x) = x
    rule!("recip-mul",         recip_mul),           // 1/(a*b) = (1/a)*(1/b)
    rule!("div-self",          div_self, ctx),       // x/x = 1, x non-zero or a strict context
    rule!("collect-terms",     collect_terms, ctx),  // 2*x + 3*x = 5*x (x - x = 0 as mul-zero)
    rule!("collect-powers",    collect_powers),      // x*x^2 = x^3
    rule!("sqrt-square",       sqrt_square),         // sqrt(x)^2 = x
    rule!("log-exp",           log_exp),             // log(exp(x)) = x
    rule!("exp-log",           exp_log, ctx),        // exp(log(x)) = x, x positive or a strict context
    rule!("where-same",        where_same),          // where(c, a, a) = a
    rule!("where-const",       where_const),         // where(1, a, b) = a
    rule!("where-mul",         where_mul, ctx),      // c*where(p, 0, 1) = where(p, 0, c) (as mul-zero)
    rule!("where-add",         where_add),           // where(p, a, b) + where(p, c, d) = where(p, a + c, b + d)
    rule!("factor-common",     factor_common),       // a*b + a*c = a*(b + c)
    rule!("abs-sign",          abs_sign),            // x*where(x > 0, 1, where(x < 0, -1, 0)) = abs(x)
    rule!("transpose-twice",   transpose_twice),     // (aᵀ)ᵀ = a
    rule!("sort-operands",     sort_operands),       // canonical order of + and * operands
];

// ---------------------------------------------------------------------------
// The rules, in table order.

fn broadcast_const(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let n = g.node(id);
    let nested =
        matches!(n.op, Op::Broadcast(_)) && matches!(g.node(n.args[0]).op, Op::Broadcast(_));
    if !nested {
        return None;
    }
    let inner = g.node(n.args[0]).args[0];
    if !g.node(inner).shape.0.is_empty() {
        return None;
    }
    let s = shape(g, id);
    Some(g.splat(inner, &s))
}

fn broadcast_mul(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let n = g.node(id);
    let Op::Broadcast(axes) = n.op else {
        return None;
    };
    let m = n.args[0];
    if !is(g, m, Op::Mul) || !args(g, m).iter().any(|&f| const_value(g, f).is_some()) {
        return None;
    }
    // Moving the constant out of the broadcast lets it meet the other
    // constants of the product it is used in (and print as a sign).
    let s = shape(g, id);
    let mut factors = Vec::new();
    for f in args(g, m) {
        factors.push(g.broadcast(f, axes, s.clone()).ok()?);
    }
    mul(g, factors, &s)
}

fn const_fold(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let n = g.node(id);
    if !n.op.is_elementwise() || n.op == Op::Add || n.op == Op::Mul {
        return None;
    }
    let vals: Option<Vec<f64>> = n.args.iter().map(|&a| const_value(g, a)).collect();
    let v = fold(n.op, &vals?)?;
    // `log(2)` reads better than 0.6931471805599453: transcendental
    // functions fold only to whole numbers (`exp(0) = 1`).
    if n.op.is_transcendental() && v.fract() != 0.0 {
        return None;
    }
    Some(constant(g, v, &shape(g, id)))
}

fn neg_canon(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    if !is(g, id, Op::Neg) {
        return None;
    }
    let s = shape(g, id);
    let m1 = constant(g, -1.0, &s);
    let a = args(g, id)[0];
    mul(g, vec![m1, a], &s)
}

fn neg_neg(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    if !is(g, id, Op::Mul) || a.len() != 2 || const_value(g, a[0]) != Some(-1.0) {
        return None;
    }
    let inner = args(g, a[1]);
    (is(g, a[1], Op::Mul) && inner.len() == 2 && const_value(g, inner[0]) == Some(-1.0))
        .then(|| inner[1])
}

fn flatten(g: &mut Graph, id: NodeId, op: Op) -> Option<NodeId> {
    let splices = |g: &Graph, a: NodeId| is(g, a, op) && !g.names.contains_key(&a);
    if !is(g, id, op) || !args(g, id).iter().any(|&a| splices(g, a)) {
        return None;
    }
    let s = shape(g, id);
    nary(g, op, args(g, id), &s)
}

fn flatten_add(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    flatten(g, id, Op::Add)
}

fn flatten_mul(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    flatten(g, id, Op::Mul)
}

fn drop_unit(g: &mut Graph, id: NodeId, op: Op, unit: f64) -> Option<NodeId> {
    let a = args(g, id);
    if !is(g, id, op) || !a.iter().any(|&x| const_value(g, x) == Some(unit)) {
        return None;
    }
    let s = shape(g, id);
    nary(g, op, a, &s)
}

fn add_zero(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    drop_unit(g, id, Op::Add, 0.0)
}

fn mul_one(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    drop_unit(g, id, Op::Mul, 1.0)
}

fn mul_zero(g: &mut Graph, id: NodeId, cx: Context) -> Option<NodeId> {
    let a = args(g, id);
    if !is(g, id, Op::Mul) || !a.iter().any(|&x| const_value(g, x) == Some(0.0)) {
        return None;
    }
    // 0*x differs from 0 only where x is NaN or ±inf.
    if !cx.strict && !a.iter().all(|&x| bounded(g, x)) {
        return None;
    }
    Some(constant(g, 0.0, &shape(g, id)))
}

fn fold_consts(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let n = g.node(id);
    if n.op != Op::Add && n.op != Op::Mul {
        return None;
    }
    let consts = n
        .args
        .iter()
        .filter(|&&a| const_value(g, a).is_some())
        .count();
    if consts < 2 {
        return None;
    }
    let (op, a, s) = (n.op, n.args.clone(), n.shape.clone());
    nary(g, op, a, &s)
}

fn pow_one(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    (is(g, id, Op::Pow) && const_value(g, a[1]) == Some(1.0)).then(|| a[0])
}

fn pow_zero(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    if !is(g, id, Op::Pow) || const_value(g, a[1]) != Some(0.0) {
        return None;
    }
    Some(constant(g, 1.0, &shape(g, id)))
}

fn pow_pow(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    if !is(g, id, Op::Pow) || !is(g, a[0], Op::Pow) {
        return None;
    }
    let n = const_value(g, a[1])?;
    if n.fract() != 0.0 {
        return None;
    }
    let inner = args(g, a[0]);
    let s = shape(g, id);
    let e = mul(g, vec![inner[1], a[1]], &s)?;
    g.add(Op::Pow, &[inner[0], e]).ok()
}

fn recip_pow(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    let s = shape(g, id);
    if is(g, id, Op::Pow) && const_value(g, a[1]) == Some(-1.0) {
        return g.add(Op::Recip, &[a[0]]).ok();
    }
    if is(g, id, Op::Recip) && is(g, a[0], Op::Pow) {
        let inner = args(g, a[0]);
        let e = const_value(g, inner[1])?;
        let ne = constant(g, -e, &s);
        return g.add(Op::Pow, &[inner[0], ne]).ok();
    }
    None
}

fn recip_recip(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    (is(g, id, Op::Recip) && is(g, a[0], Op::Recip)).then(|| args(g, a[0])[0])
}

fn recip_mul(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    if !is(g, id, Op::Recip) || !is(g, a[0], Op::Mul) {
        return None;
    }
    let s = shape(g, id);
    let mut factors = Vec::new();
    for f in args(g, a[0]) {
        // Constants are folded here so the product stays canonical.
        match const_value(g, f) {
            Some(c) => factors.push(constant(g, 1.0 / c, &s)),
            None => factors.push(g.add(Op::Recip, &[f]).ok()?),
        }
    }
    mul(g, factors, &s)
}

fn div_self(g: &mut Graph, id: NodeId, cx: Context) -> Option<NodeId> {
    if !is(g, id, Op::Mul) {
        return None;
    }
    let a = args(g, id);
    for (i, &f) in a.iter().enumerate() {
        if !is(g, f, Op::Recip) {
            continue;
        }
        let x = args(g, f)[0];
        // x*(1/x) differs from 1 only where it is NaN (x = 0 or ±inf), so
        // in a strict context the cancellation changes no defined value.
        if let Some(j) = a.iter().position(|&y| y == x)
            && (cx.strict || (nonzero(g, x) && bounded(g, x)))
        {
            let rest: Vec<NodeId> = a
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != i && k != j)
                .map(|(_, &y)| y)
                .collect();
            let s = shape(g, id);
            return mul(g, rest, &s);
        }
    }
    None
}

/// Splits a term into its constant coefficient and the rest: `3*x*y` is
/// `(3, x*y)`, `x` is `(1, x)`.
fn coefficient(g: &mut Graph, id: NodeId) -> Option<(f64, NodeId)> {
    if const_value(g, id).is_some() {
        return None;
    }
    if is(g, id, Op::Mul) {
        let a = args(g, id);
        if let Some(c) = const_value(g, a[0]) {
            let s = shape(g, id);
            let rest = mul(g, a[1..].to_vec(), &s)?;
            return Some((c, rest));
        }
    }
    Some((1.0, id))
}

fn collect_terms(g: &mut Graph, id: NodeId, cx: Context) -> Option<NodeId> {
    if !is(g, id, Op::Add) {
        return None;
    }
    let a = args(g, id);
    let mut groups: Vec<(NodeId, f64, usize)> = Vec::new();
    let mut others = Vec::new();
    for &t in &a {
        match coefficient(g, t) {
            Some((c, rest)) => match groups.iter_mut().find(|(r, _, _)| *r == rest) {
                Some(grp) => {
                    grp.1 += c;
                    grp.2 += 1;
                }
                None => groups.push((rest, c, 1)),
            },
            None => others.push(t),
        }
    }
    if groups.iter().all(|grp| grp.2 == 1) {
        return None;
    }
    // `x - x = 0` is `mul-zero` in disguise (NaN at x = inf).
    if !cx.strict && groups.iter().any(|grp| grp.1 == 0.0 && !bounded(g, grp.0)) {
        return None;
    }
    let s = shape(g, id);
    let mut terms = others;
    for (rest, c, _) in groups {
        let k = constant(g, c, &s);
        terms.push(mul(g, vec![k, rest], &s)?);
    }
    add(g, terms, &s)
}

/// Splits a factor into base and exponent: `x^3` is `(x, 3)`, `1/x` is
/// `(x, -1)`, `x` is `(x, 1)`. Constants have no base.
fn power(g: &mut Graph, id: NodeId) -> Option<(NodeId, NodeId)> {
    if const_value(g, id).is_some() {
        return None;
    }
    let s = shape(g, id);
    let a = args(g, id);
    Some(match g.node(id).op {
        Op::Pow => (a[0], a[1]),
        Op::Recip => (a[0], constant(g, -1.0, &s)),
        _ => (id, constant(g, 1.0, &s)),
    })
}

fn collect_powers(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    if !is(g, id, Op::Mul) {
        return None;
    }
    let a = args(g, id);
    let mut groups: Vec<(NodeId, Vec<NodeId>, Vec<NodeId>)> = Vec::new();
    let mut others = Vec::new();
    for &f in &a {
        match power(g, f) {
            Some((base, e)) => match groups.iter_mut().find(|grp| grp.0 == base) {
                Some(grp) => {
                    grp.1.push(e);
                    grp.2.push(f);
                }
                None => groups.push((base, vec![e], vec![f])),
            },
            None => others.push(f),
        }
    }
    let s = shape(g, id);
    let mut changed = false;
    let mut factors = others;
    for (base, exps, originals) in groups {
        if exps.len() == 1 {
            factors.push(originals[0]);
            continue;
        }
        let e = add(g, exps, &s)?;
        match const_value(g, e) {
            // x/x is the job of `div-self`, which checks that x is non-zero.
            Some(0.0) => factors.extend(originals),
            Some(1.0) => {
                changed = true;
                factors.push(base);
            }
            Some(-1.0) => {
                changed = true;
                factors.push(g.add(Op::Recip, &[base]).ok()?);
            }
            _ => {
                changed = true;
                factors.push(g.add(Op::Pow, &[base, e]).ok()?);
            }
        }
    }
    if !changed {
        return None;
    }
    mul(g, factors, &s)
}

fn sqrt_square(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    (is(g, id, Op::Pow) && is(g, a[0], Op::Sqrt) && const_value(g, a[1]) == Some(2.0))
        .then(|| args(g, a[0])[0])
}

fn log_exp(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    (is(g, id, Op::Log) && is(g, a[0], Op::Exp)).then(|| args(g, a[0])[0])
}

fn exp_log(g: &mut Graph, id: NodeId, cx: Context) -> Option<NodeId> {
    let a = args(g, id);
    if !is(g, id, Op::Exp) || !is(g, a[0], Op::Log) {
        return None;
    }
    let x = args(g, a[0])[0];
    // exp(log(x)) differs from x only where log(x) is NaN (x < 0); at
    // x = 0 both are 0.
    (cx.strict || positive(g, x)).then_some(x)
}

fn where_same(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    (is(g, id, Op::Where) && a[1] == a[2]).then(|| a[1])
}

fn where_const(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    if !is(g, id, Op::Where) {
        return None;
    }
    let c = const_value(g, a[0])?;
    Some(if c != 0.0 { a[1] } else { a[2] })
}

/// For an unnamed `where(p, a, b)`: whether a branch is the constant 0,
/// and whether both branches are constants.
fn where_kind(g: &Graph, id: NodeId) -> Option<(bool, bool)> {
    let n = g.node(id);
    if n.op != Op::Where || g.names.contains_key(&id) {
        return None;
    }
    let (a, b) = (const_value(g, n.args[1]), const_value(g, n.args[2]));
    Some((a == Some(0.0) || b == Some(0.0), a.is_some() && b.is_some()))
}

fn where_mul(g: &mut Graph, id: NodeId, cx: Context) -> Option<NodeId> {
    if !is(g, id, Op::Mul) {
        return None;
    }
    let a = args(g, id);
    let all_const = |g: &Graph, skip: usize| {
        a.iter()
            .enumerate()
            .all(|(k, &f)| k == skip || const_value(g, f).is_some())
    };
    // An indicator (one branch 0) takes the other factors in whole; a
    // where of two non-zero constants only takes constants, so no factor is
    // written twice.
    let i = a.iter().enumerate().position(|(i, &f)| {
        where_kind(g, f).is_some_and(|(zero, consts)| zero || (consts && all_const(g, i)))
    })?;
    // The zero branch drops the other factors, like `mul-zero`.
    if !cx.strict && !a.iter().all(|&f| bounded(g, f)) {
        return None;
    }
    let w = args(g, a[i]);
    let s = shape(g, id);
    let others: Vec<NodeId> = a
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != i)
        .map(|(_, &f)| f)
        .collect();
    let mut yes = others.clone();
    yes.push(w[1]);
    let mut no = others;
    no.push(w[2]);
    let (yes, no) = (mul(g, yes, &s)?, mul(g, no, &s)?);
    g.add(Op::Where, &[w[0], yes, no]).ok()
}

fn where_add(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    if !is(g, id, Op::Add) {
        return None;
    }
    let a = args(g, id);
    let unnamed_where = |g: &Graph, t: NodeId| is(g, t, Op::Where) && !g.names.contains_key(&t);
    for i in 0..a.len() {
        if !unnamed_where(g, a[i]) {
            continue;
        }
        let p = args(g, a[i])[0];
        let same: Vec<usize> = (0..a.len())
            .filter(|&k| unnamed_where(g, a[k]) && args(g, a[k])[0] == p)
            .collect();
        if same.len() < 2 {
            continue;
        }
        let s = shape(g, id);
        let yes: Vec<NodeId> = same.iter().map(|&k| args(g, a[k])[1]).collect();
        let no: Vec<NodeId> = same.iter().map(|&k| args(g, a[k])[2]).collect();
        let (yes, no) = (add(g, yes, &s)?, add(g, no, &s)?);
        let merged = g.add(Op::Where, &[p, yes, no]).ok()?;
        let mut terms: Vec<NodeId> = (0..a.len())
            .filter(|k| !same.contains(k))
            .map(|k| a[k])
            .collect();
        terms.push(merged);
        return add(g, terms, &s);
    }
    None
}

/// The non-constant factors of a term (`3*x*y` has `x` and `y`).
fn factors(g: &Graph, t: NodeId) -> Vec<NodeId> {
    if is(g, t, Op::Mul) && !g.names.contains_key(&t) {
        args(g, t)
            .into_iter()
            .filter(|&f| const_value(g, f).is_none())
            .collect()
    } else if const_value(g, t).is_some() {
        vec![]
    } else {
        vec![t]
    }
}

fn factor_common(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    if !is(g, id, Op::Add) {
        return None;
    }
    let a = args(g, id);
    let lists: Vec<Vec<NodeId>> = a.iter().map(|&t| factors(g, t)).collect();
    // The factor shared by the most terms; ties go to the canonical order.
    let mut best: Option<(usize, NodeId)> = None;
    for list in &lists {
        for &f in list {
            let count = lists.iter().filter(|l| l.contains(&f)).count();
            let better = match best {
                None => true,
                Some((c, b)) => count > c || (count == c && order(g, f, b) == Ordering::Less),
            };
            if count >= 2 && better {
                best = Some((count, f));
            }
        }
    }
    let Some((_, f)) = best else {
        return factor_constant(g, id, &a);
    };
    let s = shape(g, id);
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for (&t, list) in a.iter().zip(&lists) {
        if !list.contains(&f) {
            outside.push(t);
            continue;
        }
        // The term without one occurrence of `f` (a term that is `f` alone leaves 1).
        let mut rest: Vec<NodeId> = if factors(g, t) == vec![t] {
            vec![]
        } else {
            args(g, t)
        };
        if let Some(k) = rest.iter().position(|&x| x == f) {
            rest.remove(k);
        }
        inside.push(mul(g, rest, &s)?);
    }
    let sum = add(g, inside, &s)?;
    outside.push(mul(g, vec![f, sum], &s)?);
    add(g, outside, &s)
}

/// `c*a + c*b = c*(a + b)` for one constant `c` (not ±1) shared by every term.
fn factor_constant(g: &mut Graph, id: NodeId, terms: &[NodeId]) -> Option<NodeId> {
    let mut common: Option<f64> = None;
    let mut rests = Vec::new();
    for &t in terms {
        let (c, rest) = coefficient(g, t)?;
        match common {
            None => common = Some(c.abs()),
            Some(k) if k == c.abs() => {}
            Some(_) => return None,
        }
        rests.push((c.signum(), rest));
    }
    let k = common?;
    if k == 1.0 || k == 0.0 {
        return None;
    }
    let s = shape(g, id);
    let mut inner = Vec::new();
    for (sign, rest) in rests {
        let c = constant(g, sign, &s);
        inner.push(mul(g, vec![c, rest], &s)?);
    }
    let sum = add(g, inner, &s)?;
    let kc = constant(g, k, &s);
    mul(g, vec![kc, sum], &s)
}

/// True when `s` is `where(x > 0, 1, where(x < 0, -1, 0))`, the sign of `x`.
fn is_sign_of(g: &Graph, s: NodeId, x: NodeId) -> bool {
    let cmp = |g: &Graph, c: NodeId, op: Op| {
        is(g, c, op) && g.node(c).args[0] == x && const_value(g, g.node(c).args[1]) == Some(0.0)
    };
    if !is(g, s, Op::Where) {
        return false;
    }
    let a = args(g, s);
    if !cmp(g, a[0], Op::Gt) || const_value(g, a[1]) != Some(1.0) || !is(g, a[2], Op::Where) {
        return false;
    }
    let b = args(g, a[2]);
    cmp(g, b[0], Op::Lt) && const_value(g, b[1]) == Some(-1.0) && const_value(g, b[2]) == Some(0.0)
}

fn abs_sign(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    if !is(g, id, Op::Mul) {
        return None;
    }
    let a = args(g, id);
    for (i, &s) in a.iter().enumerate() {
        let Some(j) = a.iter().position(|&x| x != s && is_sign_of(g, s, x)) else {
            continue;
        };
        let abs = g.add(Op::Abs, &[a[j]]).ok()?;
        let mut rest: Vec<NodeId> = a
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != i && k != j)
            .map(|(_, &f)| f)
            .collect();
        rest.push(abs);
        let sh = shape(g, id);
        return mul(g, rest, &sh);
    }
    None
}

fn transpose_twice(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let a = args(g, id);
    (is(g, id, Op::Transpose) && is(g, a[0], Op::Transpose)).then(|| args(g, a[0])[0])
}

fn sort_operands(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let n = g.node(id);
    if n.op != Op::Add && n.op != Op::Mul {
        return None;
    }
    let sorted = n
        .args
        .windows(2)
        .all(|w| order(g, w[0], w[1]) != Ordering::Greater);
    if sorted {
        return None;
    }
    let (op, mut a) = (n.op, n.args.clone());
    a.sort_by(|&x, &y| order(g, x, y));
    g.add(op, &a).ok()
}
