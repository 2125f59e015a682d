//! The handlers of `slope diff`, `slope grad` (equations) and `slope graph`.

use super::Failure;
use super::common::load_program;
use super::equations;
use super::symbolic::{DiffArgs, GradArgs, GraphArgs};
use crate::diag::{self, SourceMap};
use crate::graph::print::{Printer, Style};
use crate::graph::{Graph, LeafKind, NodeId, Shape};
use crate::syntax::ast::{Expr, ExprKind};
use crate::{diff, lower, simplify, syntax};
use std::collections::HashMap;
use std::process::ExitCode;

/// The pseudo-file name diagnostics about an `EXPR` argument point into.
const EXPR_FILE: &str = "<expr>";

/// Runs `slope diff EXPR [--wrt x] [--steps] [--latex] [--json]`.
pub fn diff(args: DiffArgs) -> Result<ExitCode, Failure> {
    let mut sources = SourceMap::new();
    sources.add(EXPR_FILE, args.expr.clone());
    let expr =
        syntax::parse_expr(&args.expr).map_err(|d| Failure::Input(diag::render(&d, &sources)))?;
    if let Some(d) = crate::check::check_expression(&expr) {
        return Err(Failure::Input(diag::render(&[d], &sources)));
    }
    if !is_identifier(&args.wrt) || args.wrt == "e" || args.wrt == "pi" {
        return Err(Failure::Usage(format!(
            "error: --wrt needs a variable name, got '{}'\n",
            args.wrt
        )));
    }

    // Every free variable becomes a scalar leaf, declared before lowering
    // in order of appearance; the variable differentiated by always exists.
    let mut g = Graph::new();
    let mut names = Vec::new();
    free_vars(&expr, &mut names);
    let mut leaves: HashMap<String, NodeId> = HashMap::new();
    for name in names.iter().chain(std::iter::once(&args.wrt)) {
        let id = g.leaf(name, LeafKind::Scalar, Shape(vec![]));
        leaves.insert(name.clone(), id);
    }
    let x = leaves[&args.wrt];
    let mut lookup = |name: &str| leaves[name];
    let root = lower::lower_scalar(&mut g, &expr, None, &mut lookup)
        .map_err(|d| Failure::Input(diag::render(&[d], &sources)))?;

    let grads = diff::grad(&mut g, root, &[x]);
    let simplified = simplify::simplify(&mut g, &[grads.grads[0]]);
    let d = simplified.roots[0];
    let style = if args.latex {
        Style::Latex
    } else {
        Style::Text
    };
    let derivative = Printer::new(&g, style).root(d);

    let mut steps = Vec::new();
    if args.steps {
        steps = derivation(&mut g, &grads, &simplified);
    }
    if args.json {
        let mut out = format!(
            "{{\"expr\": {}, \"wrt\": {}, \"derivative\": {}",
            json(&args.expr),
            json(&args.wrt),
            json(&derivative)
        );
        if args.steps {
            let items: Vec<String> = steps.iter().map(|s| json(s)).collect();
            out += &format!(", \"steps\": [{}]", items.join(", "));
        }
        println!("{out}}}");
    } else {
        for s in &steps {
            println!("{s}");
        }
        if args.steps {
            println!("d/d{} = {derivative}", args.wrt);
        } else {
            println!("{derivative}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per derivative-rule application, then one per simplification.
fn derivation(
    g: &mut Graph,
    grads: &diff::Gradients,
    simplified: &simplify::Simplified,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, step) in grads.steps.iter().enumerate() {
        let chain = if matches!(g.node(step.operand).op, crate::graph::Op::Leaf(_)) {
            ""
        } else {
            " + chain rule"
        };
        // Each contribution is shown in simplified form: the raw one carries `1*`s.
        let produced = simplify::simplify(g, &[step.produced]).roots[0];
        let p = Printer::new(g, Style::Text).with_names(false);
        lines.push(format!(
            "{:>2}. {}{chain}: d({}) → {}: {}",
            i + 1,
            step.rule.name(),
            p.root(step.node),
            p.root(step.operand),
            p.root(produced)
        ));
    }
    let p = Printer::new(g, Style::Text).with_names(false);
    let shown = simplified
        .applied
        .iter()
        .filter(|a| !simplify::rules::CANONICAL.contains(&a.rule));
    for (i, a) in shown.enumerate() {
        lines.push(format!(
            "{:>2}. {}: {} ⇒ {}",
            i + 1,
            a.rule,
            p.root(a.before),
            p.root(a.after)
        ));
    }
    lines
}

/// Runs `slope grad FILE` in equations mode (the numeric mode is `run::grad_numeric`).
pub fn grad(args: GradArgs) -> Result<ExitCode, Failure> {
    if let Some(weights) = &args.weights {
        return super::run::grad_numeric(
            &args.file,
            args.model.as_deref(),
            weights,
            args.data.as_deref(),
            args.out.as_deref(),
        );
    }
    let loaded = load_program(&args.file, args.model.as_deref())?;
    let net = lower::lower_model(&loaded.program, loaded.model())
        .map_err(|d| Failure::Input(loaded.render(&[d])))?;
    let eq = equations::derive(net, loaded.model());
    let style = if args.latex {
        Style::Latex
    } else {
        Style::Text
    };
    if args.json {
        println!("{}", eq.json(style));
    } else {
        print!("{}", eq.render(style));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `slope graph FILE [--grad]`.
pub fn graph(args: GraphArgs) -> Result<ExitCode, Failure> {
    let loaded = load_program(&args.file, args.model.as_deref())?;
    let mut net = lower::lower_model(&loaded.program, loaded.model())
        .map_err(|d| Failure::Input(loaded.render(&[d])))?;
    let mut roots = vec![("loss".to_string(), net.loss), ("y".to_string(), net.y)];
    if args.grad {
        let wrt: Vec<NodeId> = net.params.iter().map(|p| p.node).collect();
        let grads = diff::grad(&mut net.graph, net.loss, &wrt);
        let mut ids: Vec<NodeId> = roots.iter().map(|r| r.1).collect();
        ids.extend(&grads.grads);
        let s = simplify::simplify(&mut net.graph, &ids);
        roots = vec![
            ("loss".to_string(), s.roots[0]),
            ("y".to_string(), s.roots[1]),
        ];
        for (p, &gid) in net.params.iter().zip(&s.roots[2..]) {
            roots.push((format!("∂loss/∂{}", p.name), gid));
        }
    }
    print!("{}", crate::graph::dot::dot(&net.graph, &roots));
    Ok(ExitCode::SUCCESS)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variables of `e` in order of first appearance (without `e` and `pi`,
/// which are constants).
fn free_vars(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Number { .. } => {}
        ExprKind::Var(v) => {
            if v != "e" && v != "pi" && !out.contains(v) {
                out.push(v.clone());
            }
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|a| free_vars(a, out)),
        ExprKind::Neg(a) | ExprKind::Paren(a) => free_vars(a, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            free_vars(lhs, out);
            free_vars(rhs, out);
        }
    }
}

/// A JSON string literal.
fn json(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}
