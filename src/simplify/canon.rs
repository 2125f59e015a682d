//! Canonical builders and predicates the rewrite rules share: constants of a
//! shape, n-ary sums and products in sorted order, the operand order itself,
//! and sign facts (`nonzero`, `positive`) that guard the unsafe rewrites.

use crate::graph::{Axes, Dim, Graph, NodeId, Op, Shape};
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
    let n = g.node(id);
    match n.op {
        Op::Exp | Op::Sigmoid | Op::Softplus | Op::Recip => true,
        Op::Mul => n.args.iter().all(|&a| nonzero(g, a)),
        Op::Pow | Op::Sqrt => nonzero(g, n.args[0]),
        _ => positive(g, id),
    }
}

/// True when the node's value is always positive (where it is defined).
pub(super) fn positive(g: &Graph, id: NodeId) -> bool {
    if let Some(c) = const_value(g, id) {
        return c > 0.0;
    }
    let n = g.node(id);
    match n.op {
        Op::Exp | Op::Sigmoid | Op::Softplus => true,
        // `1 - sigmoid(u)` is sigmoid(-u), positive.
        Op::Add if n.args.len() == 2 && const_value(g, n.args[0]) == Some(1.0) => {
            let m = g.node(n.args[1]);
            m.op == Op::Mul
                && m.args.len() == 2
                && const_value(g, m.args[0]) == Some(-1.0)
                && g.node(m.args[1]).op == Op::Sigmoid
        }
        // A positive term plus non-negative ones (`1 + abs(x)`).
        Op::Add => {
            n.args.iter().all(|&a| nonnegative(g, a)) && n.args.iter().any(|&a| positive(g, a))
        }
        Op::Mul => n.args.iter().all(|&a| positive(g, a)),
        Op::Recip | Op::Sqrt => positive(g, n.args[0]),
        _ => false,
    }
}

/// True when the node's value is never negative (where it is defined).
pub(super) fn nonnegative(g: &Graph, id: NodeId) -> bool {
    if let Some(c) = const_value(g, id) {
        return c >= 0.0;
    }
    let n = g.node(id);
    match n.op {
        Op::Abs | Op::Relu | Op::Sqrt => true,
        Op::Pow => const_value(g, n.args[1]).is_some_and(|k| k % 2.0 == 0.0),
        Op::Add | Op::Mul => n.args.iter().all(|&a| nonnegative(g, a)),
        _ => positive(g, id),
    }
}

/// The scalar value of an element-wise op on constants, when it is finite.
pub(super) fn fold(op: Op, v: &[f64]) -> Option<f64> {
    let r = match op {
        Op::Neg => -v[0],
        Op::Recip => 1.0 / v[0],
        Op::Exp => v[0].exp(),
        Op::Log => v[0].ln(),
        Op::Sqrt => v[0].sqrt(),
        Op::Abs => v[0].abs(),
        Op::Sin => v[0].sin(),
        Op::Cos => v[0].cos(),
        Op::Tanh => v[0].tanh(),
        Op::Sigmoid => 1.0 / (1.0 + (-v[0]).exp()),
        Op::Relu => v[0].max(0.0),
        Op::Softplus => v[0].max(0.0) + (-v[0].abs()).exp().ln_1p(),
        Op::Add => v.iter().sum(),
        Op::Mul => v.iter().product(),
        Op::Pow => v[0].powf(v[1]),
        Op::Max => v[0].max(v[1]),
        Op::Min => v[0].min(v[1]),
        Op::Lt => f64::from(v[0] < v[1]),
        Op::Le => f64::from(v[0] <= v[1]),
        Op::Gt => f64::from(v[0] > v[1]),
        Op::Ge => f64::from(v[0] >= v[1]),
        Op::Eq => f64::from(v[0] == v[1]),
        Op::Where => {
            if v[0] != 0.0 {
                v[1]
            } else {
                v[2]
            }
        }
        _ => return None,
    };
    r.is_finite().then_some(r)
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

/// True when the node's value is a number wherever its leaves are: made of
/// bounded functions, so `0*x` is 0 (not `0*inf` = NaN).
pub(super) fn bounded(g: &Graph, id: NodeId) -> bool {
    let n = g.node(id);
    match n.op {
        Op::Const(c) => c.value().is_finite(),
        Op::Leaf(_) | Op::BatchSize => true,
        Op::Sin | Op::Cos | Op::Tanh | Op::Sigmoid | Op::Abs | Op::Relu => {
            n.args.iter().all(|&a| bounded(g, a))
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq => true,
        Op::Add | Op::Mul | Op::Where | Op::Max | Op::Min | Op::Broadcast(_) => {
            n.args.iter().all(|&a| bounded(g, a))
        }
        _ => false,
    }
}
