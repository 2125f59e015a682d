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
//! adamw: w0 = w - lr*D*w (weights only; biases keep w0 = w), then adam from w0
//! rmsprop: v' = R*v + (1-R)*g*g   w' = w - lr * g / (sqrt(v') + E)
//! ```
//!
//! `c1` and `c2` are scalar leaves the caller sets before every step from the
//! step count `s` (two scalars per step are bookkeeping, not numeric work).
//!
//! This module is the optimizer interface of the training loop: an
//! optimizer's state leaves, update nodes ([`build_updates`]) and per-step
//! scalars ([`step_scalars`]) are all here, one exhaustive `match` each, so
//! the loop itself names no optimizer.

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
    /// Per-step scalar leaves, set by [`step_scalars`] before every step:
    /// Adam's (and AdamW's) bias corrections `[c1, c2]`; empty otherwise.
    pub scalars: Vec<NodeId>,
}

/// The most per-step scalars an optimizer has (the training loop keeps
/// their values in a fixed array, allocating nothing per step).
pub const MAX_SCALARS: usize = 2;

/// Adam's bias corrections `(1/(1-B1^s), 1/(1-B2^s))` for step `s ≥ 1`,
/// computed in f64.
pub fn adam_corrections(beta1: f64, beta2: f64, step: u64) -> (f64, f64) {
    let s = i32::try_from(step).unwrap_or(i32::MAX);
    (1.0 / (1.0 - beta1.powi(s)), 1.0 / (1.0 - beta2.powi(s)))
}

/// Writes the values of `opt`'s per-step scalars for step `step ≥ 1` into
/// `out`, in the order of [`Updates::scalars`] (entries past them are left
/// alone).
pub fn step_scalars(opt: &Optimizer, step: u64, out: &mut [[f32; 1]; MAX_SCALARS]) {
    match *opt {
        Optimizer::Sgd { .. } | Optimizer::RmsProp { .. } => {}
        Optimizer::Adam { beta1, beta2, .. } | Optimizer::AdamW { beta1, beta2, .. } => {
            let (c1, c2) = adam_corrections(beta1.value, beta2.value, step);
            *out = [[c1 as f32], [c2 as f32]];
        }
    }
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

/// The name of a parameter leaf (`dense1.weight`).
fn name_of(graph: &Graph, leaf: NodeId) -> String {
    match graph.node(leaf).op {
        Op::Leaf(id) => graph.leaf_info(id).name.clone(),
        _ => format!("param{}", leaf.index()),
    }
}

/// A parameter leaf with its gradient, as the optimizer sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trainable {
    /// The parameter leaf.
    pub leaf: NodeId,
    /// `∂loss/∂leaf`.
    pub grad: NodeId,
    /// Whether decoupled weight decay applies (weights yes, biases no).
    pub decays: bool,
}

/// Adds the update of every trainable parameter to `graph`.
///
/// State leaves are named after their parameter (`dense1.weight.v`,
/// `dense1.weight.m`); with plain SGD (momentum 0) there are none.
pub fn build_updates(
    graph: &mut Graph,
    params: &[Trainable],
    opt: &Optimizer,
) -> Result<Updates, ShapeError> {
    let mut b = Build::default();
    match *opt {
        Optimizer::Sgd { lr, momentum } => {
            let (lr, m) = (lr.value, momentum.value);
            for (
                i,
                &Trainable {
                    leaf: w, grad: g, ..
                },
            ) in params.iter().enumerate()
            {
                let step = if m == 0.0 {
                    g
                } else {
                    let v = b.state(graph, w, "v", i);
                    let v_new = axpby(graph, m, v, 1.0, g)?;
                    b.state_updates.push((v, v_new));
                    v_new
                };
                b.params.push((w, axpby(graph, 1.0, w, -lr, step)?));
            }
        }
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            eps,
        } => adam(
            graph,
            params,
            [lr, beta1, beta2, eps].map(|s| s.value),
            0.0,
            &mut b,
        )?,
        Optimizer::AdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let hyper = [lr, beta1, beta2, eps].map(|s| s.value);
            adam(graph, params, hyper, weight_decay.value, &mut b)?
        }
        Optimizer::RmsProp { lr, rho, eps } => {
            let (lr, r, e) = (lr.value, rho.value, eps.value);
            for (
                i,
                &Trainable {
                    leaf: w, grad: g, ..
                },
            ) in params.iter().enumerate()
            {
                let v = b.state(graph, w, "v", i);
                let g2 = graph.add(Op::Mul, &[g, g])?;
                let v_new = axpby(graph, r, v, 1.0 - r, g2)?;
                let root = graph.add(Op::Sqrt, &[v_new])?;
                let inv = guarded_recip(graph, root, e)?;
                let step = graph.add(Op::Mul, &[g, inv])?;
                b.params.push((w, axpby(graph, 1.0, w, -lr, step)?));
                b.state_updates.push((v, v_new));
            }
        }
    }
    let mut updates = b.params;
    updates.extend(b.state_updates);
    Ok(Updates {
        states: b.states,
        updates,
        scalars: b.scalars,
    })
}

/// The pieces of [`Updates`] while they are built.
#[derive(Default)]
struct Build {
    params: Vec<(NodeId, NodeId)>,
    states: Vec<(NodeId, usize)>,
    state_updates: Vec<(NodeId, NodeId)>,
    scalars: Vec<NodeId>,
}

impl Build {
    /// A new state leaf `NAME.suffix` shaped like parameter `i` (leaf `w`).
    fn state(&mut self, graph: &mut Graph, w: NodeId, suffix: &str, i: usize) -> NodeId {
        let shape = graph.node(w).shape.clone();
        let leaf = graph.leaf(
            &format!("{}.{suffix}", name_of(graph, w)),
            LeafKind::State,
            shape,
        );
        self.states.push((leaf, i));
        leaf
    }
}

/// `1 / (x + e)` for the constant `e`.
fn guarded_recip(graph: &mut Graph, x: NodeId, e: f64) -> Result<NodeId, ShapeError> {
    let shape = graph.node(x).shape.clone();
    let eps_c = constant(graph, e, &shape)?;
    let denom = graph.add(Op::Add, &[x, eps_c])?;
    graph.add(Op::Recip, &[denom])
}

/// Adam's update (`[lr, B1, B2, E]`), after decoupled weight decay `decay`
/// on the parameters that decay (`decay` 0 adds no node: plain Adam).
fn adam(
    graph: &mut Graph,
    params: &[Trainable],
    [lr, b1, b2, e]: [f64; 4],
    decay: f64,
    b: &mut Build,
) -> Result<(), ShapeError> {
    let c1 = graph.leaf("adam.c1", LeafKind::Scalar, Shape(vec![]));
    let c2 = graph.leaf("adam.c2", LeafKind::Scalar, Shape(vec![]));
    b.scalars = vec![c1, c2];
    let mut ms = Vec::new();
    let mut vs = Vec::new();
    for (
        i,
        &Trainable {
            leaf: w,
            grad: g,
            decays,
        },
    ) in params.iter().enumerate()
    {
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
        let inv = guarded_recip(graph, root, e)?;
        let step = graph.add(Op::Mul, &[m_hat, inv])?;
        // Decoupled weight decay on weights only (spec §6: not biases).
        let decayed = if decay != 0.0 && decays {
            axpby(graph, 1.0, w, -lr * decay, w)?
        } else {
            w
        };
        b.params.push((w, axpby(graph, 1.0, decayed, -lr, step)?));
        ms.push(((m, i), (m, m_new)));
        vs.push(((v, i), (v, v_new)));
    }
    // All first moments, then all second moments: a fixed, documented order.
    for (s, u) in ms.into_iter().chain(vs) {
        b.states.push(s);
        b.state_updates.push(u);
    }
    Ok(())
}

/// `Σⱼ wⱼ·gⱼ` over `(wⱼ, gⱼ)` pairs (scalar weights, gradients of one
/// shape), summed left to right: the gradient of a batch from its shares'.
pub fn weighted_sum(graph: &mut Graph, terms: &[(NodeId, NodeId)]) -> Result<NodeId, ShapeError> {
    let mut sum: Option<NodeId> = None;
    for &(w, g) in terms {
        let shape = graph.node(g).shape.clone();
        let ws = splat(graph, w, &shape)?;
        let term = graph.add(Op::Mul, &[ws, g])?;
        sum = Some(match sum {
            None => term,
            Some(s) => graph.add(Op::Add, &[s, term])?,
        });
    }
    sum.ok_or_else(|| ShapeError("a weighted sum needs at least one term".into()))
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
