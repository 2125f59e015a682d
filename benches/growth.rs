//! Growth: each command's core library call at a size n and at 2n, so that
//! any pass growing faster than n log n shows as a ratio well above 2
//! (`cargo bench --bench growth`; compare `…/n` with `…/2n`).
//!
//! Inputs: a model of n `dense 2 tanh` layers (check, fmt, grad, graph,
//! compile, JIT, train step, predict, grad --weights, gradcheck, export),
//! a flat sum and a flat product of n terms (diff, and
//! inside an activation), a CSV of n rows and 64 columns (data).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use slope::graph::print::Style;
use slope::{check, data, derivative, diag, equations, graph, pipeline, syntax, train};
use std::hint::black_box;

/// A model of `n` hidden `dense 2 tanh` layers, with a train block.
fn layers(n: usize) -> String {
    let mut s = String::from("model m {\n    input 2\n");
    s.push_str(&"    dense 2 tanh\n".repeat(n));
    s.push_str("    dense 1 sigmoid\n    loss bce\n}\n");
    s.push_str("train {\n    data \"d.csv\" target=y\n    optimizer sgd lr=0.1\n    batch 4\n}\n");
    s
}

/// `x OP x OP ... OP x` with `n` terms.
fn chain(n: usize, op: &str) -> String {
    vec!["x"; n].join(op)
}

/// A model whose activation is a flat sum of `n` terms.
fn sum_activation(n: usize) -> String {
    format!(
        "activation s(x) = {}\nmodel m {{\n    input 2\n    dense 2 s\n    dense 1 sigmoid\n    loss bce\n}}\n",
        chain(n, " + ")
    )
}

fn checked(src: &str) -> check::model::Program {
    let (file, diags) = syntax::parse(src);
    assert!(diags.is_empty(), "{diags:?}");
    let (program, diags) = check::check(&file);
    assert!(diags.is_empty(), "{diags:?}");
    program
}

/// Runs `f` on the input for n and for 2n, named `name/n` and `name/2n`.
fn pair<I>(c: &mut Criterion, name: &str, n: usize, make: impl Fn(usize) -> I, f: impl Fn(&I)) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    for (label, size) in [("n", n), ("2n", 2 * n)] {
        let input = make(size);
        group.bench_with_input(BenchmarkId::new(label, size), &input, |b, i| {
            b.iter(|| f(i))
        });
    }
    group.finish();
}

fn growth(c: &mut Criterion) {
    pair(c, "check", 100_000, layers, |s| {
        let (file, _) = syntax::parse(black_box(s));
        black_box(check::check(&file));
    });
    pair(
        c,
        "fmt",
        100_000,
        |n| {
            let s = layers(n);
            (syntax::parse(&s).0, s)
        },
        |(file, s)| {
            black_box(syntax::fmt::format(file, s));
        },
    );
    pair(
        c,
        "diff sum",
        10_000,
        |n| chain(n, " + "),
        |s| {
            let e = syntax::parse_expr(s).expect("parses");
            let d = derivative::differentiate(&e, "x").expect("differentiates");
            black_box(d.print(Style::Text));
        },
    );
    pair(
        c,
        "diff product",
        500,
        |n| chain(n, "*"),
        |s| {
            let e = syntax::parse_expr(s).expect("parses");
            let d = derivative::differentiate(&e, "x").expect("differentiates");
            black_box(d.print(Style::Text));
        },
    );
    pair(c, "check sum activation", 30_000, sum_activation, |s| {
        black_box(checked(s));
    });
    pair(
        c,
        "compile",
        400,
        |n| checked(&layers(n)),
        |p| {
            black_box(pipeline::compile(p, &p.models[0]).expect("compiles"));
        },
    );
    pair(
        c,
        "grad",
        400,
        |n| checked(&layers(n)),
        |p| {
            let net = slope::lower::lower_model(p, &p.models[0]).expect("lowers");
            let eq = equations::derive(net, &p.models[0]);
            black_box(eq.render(Style::Text));
        },
    );
    pair(
        c,
        "graph",
        400,
        |n| {
            let p = checked(&layers(n));
            pipeline::compile(&p, &p.models[0]).expect("compiles").0
        },
        |net| {
            black_box(graph::dot::dot(&net.graph, &[("loss".into(), net.loss)]));
        },
    );
    pair(
        c,
        "jit loss+grad",
        100,
        |n| {
            let p = checked(&layers(n));
            pipeline::compile(&p, &p.models[0]).expect("compiles").0
        },
        |net| {
            let mut jit = slope::codegen::Jit::new(1).expect("a JIT");
            let x = vec![0.5f32; 8];
            let t = vec![1.0f32; 4];
            black_box(
                train::tasks::LossGrad::<f32>::new(&mut jit, net, (true, true), 4, x, t).is_ok(),
            );
        },
    );
    // The rest of the commands: the JIT'd training step (`train`, `bench`),
    // the forward pass (`predict`), the f64 gradient (`grad --weights`),
    // `gradcheck` (past its element budget), `export` both ways, and
    // `graph --grad`.
    let setup = |n: usize| {
        let p = checked(&layers(n));
        let net = pipeline::compile(&p, &p.models[0]).expect("compiles").0;
        let w = train::weights::init(&p.models[0], 1);
        (p, net, w)
    };
    pair(c, "train step", 400, setup, |(p, net, _)| {
        let mut jit = slope::codegen::Jit::new(1).expect("a JIT");
        let opt = &p.train.as_ref().expect("a train block").optimizer;
        let data = (vec![0.5f32; 8], vec![1.0f32; 4]);
        let how = (4, 1);
        let step = train::tasks::TrainStep::new(&mut jit, (net, &p.models[0]), opt, how, data);
        black_box(step.is_ok());
    });
    pair(c, "predict", 400, setup, |(p, net, w)| {
        let x = vec![0.5f32; 8];
        black_box(train::tasks::predict(net, &p.models[0], w, &x, 4).is_ok());
    });
    pair(c, "grad --weights", 400, setup, |(_, net, w)| {
        let (x, t) = (vec![0.5f32; 8], vec![1.0f32; 4]);
        black_box(train::tasks::gradient(net, w, x, t, 4).is_ok());
    });
    pair(c, "gradcheck", 800, setup, |(_, net, w)| {
        let (x, t) = (vec![0.5f64; 8], vec![1.0f64; 4]);
        black_box(train::tasks::gradcheck(net, w, x, t, 4).is_ok());
    });
    pair(c, "export --gradient", 1000, setup, |(p, _, w)| {
        let params: Vec<slope::export::ParamValue> = (w.tensors.iter())
            .map(|t| slope::export::ParamValue {
                name: &t.name,
                shape: &t.shape,
                data: &t.data,
            })
            .collect();
        black_box(slope::export::gradient(p, &p.models[0], &params).is_ok());
        black_box(slope::export::forward(p, &p.models[0], &params).is_ok());
    });
    pair(c, "graph --grad", 1000, setup, |(_, net, _)| {
        let mut roots = vec![("loss".to_string(), net.loss)];
        for (q, &g) in net.params.iter().zip(&net.grads) {
            roots.push((q.name.clone(), g));
        }
        black_box(graph::dot::dot(&net.graph, &roots));
    });
    pair(
        c,
        "data",
        20_000,
        |n| {
            let p = checked(&layers(1).replace("input 2", "input 64"));
            let mut csv: String = (0..64).map(|i| format!("a{i},")).collect();
            csv.push_str("y\n");
            for r in 0..n {
                for i in 0..64 {
                    csv.push_str(&format!("{},", (r * 7 + i) % 10));
                }
                csv.push_str(&format!("{}\n", r % 2));
            }
            (p, csv)
        },
        |(p, csv)| {
            let spec = p
                .train
                .as_ref()
                .and_then(|t| t.data.as_ref())
                .expect("a data statement");
            black_box(data::load(csv, diag::FileId(1), spec, &p.models[0]).is_ok());
        },
    );
}

criterion_group!(benches, growth);
criterion_main!(benches);
