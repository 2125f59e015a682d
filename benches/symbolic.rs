//! Symbolic-engine benchmarks (criterion):
//!
//! * `activation/NAME`: parse + lower + differentiate + simplify + print the
//!   derivative of each built-in activation (target < 1 ms each);
//! * `network/10 layers`: lower + differentiate + simplify the full gradient
//!   graph of a 10-layer tanh network (target < 10 ms);
//! * before the timings, a table of gradient-graph node counts for 1..50
//!   layers, which must grow linearly (the per-layer increment is printed).
//!
//! Run: `cargo bench --bench symbolic` (add `-- --quick` for fewer samples).

use criterion::{Criterion, criterion_group, criterion_main};
use slope::graph::print::text;
use slope::graph::{Graph, LeafKind, Shape};
use slope::{check, diff, lower, simplify, syntax};
use std::hint::black_box;

const ACTIVATIONS: &[&str] = &[
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "swish",
    "gelu",
];

/// The printed derivative of `f(x)`, from source text to text.
fn derivative(src: &str) -> String {
    let expr = syntax::parse_expr(src).expect("the benchmark expressions parse");
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
    let mut var = |_: &str| x;
    let f = lower::lower_scalar(&mut g, &expr, None, &mut var).expect("they lower");
    let d = diff::grad(&mut g, f, &[x]).grads[0];
    let d = simplify::simplify(&mut g, &[d]).roots[0];
    text(&g, d)
}

/// A `.nn` model with `layers` dense tanh layers of width 16 and an mse loss.
fn network_source(layers: usize) -> String {
    let mut s = String::from("model m {\n    input 8\n");
    for _ in 0..layers {
        s += "    dense 16 tanh\n";
    }
    s += "    loss mse\n}\n";
    s
}

/// Lowers, differentiates and simplifies the network; returns the number of
/// nodes the simplified gradients (and loss) depend on.
fn gradient_graph(src: &str) -> usize {
    let (file, errs) = syntax::parse(src);
    assert!(errs.is_empty(), "{errs:?}");
    let (program, errs) = check::check(&file);
    assert!(errs.is_empty(), "{errs:?}");
    let (net, _) = slope::pipeline::compile(&program, &program.models[0]).expect("compiles");
    let mut roots = vec![net.loss];
    roots.extend(&net.grads);
    net.graph.topo_order(&roots).len()
}

fn node_count_table() {
    println!("gradient-graph nodes (loss + all parameter gradients, simplified):");
    println!("| layers | nodes | per layer |");
    let mut prev: Option<(usize, usize)> = None;
    for layers in [1, 2, 5, 10, 20, 50] {
        let n = gradient_graph(&network_source(layers));
        let inc = prev.map_or(String::new(), |(l, p)| {
            format!("{:.1}", (n - p) as f64 / (layers - l) as f64)
        });
        println!("| {layers:6} | {n:5} | {inc:>9} |");
        prev = Some((layers, n));
    }
}

fn benches(c: &mut Criterion) {
    node_count_table();
    let mut group = c.benchmark_group("activation");
    for name in ACTIVATIONS {
        let src = format!("{name}(x)");
        group.bench_function(*name, |b| b.iter(|| derivative(black_box(&src))));
    }
    group.finish();
    let src = network_source(10);
    c.bench_function("network/10 layers", |b| {
        b.iter(|| gradient_graph(black_box(&src)))
    });
}

criterion_group!(symbolic, benches);
criterion_main!(symbolic);
