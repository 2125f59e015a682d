//! Optimizer updates as graph nodes, so the whole training step (forward,
//! backward and update) compiles into one native function.
//!
//! The formulas are spec §6, written with the graph's canonical ops
//! (`a - b` as `a + (-1)*b`, `a/b` as `a * recip(b)`):
//!
//! ```text
//! sgd:   v' = M*v + g            w' = w - lr*v'        (M = 0: w' = w - lr*g, no state)
//! adam:  m' = B1*m + (1-B1)*g    v' = B2*v + (1-B2)*g*g
//!        w' = w - lr * (m'*c1) / (sqrt(v'*c2) + E)   with c1 = 1/(1-B1^s), c2 = 1/(1-B2^s)
//! ```
//!
//! `c1` and `c2` are scalar leaves the caller sets before every step from the
//! step count `s` (two scalars per step are bookkeeping, not numeric work).

use crate::check::model::Optimizer;
use crate::graph::{Axes, Graph, LeafKind, NodeId, Op, Shape, ShapeError};

/// The optimizer's part of a training step's graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Updates {
    /// Optimizer state leaves (`LeafKind::State`), each with the index of the
    /// parameter whose shape it has; they start at zero.
    pub states: Vec<(NodeId, usize)>,
    /// `(leaf, new value)` for every parameter (first, in parameter order)
    /// and then every state leaf (in the order of `states`).
    pub updates: Vec<(NodeId, NodeId)>,
    /// Adam's bias-correction scalar leaves `[c1, c2]`; empty for SGD.
    pub scalars: Vec<NodeId>,
}

/// Adam's bias corrections `(1/(1-B1^s), 1/(1-B2^s))` for step `s ≥ 1`,
/// computed in f64.
pub fn adam_corrections(beta1: f64, beta2: f64, step: u64) -> (f64, f64) {
    let s = i32::try_from(step).unwrap_or(i32::MAX);
    (1.0 / (1.0 - beta1.powi(s)), 1.0 / (1.0 - beta2.powi(s)))
}

/// `value` (a scalar node) repeated to `shape`.
fn splat(graph: &mut Graph, value: NodeId, shape: &Shape) -> Result<NodeId, ShapeError> {
    let rank = shape.0.len();
    if rank == 0 {
        return Ok(value);
    }
    graph.broadcast(value, Axes(((1u16 << rank) - 1) as u8), shape.clone())
}

/// The constant `v` at `shape`.
fn constant(graph: &mut Graph, v: f64, shape: &Shape) -> Result<NodeId, ShapeError> {
    let c = graph.constant(v);
    splat(graph, c, shape)
}

/// `a*x + b*y` for constants `a` and `b`, skipping multiplications by 1.
fn axpby(graph: &mut Graph, a: f64, x: NodeId, b: f64, y: NodeId) -> Result<NodeId, ShapeError> {
    let shape = graph.node(x).shape.clone();
    let scaled = |graph: &mut Graph, k: f64, n: NodeId| -> Result<NodeId, ShapeError> {
        if k == 1.0 {
            Ok(n)
        } else {
            let c = constant(graph, k, &shape)?;
            graph.add(Op::Mul, &[c, n])
        }
    };
    let ax = scaled(graph, a, x)?;
    let by = scaled(graph, b, y)?;
    graph.add(Op::Add, &[ax, by])
}

/// Adds the update of every `(parameter leaf, gradient)` pair to `graph`.
///
/// State leaves are named after their parameter (`dense1.weight.v`,
/// `dense1.weight.m`); with plain SGD (momentum 0) there are none.
pub fn build_updates(
    graph: &mut Graph,
    params: &[(NodeId, NodeId)],
    opt: &Optimizer,
) -> Result<Updates, ShapeError> {
    let mut param_updates = Vec::new();
    let mut states = Vec::new();
    let mut state_updates = Vec::new();
    let mut scalars = Vec::new();
    let name_of = |graph: &Graph, leaf: NodeId| match graph.node(leaf).op {
        Op::Leaf(id) => graph.leaf_info(id).name.clone(),
        _ => format!("param{}", leaf.index()),
    };
    match *opt {
        Optimizer::Sgd { lr, momentum } => {
            let (lr, m) = (lr.value, momentum.value);
            for (i, &(w, g)) in params.iter().enumerate() {
                let shape = graph.node(w).shape.clone();
                let step = if m == 0.0 {
                    g
                } else {
                    let v = graph.leaf(&format!("{}.v", name_of(graph, w)), LeafKind::State, shape);
                    let v_new = axpby(graph, m, v, 1.0, g)?;
                    states.push((v, i));
                    state_updates.push((v, v_new));
                    v_new
                };
                param_updates.push((w, axpby(graph, 1.0, w, -lr, step)?));
            }
        }
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            eps,
        } => {
            let (lr, b1, b2, e) = (lr.value, beta1.value, beta2.value, eps.value);
            let c1 = graph.leaf("adam.c1", LeafKind::Scalar, Shape(vec![]));
            let c2 = graph.leaf("adam.c2", LeafKind::Scalar, Shape(vec![]));
            scalars = vec![c1, c2];
            let mut ms = Vec::new();
            let mut vs = Vec::new();
            for (i, &(w, g)) in params.iter().enumerate() {
                let shape = graph.node(w).shape.clone();
                let name = name_of(graph, w);
                let m = graph.leaf(&format!("{name}.m"), LeafKind::State, shape.clone());
                let v = graph.leaf(&format!("{name}.v"), LeafKind::State, shape.clone());
                let m_new = axpby(graph, b1, m, 1.0 - b1, g)?;
                let g2 = graph.add(Op::Mul, &[g, g])?;
                let v_new = axpby(graph, b2, v, 1.0 - b2, g2)?;
                let c1s = splat(graph, c1, &shape)?;
                let c2s = splat(graph, c2, &shape)?;
                let m_hat = graph.add(Op::Mul, &[m_new, c1s])?;
                let v_hat = graph.add(Op::Mul, &[v_new, c2s])?;
                let root = graph.add(Op::Sqrt, &[v_hat])?;
                let eps_c = constant(graph, e, &shape)?;
                let denom = graph.add(Op::Add, &[root, eps_c])?;
                let inv = graph.add(Op::Recip, &[denom])?;
                let step = graph.add(Op::Mul, &[m_hat, inv])?;
                param_updates.push((w, axpby(graph, 1.0, w, -lr, step)?));
                ms.push(((m, i), (m, m_new)));
                vs.push(((v, i), (v, v_new)));
            }
            // All first moments, then all second moments: a fixed, documented order.
            for (s, u) in ms.into_iter().chain(vs) {
                states.push(s);
                state_updates.push(u);
            }
        }
    }
    let mut updates = param_updates;
    updates.extend(state_updates);
    Ok(Updates {
        states,
        updates,
        scalars,
    })
}

/// A scalar node that is finite exactly when every element of `node` is:
/// `sum(node * 0)` is 0 for finite values and NaN as soon as one element is
/// NaN or infinite (`inf * 0` is NaN), with no risk of overflow.
pub fn finite_check(graph: &mut Graph, node: NodeId) -> Result<NodeId, ShapeError> {
    let shape = graph.node(node).shape.clone();
    let rank = shape.0.len();
    let zero = constant(graph, 0.0, &shape)?;
    let product = graph.add(Op::Mul, &[node, zero])?;
    if rank == 0 {
        return Ok(product);
    }
    graph.add(Op::Sum(Axes(((1u16 << rank) - 1) as u8)), &[product])
}
