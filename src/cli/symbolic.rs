//! The handlers of `slope diff`, `slope grad` (equations) and `slope graph`.

use super::common::load_program;
use super::{Failure, PathArg};
use crate::diag::{self, SourceMap};
use crate::graph::print::Style;
use crate::pipeline::{self, Focus};
use crate::syntax;
use crate::{derivative, equations};
use clap::Args;
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

    let mut derived = derivative::differentiate(&expr, &args.wrt)
        .map_err(|d| Failure::Input(diag::render(&[d], &sources)))?;
    let style = if args.latex {
        Style::Latex
    } else {
        Style::Text
    };
    let derivative = derived.print(style);
    let steps = if args.steps {
        derived.steps(&args.wrt)
    } else {
        Vec::new()
    };
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
        outln!("{out}}}");
    } else {
        for s in &steps {
            outln!("{s}");
        }
        if args.steps {
            outln!("d/d{} = {derivative}", args.wrt);
        } else {
            outln!("{derivative}");
        }
    }
    Ok(ExitCode::SUCCESS)
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
    let net = pipeline::lower(&loaded.program, loaded.model())
        .map_err(|d| Failure::Input(loaded.render(&[d])))?;
    let eq = equations::derive(net, loaded.model());
    let style = if args.latex {
        Style::Latex
    } else {
        Style::Text
    };
    if args.json {
        outln!("{}", eq.json(style));
    } else {
        out!("{}", eq.render(style));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `slope graph FILE [--grad]`.
pub fn graph(args: GraphArgs) -> Result<ExitCode, Failure> {
    let loaded = load_program(&args.file, args.model.as_deref())?;
    let net = pipeline::lower(&loaded.program, loaded.model())
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
    out!("{}", crate::graph::dot::dot(&net.graph, &roots));
    Ok(ExitCode::SUCCESS)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A JSON string literal.
fn json(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}
