//! Whole networks: `.nn` source → lower → diff (→ simplify) → JIT, against
//! the interpreter, and JIT gradients against finite differences in f64.

use super::{Rng, check, leaves};
use slope::codegen::{Jit, Signature};
use slope::graph::eval::{Env, Tensor};
use slope::graph::{Graph, NodeId};
use slope::lower::{Network, lower_model};

/// Parses, checks and lowers the only model of `src`.
fn network(src: &str) -> Network {
    let (file, d) = slope::syntax::parse(src);
    assert!(d.is_empty(), "parse: {d:?}");
    let (program, d) = slope::check::check(&file);
    assert!(d.is_empty(), "check: {d:?}");
    lower_model(&program, &program.models[0]).expect("lowers")
}

/// The network's graph with gradients: (graph, outputs = [y, loss, grads...]),
/// simplified through the compile pipeline, or (to check the simplifier)
/// the raw derivative.
fn with_grads(net: &Network, simplify: bool) -> (Graph, Vec<NodeId>) {
    if simplify {
        let d = slope::pipeline::derive(net.clone(), slope::pipeline::Focus::Training).network;
        let mut roots = vec![d.y, d.loss];
        roots.extend(d.correct);
        roots.extend(&d.grads);
        return (d.graph, roots);
    }
    let mut g = net.graph.clone();
    let params: Vec<NodeId> = net.params.iter().map(|p| p.node).collect();
    let grads = slope::diff::grad(&mut g, net.loss, &params);
    let mut roots = vec![net.y, net.loss];
    roots.extend(net.correct);
    roots.extend(&grads.grads);
    (g, roots)
}

/// Random inputs, with targets that fit the loss.
fn data(net: &Network, batch: usize, rng: &mut Rng, classes: Option<usize>, binary: bool) -> Env {
    let mut env = leaves(&net.graph, batch, rng, -1.5, 1.5);
    let t = &net
        .graph
        .leaves
        .iter()
        .find(|l| l.name == "t")
        .expect("a target leaf")
        .name;
    let tv = env[t].clone();
    let data = tv
        .data
        .iter()
        .map(|_| match (classes, binary) {
            (Some(k), _) => (rng.next() * k as f64).floor(),
            (None, true) => (rng.next() < 0.5) as u8 as f64,
            (None, false) => rng.range(-1.0, 1.0),
        })
        .collect();
    env.insert(t.clone(), Tensor::new(tv.shape, data).expect("same shape"));
    env
}

const MODELS: &[(&str, &str, Option<usize>, bool)] = &[
    (
        "tanh-sigmoid-bce",
        "model m { input 3; dense 5 tanh; dense 2 sigmoid; loss bce }",
        None,
        true,
    ),
    (
        "softmax-ce",
        "model m { input 6; dense 9 tanh; dense 4 softmax; loss cross_entropy }",
        Some(4),
        false,
    ),
    (
        "relu-mse",
        "model m { input 5; dense 7 relu; dense 3; loss mse }",
        None,
        false,
    ),
    (
        "custom",
        "activation isru(x) = x / sqrt(1 + x^2)\nactivation smooth(x) = softplus(2*x) / 2\n\
         loss huber(y, t) = where(abs(y - t) < 1, 0.5*(y - t)^2, abs(y - t) - 0.5)\n\
         model m { input 3; dense 8 isru; dense 4 smooth; dense 2 swish; dense 1 gelu; loss huber }",
        None,
        false,
    ),
    (
        "softsign-mish",
        "model m { input 4; dense 6 softsign; dense 5 mish; dense 3 softsign; dense 2 mish; loss mse }",
        None,
        false,
    ),
    (
        "more-activations",
        "model m { input 4; dense 6 elu; dense 5 leaky_relu; dense 4 softplus; dense 3 sigmoid; loss mse }",
        None,
        false,
    ),
];

#[test]
fn networks_match_the_interpreter() {
    let mut rng = Rng(99);
    for &(name, src, classes, binary) in MODELS {
        let net = network(src);
        for simplify in [false, true] {
            let (g, roots) = with_grads(&net, simplify);
            for batch in [1, 5, 32] {
                let env = data(&net, batch, &mut rng, classes, binary);
                check(
                    &format!("{name} simplify={simplify} B={batch}"),
                    &g,
                    &roots,
                    &env,
                    batch,
                );
            }
        }
    }
}

/// The f64 loss at `env` through the JIT.
fn jit_loss(f: &mut slope::codegen::Compiled<f64>, order: &[String], env: &Env) -> f64 {
    let ins: Vec<&[f64]> = order.iter().map(|n| env[n].data.as_slice()).collect();
    let mut out = vec![0.0];
    f.call(&ins, &mut [], &mut [&mut out]).expect("fits");
    out[0]
}

/// JIT f64 gradients against central differences of the JIT f64 loss.
fn gradcheck(name: &str, net: &Network, env: &Env, batch: usize) {
    let (g, roots) = with_grads(net, true);
    let leaf_nodes: Vec<NodeId> = (0..g.leaves.len())
        .filter_map(|i| {
            let want = slope::graph::Op::Leaf(slope::graph::LeafId(i as u32));
            g.dag.node_indices().find(|&n| g.node(n).op == want)
        })
        .collect();
    let order: Vec<String> = g.leaves.iter().map(|l| l.name.clone()).collect();
    let mut jit = Jit::new(1).expect("jit");
    let grads = &roots[roots.len() - net.params.len()..];
    let sig = Signature {
        inputs: leaf_nodes.clone(),
        outputs: grads.to_vec(),
        updates: vec![],
    };
    let mut fg = jit.compile::<f64>(&g, &sig, batch).expect("compiles");
    let sig = Signature {
        inputs: leaf_nodes,
        outputs: vec![roots[1]],
        updates: vec![],
    };
    let mut fl = jit.compile::<f64>(&g, &sig, batch).expect("compiles");
    let ins: Vec<&[f64]> = order.iter().map(|n| env[n].data.as_slice()).collect();
    let mut outs: Vec<Vec<f64>> = fg.output_lens().iter().map(|&n| vec![0.0; n]).collect();
    let mut refs: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    fg.call(&ins, &mut [], &mut refs).expect("fits");
    let loss = jit_loss(&mut fl, &order, env);
    assert!(loss.is_finite(), "{name}: loss {loss}");
    for (p, got) in net.params.iter().zip(&outs) {
        for (i, &analytic) in got.iter().enumerate() {
            let h = 1e-6;
            let mut e = env.clone();
            let v = e.get_mut(&p.name).expect("param value");
            v.data[i] += h;
            let up = jit_loss(&mut fl, &order, &e);
            let v = e.get_mut(&p.name).expect("param value");
            v.data[i] -= 2.0 * h;
            let down = jit_loss(&mut fl, &order, &e);
            let fd = (up - down) / (2.0 * h);
            let err = (fd - analytic).abs() / (1e-6 + fd.abs().max(analytic.abs()));
            assert!(
                analytic.is_finite() && err < 1e-5,
                "{name}: {}[{i}]: JIT {} vs finite difference {fd}",
                p.name,
                analytic
            );
        }
    }
}

#[test]
fn jit_gradients_match_finite_differences() {
    let mut rng = Rng(1234);
    for &(name, src, classes, binary) in MODELS {
        let net = network(src);
        let env = data(&net, 4, &mut rng, classes, binary);
        gradcheck(name, &net, &env, 4);
    }
}

#[test]
fn saturated_sigmoid_bce_stays_finite() {
    // Logits ±100: a naive log(y) would give log(0) = -inf.
    let net = network("model m { input 1; dense 1 sigmoid; loss bce }");
    let mut env = Env::new();
    env.insert(
        "x".into(),
        Tensor::new(vec![4, 1], vec![1.0, -1.0, 1.0, -1.0]).expect("4 rows"),
    );
    env.insert(
        "t".into(),
        Tensor::new(vec![4, 1], vec![0.0, 1.0, 1.0, 0.0]).expect("4 rows"),
    );
    env.insert(
        "dense1.weight".into(),
        Tensor::new(vec![1, 1], vec![100.0]).expect("1×1"),
    );
    env.insert(
        "dense1.bias".into(),
        Tensor::new(vec![1], vec![0.0]).expect("1"),
    );
    gradcheck("saturated bce", &net, &env, 4);
    let (g, roots) = with_grads(&net, true);
    check("saturated bce", &g, &roots, &env, 4);
}
