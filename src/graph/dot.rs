//! Graphviz DOT output of a graph, in a deterministic order.
//!
//! Nodes are numbered in topological order (operands before users, operand
//! slots left to right), never by petgraph index or hash order, so the same
//! graph always prints the same text.

use super::print::number_text;
use super::{Dim, Graph, LeafKind, NodeId, Op, Shape};
use std::collections::HashMap;
use std::fmt::Write;

/// The sub-graph that `roots` depend on as DOT. Each root is given with a
/// title (`loss`, `∂ℓ/∂dense1.weight`) drawn on a double border.
pub fn dot(g: &Graph, roots: &[(String, NodeId)]) -> String {
    let ids: Vec<NodeId> = roots.iter().map(|r| r.1).collect();
    let order = g.topo_order(&ids);
    let number: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    // Titles by node, in the roots' order: `graph --grad` has a root per
    // parameter, and a scan of them per node was quadratic in depth.
    let mut titles_of: HashMap<NodeId, Vec<&str>> = HashMap::new();
    for (title, id) in roots {
        titles_of.entry(*id).or_default().push(title.as_str());
    }
    let mut out = String::from("digraph slope {\n");
    out += "  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n";
    for &id in &order {
        let n = g.node(id);
        let mut label = match n.op {
            Op::Const(c) => format_const(c.value()),
            Op::Leaf(l) => {
                let leaf = g.leaf_info(l);
                format!("{} ({})", leaf.name, kind_name(leaf.kind))
            }
            Op::Sum(axes) | Op::Broadcast(axes) => {
                format!("{} axes={}", n.op.name(), axes_text(axes.0))
            }
            Op::OneHot(k) => format!("onehot k={k}"),
            op => op.name().to_string(),
        };
        if let Some(name) = g.names.get(&id) {
            label = format!("{name} = {label}");
        }
        label = format!("{label}\\n{}", shape_text(&n.shape));
        let mut attrs = String::new();
        if let Some(titles) = titles_of.get(&id) {
            label = format!("{}\\n{label}", titles.join(", "));
            attrs = ", peripheries=2".to_string();
        }
        if matches!(n.op, Op::Leaf(_) | Op::Const(_) | Op::BatchSize) {
            attrs += ", style=rounded";
        }
        let _ = writeln!(
            out,
            "  n{} [label=\"{}\"{attrs}];",
            number[&id],
            escape(&label)
        );
    }
    for &id in &order {
        let n = g.node(id);
        // Operand slots matter only where operands are not interchangeable.
        let ordered = !matches!(n.op, Op::Add | Op::Mul) && n.args.len() > 1;
        for (slot, a) in n.args.iter().enumerate() {
            let label = if ordered {
                format!(" [label=\"{slot}\"]")
            } else {
                String::new()
            };
            let _ = writeln!(out, "  n{} -> n{}{label};", number[a], number[&id]);
        }
    }
    out += "}\n";
    out
}

fn format_const(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let s = number_text(v.abs());
    if v < 0.0 { format!("-{s}") } else { s }
}

/// `[B, 4]`, `[]` for a scalar.
pub fn shape_text(s: &Shape) -> String {
    let dims: Vec<String> =
        s.0.iter()
            .map(|d| match d {
                Dim::Batch => "B".to_string(),
                Dim::Fixed(n) => n.to_string(),
            })
            .collect();
    format!("[{}]", dims.join(", "))
}

fn axes_text(bits: u8) -> String {
    let v: Vec<String> = (0..8)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| i.to_string())
        .collect();
    v.join(",")
}

fn kind_name(k: LeafKind) -> &'static str {
    match k {
        LeafKind::Input => "input",
        LeafKind::Target => "target",
        LeafKind::Param => "param",
        LeafKind::State => "state",
        LeafKind::Scalar => "scalar",
        LeafKind::Grad => "gradient",
    }
}

fn escape(s: &str) -> String {
    s.replace('"', "\\\"")
}
