//! The compiled entry points of a network, built by one builder, with every
//! input, output and updated buffer labelled by its [`Role`].
//!
//! A caller never counts positions: it asks [`Entry::input`] or
//! [`Entry::output`] for the slot of a role. Underneath, an entry is a plain
//! [`Signature`] for the code generator.

use super::optim::{self, Trainable, Updates};
use crate::check::layer::ParamRole;
use crate::check::model::Optimizer;
use crate::codegen::{CodegenError, Compiled, Element, Jit, Signature};
use crate::graph::{Axes, Graph, LeafKind, NodeId, Op, ShapeError};
use crate::pipeline::Network;
use std::collections::HashMap;

/// What one slot of an entry point holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The input rows `x`.
    Input,
    /// The targets `t`.
    Target,
    /// Parameter `i` (in the network's parameter order).
    Param(usize),
    /// The optimizer's per-step scalar `i` (in [`Updates::scalars`] order).
    Scalar(usize),
    /// Optimizer state tensor `i` (in [`Updates::states`] order).
    State(usize),
    /// The mean loss of the batch.
    Loss,
    /// The number of correct predictions (classification only).
    Correct,
    /// `∂loss/∂param i`.
    Grad(usize),
    /// A scalar that is finite exactly when gradient `i` is.
    Check(usize),
    /// The network's output `y`.
    Output,
    /// Node `i` of the list given to [`Builder::nodes`].
    Node(usize),
    /// Parameter `i` as it was before the epoch (the gradient-flow probe's
    /// update ratio).
    Before(usize),
    /// A gradient-flow statistic of layer `l` (index into the model's layers).
    Stat(usize, Stat),
    /// Share `j`'s gradient of parameter `i` (a data-parallel step's update).
    ShareGrad(usize, usize),
    /// Share `j`'s weight in the batch: its rows over the batch's.
    ShareWeight(usize),
}

/// The per-layer gradient-flow statistics computed by compiled code (spec
/// §8; `grad_max_abs` is read off the probe's gradient output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stat {
    /// sqrt(mean((P·∂L/∂z)²)).
    DeltaRms,
    /// sqrt(mean((∂L/∂W)²)).
    GradRms,
    /// mean(a).
    ActMean,
    /// The population standard deviation of a.
    ActStd,
    /// The fraction of (row, unit) pairs with |f'(z)| < 0.1·g.
    Saturated,
    /// The fraction of units saturated on every row.
    Dead,
    /// ‖W − W_before‖ / ‖W_before‖.
    UpdateRatio,
}

/// One entry point: a signature over the builder's graph, with roles.
#[derive(Clone, Debug)]
pub struct Entry {
    /// What the code generator compiles.
    pub signature: Signature,
    /// The role of each input, parallel to `signature.inputs`.
    pub inputs: Vec<Role>,
    /// The role of each output, parallel to `signature.outputs`.
    pub outputs: Vec<Role>,
    /// The role of each buffer updated in place, parallel to
    /// `signature.updates` (parameters, then optimizer states).
    pub updated: Vec<Role>,
}

impl Entry {
    /// The input slot holding `role`, if this entry has one.
    pub fn input(&self, role: Role) -> Option<usize> {
        self.inputs.iter().position(|&r| r == role)
    }

    /// The output slot holding `role`, if this entry has one. A scan: a
    /// caller asking for every parameter's slot uses [`Entry::output_slots`].
    pub fn output(&self, role: Role) -> Option<usize> {
        self.outputs.iter().position(|&r| r == role)
    }

    /// The slot of every output role, for callers that look up one role
    /// per parameter or layer (a scan each would be quadratic in depth).
    pub fn output_slots(&self) -> HashMap<Role, usize> {
        (self.outputs.iter().enumerate())
            .map(|(slot, &role)| (role, slot))
            .collect()
    }
}

/// The buffers an entry's inputs may read; [`Entry::fill_inputs`] picks each
/// slot's by its role. Empty where a caller has none (a forward pass has no
/// optimizer scalars): an entry that needs one then fails `call`'s length
/// check rather than reading the wrong buffer.
#[derive(Clone, Copy, Debug)]
pub struct Feed<'a, T> {
    /// The batch's features.
    pub x: &'a [T],
    /// The batch's targets.
    pub t: &'a [T],
    /// Every parameter, in the network's order.
    pub params: &'a [Vec<T>],
    /// The optimizer's per-step scalars.
    pub scalars: &'a [[T; 1]],
    /// Every parameter before the epoch (the flow probe's update ratio).
    pub before: &'a [Vec<T>],
}

impl<'a, T> Feed<'a, T> {
    /// A feed of `x` and `t` alone.
    pub fn new(x: &'a [T], t: &'a [T]) -> Self {
        Feed {
            x,
            t,
            params: &[],
            scalars: &[],
            before: &[],
        }
    }

    /// The buffer of input `role`: the one exhaustive match of the roles an
    /// input can have.
    fn get(&self, role: Role) -> &'a [T] {
        match role {
            Role::Input => self.x,
            Role::Target => self.t,
            Role::Param(i) => self.params.get(i).map_or(&[], Vec::as_slice),
            Role::Scalar(i) => self.scalars.get(i).map_or(&[], |s| s.as_slice()),
            Role::Before(i) => self.before.get(i).map_or(&[], Vec::as_slice),
            // Updated in place (`call`'s states), or outputs: never inputs;
            // a data-parallel step's shares fill their update's inputs.
            Role::ShareGrad(..)
            | Role::ShareWeight(_)
            | Role::State(_)
            | Role::Loss
            | Role::Correct
            | Role::Grad(_)
            | Role::Check(_)
            | Role::Stat(..)
            | Role::Output
            | Role::Node(_) => &[],
        }
    }
}

impl Entry {
    /// Fills `slots` (at least one per input) with each input's buffer from
    /// `feed`, without allocating: the training loop calls it every step.
    pub fn fill_inputs<'a, T>(&self, feed: &Feed<'a, T>, slots: &mut [&'a [T]]) {
        for (slot, &role) in slots.iter_mut().zip(&self.inputs) {
            *slot = feed.get(role);
        }
    }

    /// Each input's buffer from `feed`, in slot order.
    pub fn inputs_from<'a, T>(&self, feed: &Feed<'a, T>) -> Vec<&'a [T]> {
        self.inputs.iter().map(|&role| feed.get(role)).collect()
    }
}

/// Builds entry points over one copy of a network's graph; the nodes an
/// entry adds (updates, checks) are shared with the entries built after it.
pub struct Builder<'n> {
    net: &'n Network,
    graph: Graph,
}

impl<'n> Builder<'n> {
    /// A builder over a copy of `net`'s graph.
    pub fn new(net: &'n Network) -> Self {
        Builder {
            net,
            graph: net.graph.clone(),
        }
    }

    /// The network the entries are built for.
    pub fn network(&self) -> &'n Network {
        self.net
    }

    /// The graph every entry built so far refers to.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Compiles `entry` for `batch` rows.
    pub fn compile<T: Element>(
        &self,
        jit: &mut Jit,
        entry: &Entry,
        batch: usize,
    ) -> Result<Compiled<T>, CodegenError> {
        jit.compile(&self.graph, &entry.signature, batch)
    }

    fn entry(&self, inputs: Vec<(Role, NodeId)>, outputs: Vec<(Role, NodeId)>) -> Entry {
        Entry {
            signature: Signature {
                inputs: inputs.iter().map(|p| p.1).collect(),
                outputs: outputs.iter().map(|p| p.1).collect(),
                updates: Vec::new(),
            },
            inputs: inputs.into_iter().map(|p| p.0).collect(),
            outputs: outputs.into_iter().map(|p| p.0).collect(),
            updated: Vec::new(),
        }
    }

    /// `x` and every parameter, as inputs.
    fn x_params(&self, with_target: bool) -> Vec<(Role, NodeId)> {
        let mut ins = vec![(Role::Input, self.net.x)];
        if with_target {
            ins.push((Role::Target, self.net.t));
        }
        ins.extend(self.params());
        ins
    }

    fn params(&self) -> impl Iterator<Item = (Role, NodeId)> + '_ {
        let params = self.net.params.iter().enumerate();
        params.map(|(i, p)| (Role::Param(i), p.node))
    }

    /// The forward pass: `x`, parameters → `y`.
    pub fn forward(&mut self) -> Entry {
        self.entry(self.x_params(false), vec![(Role::Output, self.net.y)])
    }

    /// The loss and/or the gradients: `x`, `t`, parameters → loss, grads.
    pub fn loss_grad(&mut self, loss: bool, grads: bool) -> Entry {
        let mut outs = Vec::new();
        if loss {
            outs.push((Role::Loss, self.net.loss));
        }
        if grads {
            let grads = self.net.grads.iter().enumerate();
            outs.extend(grads.map(|(i, &g)| (Role::Grad(i), g)));
        }
        self.entry(self.x_params(true), outs)
    }

    /// The loss and the correct count (a scalar), as the step and the
    /// validation pass report them.
    fn metrics(&mut self) -> Result<Vec<(Role, NodeId)>, ShapeError> {
        let mut outs = vec![(Role::Loss, self.net.loss)];
        if let Some(c) = self.net.correct {
            outs.push((Role::Correct, total(&mut self.graph, c)?));
        }
        Ok(outs)
    }

    /// The training step: `x`, `t` and the optimizer's scalars → loss,
    /// correct count and one finiteness check per gradient; parameters and
    /// optimizer states are updated in place. Also returns the optimizer's
    /// [`Updates`] (its state leaves and scalars).
    pub fn step(&mut self, opt: &Optimizer) -> Result<(Entry, Updates), ShapeError> {
        let g = &mut self.graph;
        let pairs: Vec<Trainable> = (self.net.params.iter())
            .zip(self.net.grads.iter().copied())
            .map(|(p, grad)| Trainable {
                leaf: p.node,
                grad,
                decays: p.role == ParamRole::Weight,
            })
            .collect();
        let updates = optim::build_updates(g, &pairs, opt)?;
        let mut outs = self.metrics()?;
        for (i, &grad) in self.net.grads.iter().enumerate() {
            outs.push((Role::Check(i), optim::finite_check(&mut self.graph, grad)?));
        }
        let mut ins = vec![(Role::Input, self.net.x), (Role::Target, self.net.t)];
        let scalars = updates.scalars.iter().enumerate();
        ins.extend(scalars.map(|(i, &s)| (Role::Scalar(i), s)));
        let mut entry = self.entry(ins, outs);
        entry.signature.updates = updates.updates.clone();
        entry.updated = (0..self.net.params.len())
            .map(Role::Param)
            .chain((0..updates.states.len()).map(Role::State))
            .collect();
        Ok((entry, updates))
    }

    /// One thread's share of a data-parallel step (`train::shard`): `x`,
    /// `t`, parameters → loss, correct count and every gradient, over the
    /// share's rows.
    pub fn share(&mut self) -> Result<Entry, ShapeError> {
        let mut outs = self.metrics()?;
        let grads = self.net.grads.iter().enumerate();
        outs.extend(grads.map(|(i, &g)| (Role::Grad(i), g)));
        Ok(self.entry(self.x_params(true), outs))
    }

    /// The update of parameters `params` in a data-parallel step over
    /// `shares` shares: gradient `i` is `Σⱼ wⱼ·gᵢⱼ` (the shares' gradients
    /// and weights are inputs, summed in share order), then the
    /// optimizer's update of those parameters and their states in place,
    /// with one finiteness check per combined gradient. The states and
    /// scalars are those of `step` (from [`Builder::step`]), and the
    /// entry's roles name them by their place there.
    pub fn combine(
        &mut self,
        (opt, step): (&Optimizer, &Updates),
        shares: usize,
        params: std::ops::Range<usize>,
    ) -> Result<Entry, ShapeError> {
        let g = &mut self.graph;
        let weights: Vec<NodeId> = (0..shares)
            .map(|j| {
                g.leaf(
                    &format!("share{j}.weight"),
                    LeafKind::Scalar,
                    Default::default(),
                )
            })
            .collect();
        let mut ins: Vec<(Role, NodeId)> = (weights.iter().enumerate())
            .map(|(j, &w)| (Role::ShareWeight(j), w))
            .collect();
        let mut pairs = Vec::new();
        for i in params.clone() {
            let p = &self.net.params[i];
            let shape = g.node(p.node).shape.clone();
            let mut terms = Vec::new();
            for (j, &w) in weights.iter().enumerate() {
                let leaf = g.leaf(&format!("share{j}.grad{i}"), LeafKind::Grad, shape.clone());
                ins.push((Role::ShareGrad(i, j), leaf));
                terms.push((w, leaf));
            }
            let grad = optim::weighted_sum(g, &terms)?;
            let decays = p.role == ParamRole::Weight;
            pairs.push(Trainable {
                leaf: p.node,
                grad,
                decays,
            });
        }
        // State leaves are named after their parameter, so these are the
        // step's own leaves.
        let updates = optim::build_updates(g, &pairs, opt)?;
        let mut outs = Vec::new();
        for (i, t) in params.clone().zip(&pairs) {
            outs.push((Role::Check(i), optim::finite_check(g, t.grad)?));
        }
        let scalars = updates.scalars.iter().enumerate();
        ins.extend(scalars.map(|(i, &s)| (Role::Scalar(i), s)));
        let place: std::collections::HashMap<NodeId, usize> = (step.states.iter().enumerate())
            .map(|(k, &(l, _))| (l, k))
            .collect();
        let mut updated: Vec<Role> = params.map(Role::Param).collect();
        for &(leaf, _) in &updates.states {
            let at = place.get(&leaf).copied();
            let at = at.ok_or_else(|| ShapeError(format!("state {leaf:?} is not the step's")))?;
            updated.push(Role::State(at));
        }
        let mut entry = self.entry(ins, outs);
        entry.signature.updates = updates.updates;
        entry.updated = updated;
        Ok(entry)
    }

    /// Any nodes of the network's graph, as outputs: `x`, `t`, parameters
    /// → `nodes` (the worked numbers of `slope grad --sample`).
    pub fn nodes(&mut self, nodes: &[NodeId]) -> Entry {
        let outs = nodes.iter().enumerate();
        let outs = outs.map(|(i, &n)| (Role::Node(i), n)).collect();
        self.entry(self.x_params(true), outs)
    }

    /// The gradient-flow probe: `x`, `t`, parameters and the inputs `stats`
    /// adds → loss, every gradient and the outputs `stats` adds (built on
    /// this builder's graph, so they share the forward and backward nodes).
    pub fn probe(
        &mut self,
        stats: impl FnOnce(&mut Graph) -> Result<Vec<(Role, NodeId)>, ShapeError>,
    ) -> Result<Entry, ShapeError> {
        let mut ins = self.x_params(true);
        let mut outs = vec![(Role::Loss, self.net.loss)];
        let grads = self.net.grads.iter().enumerate();
        outs.extend(grads.map(|(i, &g)| (Role::Grad(i), g)));
        for (role, node) in stats(&mut self.graph)? {
            match role {
                Role::Before(_) => ins.push((role, node)),
                _ => outs.push((role, node)),
            }
        }
        Ok(self.entry(ins, outs))
    }

    /// The validation pass: `x`, `t`, parameters → loss and correct count.
    pub fn eval(&mut self) -> Result<Entry, ShapeError> {
        let outs = self.metrics()?;
        Ok(self.entry(self.x_params(true), outs))
    }
}

/// `node` summed to a scalar (unchanged when it already is one).
fn total(graph: &mut Graph, node: NodeId) -> Result<NodeId, ShapeError> {
    let rank = graph.node(node).shape.0.len();
    if rank == 0 {
        return Ok(node);
    }
    graph.add(Op::Sum(Axes(((1u16 << rank) - 1) as u8)), &[node])
}
