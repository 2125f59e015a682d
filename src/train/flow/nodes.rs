//! The gradient-flow statistics (spec §8) as graph nodes on the probe's
//! graph: reductions over the forward and backward nodes it already has,
//! compiled and fused like the rest, so no statistic runs in Rust loops or
//! in the interpreter (only `grad_max_abs`, a max, is read off the compiled
//! gradient, because the op table has no max-reduction).

use crate::graph::{Axes, Graph, LeafKind, NodeId, Op, Shape};
use crate::train::layout::{Role, Stat};

/// One layer's nodes on the probe's graph, what its statistics are built from.
pub(super) struct LayerNodes {
    /// The output `a`.
    pub a: NodeId,
    /// `∂L/∂z`, L the mean loss over the probe rows.
    pub delta: NodeId,
    /// `f'(z)` and g = max |f'| on [−8, 8] (element-wise, non-identity activations).
    pub derivative: Option<(NodeId, f64)>,
    /// The layer's weight: its parameter index, leaf and gradient.
    pub weight: (usize, NodeId, NodeId),
}

/// `mean(v)` over every element, a scalar.
fn mean_all(g: &mut Graph, v: NodeId) -> NodeId {
    let shape = g.node(v).shape.clone();
    let s = g.sum_all(v);
    let n = g.element_count(&shape);
    g.div(s, n)
}

/// `sqrt(mean(v²))`.
fn rms(g: &mut Graph, v: NodeId) -> NodeId {
    let sq = g.mul2(v, v);
    let m = mean_all(g, sq);
    g.make(Op::Sqrt, &[m])
}

/// The Frobenius norm `sqrt(sum(v²))`.
fn norm(g: &mut Graph, v: NodeId) -> NodeId {
    let sq = g.mul2(v, v);
    let s = g.sum_all(sq);
    g.make(Op::Sqrt, &[s])
}

/// The statistics of layer `l` (and the `Before` input its update ratio
/// reads), labelled by role.
pub(super) fn layer_stats(g: &mut Graph, l: usize, n: &LayerNodes) -> Vec<(Role, NodeId)> {
    let mut out = Vec::new();
    let mut stat = |s: Stat, node: NodeId| out.push((Role::Stat(l, s), node));
    let rows = g.make(Op::BatchSize, &[]);
    // P·∂L/∂z: the mean loss divides each example's signal by P.
    let delta = rms(g, n.delta);
    stat(Stat::DeltaRms, g.mul2(delta, rows));
    let mean = mean_all(g, n.a);
    stat(Stat::ActMean, mean);
    let shape = g.node(n.a).shape.clone();
    let spread = g.splat(mean, &shape);
    let centred = g.sub(n.a, spread);
    stat(Stat::ActStd, rms(g, centred));
    if let Some((d, gmax)) = n.derivative {
        let abs = g.make(Op::Abs, &[d]);
        let bound = g.constant(0.1 * gmax);
        let flat = g.elementwise(Op::Lt, &[abs, bound]);
        stat(Stat::Saturated, mean_all(g, flat));
        // Per unit: how many rows are saturated; dead when all of them are.
        let per_unit = g.sum(flat, Axes(1));
        let all = g.elementwise(Op::Ge, &[per_unit, rows]);
        stat(Stat::Dead, mean_all(g, all));
    }
    let (param, leaf, grad) = n.weight;
    stat(Stat::GradRms, rms(g, grad));
    let shape: Shape = g.node(leaf).shape.clone();
    let before = g.leaf(&format!("before{param}"), LeafKind::Param, shape);
    let step = g.sub(leaf, before);
    let (moved, size) = (norm(g, step), norm(g, before));
    stat(Stat::UpdateRatio, g.div(moved, size));
    out.push((Role::Before(param), before));
    out
}
