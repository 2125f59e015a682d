//! The handlers of `slope diff`, `slope grad` (equations) and `slope graph`.

use super::common::load_program;
use super::{Failure, PathArg};
use crate::diag::{self, SourceMap};
use crate::equations;
use crate::graph::print::{Printer, Style};
use crate::graph::{Graph, LeafKind, NodeId, Shape};
use crate::pipeline::{self, Focus};
use crate::syntax::ast::{Expr, ExprKind};
use crate::{diff, lower, simplify, syntax};
use clap::Args;
use std::collections::HashMap;
use std::process::ExitCode;

/// Arguments of `slope diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The expression; may start with `-` (`slope diff -x^2`).
    #[arg(allow_hyphen_values = true)]
    pub expr: String,
    /// The variable to differentiate by.
    #[arg(long, default_value = "x")]
    pub wrt: String,
    /// Show the derivation, one rule per line.
    #[arg(long)]
    pub steps: bool,
    /// Print LaTeX.
    #[arg(long)]
    pub latex: bool,
    /// Print `{"expr": ..., "wrt": ..., "derivative": ...}`.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `slope grad`.
#[derive(Args, Debug)]
pub struct GradArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Print LaTeX.
    #[arg(long)]
    pub latex: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Weights (safetensors): compute a numeric gradient instead of equations.
    #[arg(long)]
    pub weights: Option<PathArg>,
    /// The data set (CSV) for the numeric gradient.
    #[arg(long, requires = "weights")]
    pub data: Option<PathArg>,
    /// Where to write the numeric gradient (safetensors).
    #[arg(long, requires = "weights")]
    pub out: Option<PathArg>,
    /// Worked numbers: the equations, each with its value on row N (from 1)
    /// of --data at --weights.
    #[arg(long, value_name = "N", requires_all = ["weights", "data"], conflicts_with = "out")]
    pub sample: Option<u64>,
}

/// Arguments of `slope graph`.
#[derive(Args, Debug)]
pub struct GraphArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Include the gradient graph.
    #[arg(long)]
    pub grad: bool,
}

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
        steps = derivation(&mut g, &grads, &simplified, &args.wrt);
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
    use crate::graph::{Op, Rule};
    let mut lines = Vec::new();
    let mut nodes: Vec<NodeId> = Vec::new();
    for step in &grads.steps {
        if !nodes.contains(&step.node) {
            nodes.push(step.node);
        }
    }
    for &node in &nodes {
        let steps: Vec<&diff::Step> = grads.steps.iter().filter(|s| s.node == node).collect();
        let op = g.node(node).op;
        let one = g.constant(1.0);
        let mut rules: Vec<&str> = Vec::new();
        let mut terms = Vec::new();
        for step in &steps {
            let mut wanted = vec![false; g.node(node).args.len()];
            wanted[step.slot] = true;
            // The local derivative ∂node/∂operand: the rule with a unit adjoint.
            let local = op
                .derivative(g, node, one, &wanted)
                .first()
                .map(|c| c.value)
                .unwrap_or_else(|| g.constant(0.0));
            let local = simplify::simplify(g, &[local]).roots[0];
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

/// Runs `slope grad FILE` in equations mode (the numeric mode is `run::grad_numeric`).
pub fn grad(args: GradArgs) -> Result<ExitCode, Failure> {
    if args.weights.is_some() && args.latex {
        return Err(Failure::Usage(
            "error: --latex does not go with --weights: worked numbers (--sample N) print as text \
             or --json, and --out writes a file\n"
                .into(),
        ));
    }
    if let (Some(row), Some(weights), Some(data)) = (args.sample, &args.weights, &args.data) {
        let paths = (weights.as_path(), data.as_path());
        return super::run::grad_sample(&args.file, args.model.as_deref(), paths, row, args.json);
    }
    if let Some(weights) = &args.weights {
        if args.json {
            return Err(Failure::Usage(
                "error: `slope grad --weights --out` writes a file; --json goes with --sample N\n"
                    .into(),
            ));
        }
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
    let net = lower::lower_model(&loaded.program, loaded.model())
        .map_err(|d| Failure::Input(loaded.render(&[d])))?;
    let mut roots = vec![("loss".to_string(), net.loss), ("y".to_string(), net.y)];
    let net = if args.grad {
        let net = pipeline::derive(net, Focus::Graph).network;
        roots = vec![("loss".to_string(), net.loss), ("y".to_string(), net.y)];
        for (p, &gid) in net.params.iter().zip(&net.grads) {
            roots.push((format!("∂loss/∂{}", p.name), gid));
        }
        net
    } else {
        net
    };
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
