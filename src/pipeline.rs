//! Stage 5b: the compile pipeline, written once. Lowering ([`lower`]),
//! reverse-mode differentiation ([`diff`]) and simplification
//! ([`simplify`]) turn a checked model into a [`Network`] whose loss,
//! accuracy count and gradients are ready for the code generator.
//!
//! Every command, test and benchmark that needs a differentiated network
//! calls [`compile`] (or [`derive()`] on a network it lowered itself, to name
//! nodes first or to ask for more simplified roots with a [`Focus`]).
//!
//! **Architecture Invariant:** this is the only place that chains
//! `lower_model`, `diff::grad` and `simplify::simplify` for a network;
//! `pipeline` imports `check`, `graph`, `lower`, `diff`, `simplify` and
//! `diag`, never `codegen`, `train` or `cli`.

// Every stage reports a `Diagnostic` by value (the agreed interface).
#![allow(clippy::result_large_err)]

use crate::check::model::{Model, Program};
use crate::diag::Diagnostic;
use crate::graph::{NodeId, Op};
pub use crate::lower::{LayerNodes, Network, ParamNode};
use crate::simplify::Simplified;
use crate::{diff, lower, simplify};
use std::time::Instant;

/// Seconds spent in each phase, as `slope train` and `slope bench` print them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Lowering and differentiation.
    pub lower_diff: f64,
    /// Simplification of the loss, accuracy and gradients.
    pub simplify: f64,
}

/// Which nodes, besides the loss and the gradients, a caller needs
/// simplified. Each choice fixes the order of the simplifier's roots, and
/// with it the node ids of the result (so each command's output is stable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// Training and gradient checks: the loss, the accuracy count and the
    /// gradients.
    Training,
    /// `slope graph --grad`: the loss, the output `y` and the gradients.
    Graph,
    /// `slope grad`: the loss, every layer's `z` and `a`, the gradients,
    /// the adjoint of every `z` (`δ`) and every element-wise activation's
    /// derivative.
    Equations,
}

/// A differentiated network and what its [`Focus`] asked for.
#[derive(Clone, Debug)]
pub struct Derived {
    /// The network: `loss`, `correct`/`y` (as the focus says) and `grads`
    /// are the simplified nodes.
    pub network: Network,
    /// Per layer, the adjoint `∂loss/∂z` before simplification (map it with
    /// `simplified`); filled for [`Focus::Equations`] only.
    pub deltas: Vec<Option<NodeId>>,
    /// Per layer, `act'(z)` for element-wise non-identity activations,
    /// before simplification; filled for [`Focus::Equations`] only.
    pub activation_derivatives: Vec<Option<NodeId>>,
    /// Where every node the roots depended on ended up.
    pub simplified: Simplified,
    /// Seconds spent (lowering not included: see [`compile`]).
    pub timings: Timings,
}

/// Lowers `model`, differentiates its loss with respect to every parameter
/// and simplifies the loss, the accuracy count and the gradients.
///
/// ```
/// let src = "model m {\n input 2\n dense 1 sigmoid\n loss bce\n}\n";
/// let (file, _) = slope::syntax::parse(src);
/// let (program, diags) = slope::check::check(&file);
/// assert!(diags.is_empty());
/// let (net, _timings) = slope::pipeline::compile(&program, &program.models[0]).unwrap();
/// assert_eq!(net.grads.len(), net.params.len());
/// ```
pub fn compile(program: &Program, model: &Model) -> Result<(Network, Timings), Diagnostic> {
    let start = Instant::now();
    let net = lower(program, model)?;
    let lowering = start.elapsed().as_secs_f64();
    let derived = derive(net, Focus::Training);
    let mut timings = derived.timings;
    timings.lower_diff += lowering;
    Ok((derived.network, timings))
}

/// Differentiates a lowered network and simplifies the roots `focus` asks for.
pub fn derive(mut net: Network, focus: Focus) -> Derived {
    let start = Instant::now();
    let g = &mut net.graph;
    let wrt: Vec<NodeId> = net.params.iter().map(|p| p.node).collect();
    let grads = diff::grad(g, net.loss, &wrt);
    let mut deltas = Vec::new();
    let mut activation_derivatives = Vec::new();
    if focus == Focus::Equations {
        deltas = net.layers.iter().map(|l| grads.adjoint(l.z)).collect();
        // Each activation's derivative: the gradient of a = act(z), seeded
        // with ones, is act'(z) element-wise, sharing the forward nodes.
        for l in &net.layers {
            let elementwise = g.node(l.a).op != Op::Softmax;
            activation_derivatives
                .push((l.a != l.z && elementwise).then(|| diff::grad(g, l.a, &[l.z]).grads[0]));
        }
    }
    let lower_diff = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut roots = vec![net.loss];
    match focus {
        Focus::Training => roots.extend(net.correct),
        Focus::Graph => roots.push(net.y),
        Focus::Equations => roots.extend(net.layers.iter().flat_map(|l| [l.z, l.a])),
    }
    roots.extend(&grads.grads);
    roots.extend(deltas.iter().chain(&activation_derivatives).flatten());
    let simplified = simplify::simplify(g, &roots);
    let s = &simplified;
    net.loss = s.get(net.loss);
    match focus {
        Focus::Training => net.correct = net.correct.map(|c| s.get(c)),
        Focus::Graph => net.y = s.get(net.y),
        Focus::Equations => {}
    }
    net.grads = grads.grads.iter().map(|&d| s.get(d)).collect();
    let timings = Timings {
        lower_diff,
        simplify: start.elapsed().as_secs_f64(),
    };
    Derived {
        network: net,
        deltas,
        activation_derivatives,
        simplified,
        timings,
    }
}

/// Lowers `model` and derives it with [`Focus::Equations`]: the loss, every
/// layer's `z` and `a`, the gradients, every `δ = ∂loss/∂z` and every
/// element-wise activation's derivative, simplified. What gradient-flow
/// statistics are built on (`train::flow`).
pub fn compile_equations(program: &Program, model: &Model) -> Result<Derived, Diagnostic> {
    Ok(derive(lower(program, model)?, Focus::Equations))
}

/// Lowers `model` ([`lower::lower_model`]) and refuses a denominator that
/// simplifies to 0, such as `x + -x` or `x - x`: the quotient is ±inf or
/// NaN for every input, and simplifying the loss around it could hide that
/// (the simplifier may change a value only where it is not a number, so
/// `-y/y` becomes `-1`). Every command that lowers a model goes through here.
pub fn lower(program: &Program, model: &Model) -> Result<Network, Diagnostic> {
    let net = lower::lower_model(program, model)?;
    if net.divisors.is_empty() {
        return Ok(net);
    }
    // On a copy: simplifying adds nodes and names the printer should not see.
    let mut g = net.graph.clone();
    let nodes: Vec<NodeId> = net.divisors.iter().map(|d| d.node).collect();
    let s = simplify::simplify(&mut g, &nodes);
    let zero = net
        .divisors
        .iter()
        .zip(&s.roots)
        .find(|(_, r)| g.is_const(**r, 0.0));
    if let Some((d, _)) = zero {
        let mut diag = Diagnostic::error("division by zero", d.span)
            .with_label("this is 0 for every input")
            .with_help(
                "the quotient is ±inf or NaN everywhere, so the loss and its gradient \
                 are not numbers; divide by something that is not identically 0",
            );
        if let Some(used) = d.used {
            diag = diag.with_secondary(used, "used here");
        }
        return Err(diag);
    }
    Ok(net)
}

/// An activation's derivative `f'(z)`, derived symbolically on a fresh
/// graph over one vector leaf `z` (`[B]`, an input), simplified.
#[derive(Clone, Debug)]
pub struct ActivationDerivative {
    /// The graph holding `z` and `derivative`.
    pub graph: crate::graph::Graph,
    /// The leaf `z`.
    pub z: NodeId,
    /// `f'(z)`, element-wise, of `z`'s shape.
    pub derivative: NodeId,
}

/// `f'` for an element-wise activation (built-in or custom); `None` for
/// `identity` and `softmax`, which have no saturation to measure.
pub fn activation_derivative(
    program: &Program,
    activation: &crate::check::model::Activation,
) -> Result<Option<ActivationDerivative>, Diagnostic> {
    use crate::check::model::{Activation, Builtin};
    use crate::graph::{Dim, Graph, LeafKind, Shape};
    let mut g = Graph::new();
    let z = g.leaf("z", LeafKind::Input, Shape(vec![Dim::Batch]));
    let a = match activation {
        Activation::Builtin(Builtin::Identity) | Activation::Softmax => return Ok(None),
        Activation::Builtin(b) => lower::builtin(&mut g, *b, z),
        Activation::Custom(name) => {
            let Some(f) = program.activation(name) else {
                return Err(Diagnostic::bare(format!("unknown activation `{name}`")));
            };
            let param = f.params.first().cloned().unwrap_or_default();
            let body = f.body.clone();
            let a = lower::lower_scalar_with(&mut g, &body, Some(program), &mut |_, n| {
                (n == param).then_some(z)
            })?;
            let shape = g.node(z).shape.clone();
            g.splat(a, &shape)
        }
    };
    let d = diff::grad(&mut g, a, &[z]).grads[0];
    let s = simplify::simplify(&mut g, &[d]);
    Ok(Some(ActivationDerivative {
        derivative: s.get(d),
        graph: g,
        z,
    }))
}
