//! `slope diff`: the derivative of one formula, and the rule-by-rule
//! derivation `--steps` prints. The same engine as networks (lower → diff →
//! simplify on 0-d tensors), kept out of the CLI so it holds no pipeline
//! logic.

// Every stage reports a `Diagnostic` by value (the agreed interface).
#![allow(clippy::result_large_err)]

use crate::diag::Diagnostic;
use crate::graph::print::{Printer, Style};
use crate::graph::{Graph, LeafKind, NodeId, Op, Rule, Shape};
use crate::syntax::ast::{Expr, ExprKind};
use crate::{diff, lower, simplify};
use std::collections::{HashMap, HashSet};

/// A formula differentiated and simplified, with what `--steps` shows.
#[derive(Debug)]
pub struct Derivative {
    /// The graph holding the formula and its derivative.
    pub graph: Graph,
    /// The simplified derivative.
    pub root: NodeId,
    /// What the derivative rules did, node by node.
    pub gradients: diff::Gradients,
    /// What the simplifier did.
    pub simplified: simplify::Simplified,
}

/// Differentiates `expr` with respect to the variable `wrt` (which need not
/// appear). Every free variable becomes a scalar leaf, declared in order of
/// appearance; built-in activations are expanded from their formulas.
pub fn differentiate(expr: &Expr, wrt: &str) -> Result<Derivative, Diagnostic> {
    let mut graph = Graph::new();
    let mut names = Vec::new();
    free_vars(expr, &mut names, &mut HashSet::new());
    let mut leaves: HashMap<String, NodeId> = HashMap::new();
    for name in names.iter().map(String::as_str).chain([wrt]) {
        let id = graph.leaf(name, LeafKind::Scalar, Shape(vec![]));
        leaves.insert(name.to_string(), id);
    }
    let x = leaves[wrt];
    let mut lookup = |name: &str| leaves[name];
    let root = lower::lower_scalar(&mut graph, expr, None, &mut lookup)?;
    let gradients = diff::grad(&mut graph, root, &[x]);
    let simplified = simplify::simplify(&mut graph, &[gradients.grads[0]]);
    Ok(Derivative {
        root: simplified.roots[0],
        graph,
        gradients,
        simplified,
    })
}

impl Derivative {
    /// The simplified derivative as text or LaTeX.
    pub fn print(&self, style: Style) -> String {
        Printer::new(&self.graph, style).root(self.root)
    }

    /// The derivation, one numbered line per rule application and per
    /// named simplification.
    pub fn steps(&mut self, wrt: &str) -> Vec<String> {
        derivation(&mut self.graph, &self.gradients, &self.simplified, wrt)
    }
}

/// The variables of `e` in order of first appearance (without `e` and `pi`,
/// which are constants). `seen` makes each test constant time, so a formula
/// with many variables is not quadratic.
fn free_vars(e: &Expr, out: &mut Vec<String>, seen: &mut HashSet<String>) {
    match &e.kind {
        ExprKind::Number { .. } => {}
        ExprKind::Var(v) => {
            if v != "e" && v != "pi" && seen.insert(v.clone()) {
                out.push(v.clone());
            }
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|a| free_vars(a, out, seen)),
        ExprKind::Neg(a) | ExprKind::Paren(a) => free_vars(a, out, seen),
        ExprKind::Binary { lhs, rhs, .. } => {
            free_vars(lhs, out, seen);
            free_vars(rhs, out, seen);
        }
        // A loop over the chain: only real nesting recurses.
        ExprKind::Chain { first, rest } => {
            free_vars(first, out, seen);
            rest.iter().for_each(|(_, c)| free_vars(c, out, seen));
        }
    }
}

/// The local derivative ∂node/∂operand of `step` (its rule with a unit
/// adjoint), simplified; remembered in `wide` for wide nodes.
fn local_derivative(
    g: &mut Graph,
    step: &diff::Step,
    wide: &mut HashMap<(NodeId, NodeId), NodeId>,
) -> NodeId {
    let key = (step.node, step.operand);
    if let Some(&local) = wide.get(&key) {
        return local;
    }
    let width = g.node(step.node).args.len();
    let mut wanted = vec![false; width];
    wanted[step.slot] = true;
    let one = g.constant(1.0);
    let local = g
        .node(step.node)
        .op
        .derivative(g, step.node, one, &wanted)
        .first()
        .map(|c| c.value)
        .unwrap_or_else(|| g.constant(0.0));
    let local = simplify::simplify(g, &[local]).roots[0];
    if width > WIDE {
        wide.insert(key, local);
    }
    local
}

/// Nodes wider than this (long flat sums and products) share the local
/// derivative of equal operands in the derivation.
const WIDE: usize = 32;

/// One line per node the derivative rules visited, root first, in the
/// form `rule: d/dx N = Σ (local derivative)*d/dx(operand)` (the `d/dx`
/// of the variable itself is 1 and left out), then one line per named
/// simplification (`mul-one: x*1 → x`); canonical reorderings are hidden.
fn derivation(
    g: &mut Graph,
    grads: &diff::Gradients,
    simplified: &simplify::Simplified,
    wrt: &str,
) -> Vec<String> {
    let mut lines = Vec::new();
    // The steps of each node, nodes in the order of their first step (maps,
    // not scans: a long flat sum has one step per term).
    let mut nodes: Vec<NodeId> = Vec::new();
    let mut by_node: HashMap<NodeId, Vec<&diff::Step>> = HashMap::new();
    for step in &grads.steps {
        let steps = by_node.entry(step.node).or_default();
        if steps.is_empty() {
            nodes.push(step.node);
        }
        steps.push(step);
    }
    // Local derivatives of wide nodes by operand: equal operands of a long
    // sum or product have one, and each costs the node's width to build.
    let mut wide: HashMap<(NodeId, NodeId), NodeId> = HashMap::new();
    for &node in &nodes {
        let steps = &by_node[&node];
        let mut rules: Vec<&str> = Vec::new();
        let mut terms = Vec::new();
        for step in steps {
            let local = local_derivative(g, step, &mut wide);
            let leaf = matches!(g.node(step.operand).op, Op::Leaf(_));
            let chain = !leaf
                && !matches!(
                    step.rule,
                    Rule::Sum | Rule::Product | Rule::ConstantMultiple
                );
            if !rules.contains(&step.rule.name()) {
                rules.push(step.rule.name());
            }
            if chain && !rules.contains(&"chain rule") {
                rules.push("chain rule");
            }
            let p = Printer::new(g, Style::Text).with_names(false);
            let inner = if leaf {
                None
            } else {
                Some(format!("d/d{wrt}({})", p.root(step.operand)))
            };
            let factor = p.root(local);
            terms.push(match (factor.as_str(), inner) {
                (f, None) => f.to_string(),
                ("1", Some(i)) => i,
                ("-1", Some(i)) => format!("-{i}"),
                (_, Some(i)) => {
                    let f = if is_product_safe(&factor) {
                        factor
                    } else {
                        format!("({factor})")
                    };
                    format!("{f}*{i}")
                }
            });
        }
        let p = Printer::new(g, Style::Text).with_names(false);
        let mut rhs = String::new();
        for (i, t) in terms.iter().enumerate() {
            match (i, t.strip_prefix('-')) {
                (0, _) => rhs += t,
                (_, Some(rest)) => rhs += &format!(" - {rest}"),
                (_, None) => rhs += &format!(" + {t}"),
            }
        }
        let f = p.root(node);
        let f = if is_product_safe(&f) {
            f
        } else {
            format!("({f})")
        };
        lines.push(format!(
            "{:>2}. {}: d/d{wrt} {f} = {rhs}",
            lines.len() + 1,
            rules.join(" + "),
        ));
    }
    let p = Printer::new(g, Style::Text).with_names(false);
    let shown = simplified
        .applied
        .iter()
        .filter(|a| !simplify::rules::CANONICAL.contains(&a.rule));
    for a in shown {
        lines.push(format!(
            "{:>2}. {}: {} → {}",
            lines.len() + 1,
            a.rule,
            p.root(a.before),
            p.root(a.after)
        ));
    }
    lines
}

/// True when printed text `s` can be a factor of a product as it is: no
/// top-level `+`, `-` (after the first character) or comparison.
fn is_product_safe(s: &str) -> bool {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '+' | '<' | '>' if depth == 0 => return false,
            '-' if depth == 0 && i > 0 => return false,
            _ => {}
        }
    }
    true
}
