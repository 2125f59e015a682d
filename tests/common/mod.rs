//! Test helpers: a tiny s-expression reader that builds raw (unsimplified)
//! scalar graphs, so simplifier tests do not depend on the `.nn` parser.
//!
//! `(add x (mul -1 y))`: op names are [`Op::name`]; atoms are numbers or
//! scalar variables. Nodes are added as written, with no folding.

#![allow(dead_code)]

use slope::graph::{Graph, LeafKind, NodeId, Op, Shape};

/// Every op the reader knows, by name.
const OPS: &[Op] = &[
    Op::Neg,
    Op::Recip,
    Op::Exp,
    Op::Log,
    Op::Sqrt,
    Op::Abs,
    Op::Sin,
    Op::Cos,
    Op::Tanh,
    Op::Sigmoid,
    Op::Relu,
    Op::Softplus,
    Op::Add,
    Op::Mul,
    Op::Pow,
    Op::Max,
    Op::Min,
    Op::Lt,
    Op::Le,
    Op::Gt,
    Op::Ge,
    Op::Where,
];

/// Builds the graph of an s-expression into `g`.
pub fn sexp(g: &mut Graph, src: &str) -> NodeId {
    let tokens: Vec<String> = src
        .replace('(', " ( ")
        .replace(')', " ) ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut pos = 0;
    let id = read(g, &tokens, &mut pos);
    assert_eq!(pos, tokens.len(), "trailing tokens in {src}");
    id
}

fn read(g: &mut Graph, t: &[String], pos: &mut usize) -> NodeId {
    let tok = t[*pos].clone();
    *pos += 1;
    if tok == "(" {
        let name = t[*pos].clone();
        *pos += 1;
        let op = *OPS
            .iter()
            .find(|o| o.name() == name)
            .unwrap_or_else(|| panic!("unknown op {name}"));
        let mut args = Vec::new();
        while t[*pos] != ")" {
            args.push(read(g, t, pos));
        }
        *pos += 1;
        g.add(op, &args)
            .expect("scalar test graphs are well-shaped")
    } else if let Ok(v) = tok.parse::<f64>() {
        g.constant(v)
    } else {
        g.leaf(&tok, LeafKind::Scalar, Shape(vec![]))
    }
}

/// Weights for the example `name` (`examples/NAME.nn`), trained for two
/// epochs into `dir` by the `slope` binary: tests must not depend on weights
/// a previous run left in `examples/`.
pub fn trained_example_weights(name: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.join(format!("{name}.safetensors"));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_slope"))
        .arg("train")
        .arg(root.join("examples").join(format!("{name}.nn")))
        .args(["--epochs", "2", "--quiet", "--out"])
        .arg(&out)
        .output()
        .expect("slope runs");
    assert!(
        run.status.success(),
        "training {name}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}
