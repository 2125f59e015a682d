//! Canonical builders and predicates the rewrite rules share: constants of a
//! shape, n-ary sums and products in sorted order, the operand order itself,
//! and sign facts (`nonzero`, `positive`) that guard the unsafe rewrites.

use crate::graph::{Axes, Dim, Fact, Graph, NodeId, Op, Shape};
use std::cmp::Ordering;

pub use crate::graph::print::const_value;

/// The constant `v` with the given shape (a broadcast scalar for tensors).
pub fn constant(g: &mut Graph, v: f64, shape: &Shape) -> NodeId {
    let c = g.constant(v);
    if shape.0.is_empty() {
        return c;
    }
    let axes = Axes(((1u16 << shape.0.len()) - 1) as u8);
    g.broadcast(c, axes, shape.clone())
        .expect("a scalar broadcast along every axis of a rank <= 2 shape is always valid")
}

/// The shape of a node.
pub(super) fn shape(g: &Graph, id: NodeId) -> Shape {
    g.node(id).shape.clone()
}

/// `a + b + ...` in canonical form: flattened, constants folded, sorted;
/// the empty sum is `0`, a single term is itself.
pub fn add(g: &mut Graph, terms: Vec<NodeId>, shape: &Shape) -> Option<NodeId> {
    nary(g, Op::Add, terms, shape)
}

/// `a * b * ...` in canonical form: flattened, constants folded, sorted;
/// the empty product is `1`, a single factor is itself.
pub fn mul(g: &mut Graph, factors: Vec<NodeId>, shape: &Shape) -> Option<NodeId> {
    nary(g, Op::Mul, factors, shape)
}

pub(super) fn nary(g: &mut Graph, op: Op, items: Vec<NodeId>, shape: &Shape) -> Option<NodeId> {
    let unit = if op == Op::Add { 0.0 } else { 1.0 };
    let mut flat = Vec::new();
    let mut acc = unit;
    let mut stack: Vec<NodeId> = items.into_iter().rev().collect();
    while let Some(id) = stack.pop() {
        // Named nodes (`y`, `a1`) stay whole so the printer can show their name.
        if g.node(id).op == op && !g.names.contains_key(&id) {
            stack.extend(g.node(id).args.iter().rev());
        } else if let Some(c) = const_value(g, id) {
            acc = if op == Op::Add { acc + c } else { acc * c };
        } else {
            flat.push(id);
        }
    }
    // `0*x` is 0 only for a bounded x; otherwise `mul-zero` decides, in context.
    if op == Op::Mul && acc == 0.0 && flat.iter().all(|&f| bounded(g, f)) {
        return Some(constant(g, 0.0, shape));
    }
    if acc != unit || flat.is_empty() {
        flat.push(constant(g, acc, shape));
    }
    if flat.len() == 1 {
        return Some(flat[0]);
    }
    flat.sort_by(|&a, &b| order(g, a, b));
    g.add(op, &flat).ok()
}

/// The canonical order of `+` and `*` operands: constants first, then leaves
/// by name, then other nodes by op and then operands, recursively. It
/// depends only on structure, never on node indices, so equal terms meet.
pub fn order(g: &Graph, a: NodeId, b: NodeId) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    match (const_value(g, a), const_value(g, b)) {
        (Some(x), Some(y)) => return x.total_cmp(&y),
        (Some(_), None) => return Ordering::Less,
        (None, Some(_)) => return Ordering::Greater,
        (None, None) => {}
    }
    let (na, nb) = (g.node(a), g.node(b));
    let by_op = match (na.op, nb.op) {
        (Op::Leaf(x), Op::Leaf(y)) => g.leaf_info(x).name.cmp(&g.leaf_info(y).name),
        (Op::Leaf(_), _) => Ordering::Less,
        (_, Op::Leaf(_)) => Ordering::Greater,
        (x, y) => x.cmp(&y),
    };
    by_op
        .then_with(|| na.args.len().cmp(&nb.args.len()))
        .then_with(|| {
            na.args
                .iter()
                .zip(&nb.args)
                .map(|(&x, &y)| order(g, x, y))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
        .then_with(|| na.shape.cmp(&nb.shape))
        .then_with(|| a.index().cmp(&b.index()))
}

/// True when the node's value can never be zero (where it is defined).
pub(super) fn nonzero(g: &Graph, id: NodeId) -> bool {
    if let Some(c) = const_value(g, id) {
        return c != 0.0;
    }
    holds(g, id, g.node(id).op.nonzero(), nonzero)
}

/// True when the node's value is always positive (where it is defined).
pub(super) fn positive(g: &Graph, id: NodeId) -> bool {
    if let Some(c) = const_value(g, id) {
        return c > 0.0;
    }
    let n = g.node(id);
    // `1 - sigmoid(u)` is sigmoid(-u), positive: a fact about a pattern of
    // nodes, not of one op. A sum `1 + ...` of any other form is decided
    // here too (as false), as it always was.
    if n.op == Op::Add && n.args.len() == 2 && const_value(g, n.args[0]) == Some(1.0) {
        let m = g.node(n.args[1]);
        return m.op == Op::Mul
            && m.args.len() == 2
            && const_value(g, m.args[0]) == Some(-1.0)
            && g.node(m.args[1]).op == Op::Sigmoid;
    }
    holds(g, id, n.op.positive(), positive)
}

/// True when the node's value is never negative (where it is defined).
pub(super) fn nonnegative(g: &Graph, id: NodeId) -> bool {
    if let Some(c) = const_value(g, id) {
        return c >= 0.0;
    }
    holds(g, id, g.node(id).op.nonnegative(), nonnegative)
}

/// True when the node's value is a number wherever its leaves are: made of
/// bounded functions, so `0*x` is 0 (not `0*inf` = NaN).
pub(super) fn bounded(g: &Graph, id: NodeId) -> bool {
    if let Some(c) = const_value(g, id) {
        return c.is_finite();
    }
    holds(g, id, g.node(id).op.bounded(), bounded)
}

/// Whether the op table's `fact` holds of node `id`; `same` asks the same
/// fact of an operand.
fn holds(g: &Graph, id: NodeId, fact: Fact, same: fn(&Graph, NodeId) -> bool) -> bool {
    let args = &g.node(id).args;
    match fact {
        Fact::Always => true,
        Fact::Unknown => false,
        Fact::IfAll => args.iter().all(|&a| same(g, a)),
        Fact::IfFirst => same(g, args[0]),
        Fact::IfPositive => positive(g, id),
        Fact::IfEvenExponent => const_value(g, args[1]).is_some_and(|k| k % 2.0 == 0.0),
        Fact::IfNonnegativeAndOnePositive => {
            args.iter().all(|&a| nonnegative(g, a)) && args.iter().any(|&a| positive(g, a))
        }
    }
}

/// The scalar value of an element-wise op on constants, when it is finite
/// (the op table's [`Op::eval_scalar`], which the interpreter uses too).
pub(super) fn fold(op: Op, v: &[f64]) -> Option<f64> {
    if !op.is_elementwise() {
        return None;
    }
    op.eval_scalar(v).filter(|r| r.is_finite())
}

pub(super) fn args(g: &Graph, id: NodeId) -> Vec<NodeId> {
    g.node(id).args.clone()
}

pub(super) fn is(g: &Graph, id: NodeId, op: Op) -> bool {
    g.node(id).op == op
}

/// The number of elements of a fixed shape, if it has no batch dimension.
pub fn fixed_len(s: &Shape) -> Option<usize> {
    s.0.iter()
        .map(|d| match d {
            Dim::Fixed(n) => Some(*n),
            Dim::Batch => None,
        })
        .product()
}
