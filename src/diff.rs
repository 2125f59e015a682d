//! Stage 4: reverse-mode differentiation over the graph.
//!
//! The walk knows no op by name (micrograd's `backward`, tinygrad's
//! `compute_gradient`): it orders the nodes the root depends on, seeds the
//! root's adjoint with 1, and visits the nodes from the root down, asking
//! each op's derivative rule ([`Op::derivative`](crate::graph::Op::derivative))
//! what it sends to its operands and summing what each node receives.
//!
//! Only nodes that depend on a `wrt` node take part, so differentiating a
//! loss by the parameters builds nothing for the inputs or the targets.
//!
//! **Architecture Invariant:** `diff` imports only `graph`.

use crate::graph::{Graph, NodeId, Rule};
use std::collections::{HashMap, HashSet};

/// One application of a derivative rule, in the order the walk made them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The node whose rule was applied (its adjoint is already complete).
    pub node: NodeId,
    /// The operand the rule differentiated through.
    pub operand: NodeId,
    /// The operand's slot in `node`.
    pub slot: usize,
    /// The rule (the chain rule is implied when `operand` is not a leaf).
    pub rule: Rule,
    /// What the rule added to the operand's adjoint.
    pub produced: NodeId,
}

/// The result of [`grad`]: gradient nodes, every adjoint, and the derivation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gradients {
    /// The differentiated node.
    pub root: NodeId,
    /// The nodes differentiated by, as given.
    pub wrt: Vec<NodeId>,
    /// `∂root/∂wrt[i]`, shaped like `wrt[i]` (a zero constant, broadcast to
    /// that shape, when the root does not depend on it).
    pub grads: Vec<NodeId>,
    /// Every rule application, in order.
    pub steps: Vec<Step>,
    adjoints: HashMap<NodeId, NodeId>,
}

impl Gradients {
    /// `∂root/∂node` for any node on a path from a `wrt` node to the root
    /// (e.g. `δ_l = ∂ℓ/∂z_l`); `None` for nodes off every such path.
    pub fn adjoint(&self, node: NodeId) -> Option<NodeId> {
        self.adjoints.get(&node).copied()
    }

    /// The gradient with respect to `node`, if it was one of the `wrt` nodes.
    pub fn of(&self, node: NodeId) -> Option<NodeId> {
        self.wrt
            .iter()
            .position(|&w| w == node)
            .map(|i| self.grads[i])
    }
}

/// Differentiates `root` with respect to each of `wrt` (leaves or any
/// interior nodes), adding the gradient nodes to `graph`.
///
/// A non-scalar root is seeded with ones, so the result is the gradient of
/// the sum of its elements.
pub fn grad(graph: &mut Graph, root: NodeId, wrt: &[NodeId]) -> Gradients {
    // Nothing below a wrt node depends on it, so with one wrt node the walk
    // stops there: the local derivative of one layer's activation then
    // costs that layer alone, not every layer under it. (With several, one
    // may lie below another; leaves have nothing below them anyway.)
    let floor = if wrt.len() == 1 { wrt } else { &[] };
    let order = graph.topo_order_above(&[root], floor);
    let targets: HashSet<NodeId> = wrt.iter().copied().collect();

    // A node needs an adjoint when it is a wrt node or depends on one.
    let mut depends: HashSet<NodeId> = HashSet::new();
    for &id in &order {
        if targets.contains(&id) || graph.node(id).args.iter().any(|a| depends.contains(a)) {
            depends.insert(id);
        }
    }

    let mut received: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    let mut adjoints = HashMap::new();
    let mut steps = Vec::new();
    if depends.contains(&root) {
        let shape = graph.node(root).shape.clone();
        let seed = graph.constant_like(1.0, &shape);
        received.insert(root, vec![seed]);
    }

    for &id in order.iter().rev() {
        let Some(parts) = received.remove(&id) else {
            continue;
        };
        let adjoint = graph.add_n(&parts);
        adjoints.insert(id, adjoint);
        let node = graph.node(id).clone();
        let wanted: Vec<bool> = node.args.iter().map(|a| depends.contains(a)).collect();
        if !wanted.contains(&true) {
            continue;
        }
        for c in node.op.derivative(graph, id, adjoint, &wanted) {
            let operand = node.args[c.slot];
            steps.push(Step {
                node: id,
                operand,
                slot: c.slot,
                rule: c.rule,
                produced: c.value,
            });
            received.entry(operand).or_default().push(c.value);
        }
    }

    let grads = wrt
        .iter()
        .map(|&w| match adjoints.get(&w) {
            Some(&a) => a,
            None => {
                let shape = graph.node(w).shape.clone();
                graph.constant_like(0.0, &shape)
            }
        })
        .collect();
    Gradients {
        root,
        wrt: wrt.to_vec(),
        grads,
        steps,
        adjoints,
    }
}
