//! Every command on a convolutional network, through the command line: a
//! small CNN with each image layer (a `same` convolution, max pooling, a
//! `valid` convolution, average pooling, the implied flatten) is trained,
//! then `predict` and `grad --out` are checked against the f64 interpreter
//! (the oracle), `grad --sample` for its cut image values, `bench` for its
//! flop count (written out by hand below), `graph` for well-formed DOT with
//! the window ops, `fmt` for the canonical form and `gradcheck` (on the
//! small model and `examples/digits_cnn.nn` at its default init) for a
//! clean pass.

use assert_cmd::Command;
use slope::check::model::Program;
use slope::graph::eval::{Env, Tensor, eval};
use slope::train::weights::{self, Weights};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The canonical form of the test model (what `slope fmt` prints).
const MODEL: &str = "model tiny_cnn {
    input 1x6x6
    conv 2 3 relu padding=same # first
    maxpool 2
    conv 3 2x2 tanh stride=1
    avgpool 2x2
    dense 3 softmax
    loss cross_entropy
}

train {
    data \"d.csv\" target=class
    epochs 2
    batch 4
    seed 3
}
";

/// The same model as someone might type it.
const MESSY: &str = "model tiny_cnn {\ninput 1x6x6\n  conv 2 3 relu padding=same   # first\n \
                     maxpool 2\n conv 3 2x2 tanh stride=1\n avgpool 2x2\n dense 3 softmax\n \
                     loss cross_entropy }\ntrain { data \"d.csv\" target=class\n epochs 2\n \
                     batch 4\n seed 3 }\n";

const ROWS: usize = 20;

/// A scratch directory with the model, 20 rows of 6x6 pixels in [0, 1]
/// (classes 0, 1, 2 in turn) and the model's weights after two epochs.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slope-cli-cnn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    std::fs::write(dir.join("tiny.nn"), MODEL).expect("writable");
    let mut csv = (0..36).map(|i| format!("p{i},")).collect::<String>() + "class\n";
    let mut state: u64 = 11;
    for r in 0..ROWS {
        for _ in 0..36 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            csv.push_str(&format!(
                "{:.2},",
                (state >> 40) as f64 / (1u64 << 24) as f64
            ));
        }
        csv.push_str(&format!("{}\n", r % 3));
    }
    std::fs::write(dir.join("d.csv"), csv).expect("writable");
    let (code, _, err) = run_in(&dir, &["train", "tiny.nn", "--quiet", "--out", "w.st"]);
    assert_eq!(code, 0, "{err}");
    dir
}

/// Runs slope in `dir`: (status, stdout, stderr); a panic fails the test.
fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("slope")
        .expect("the slope binary is built for integration tests")
        .current_dir(dir)
        .args(args)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("slope runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "slope {args:?}: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = run_in(dir, args);
    assert_eq!(code, 0, "slope {args:?}: {err}");
    out
}

fn program() -> Program {
    let (file, d) = slope::syntax::parse(MODEL);
    assert!(d.is_empty(), "{d:?}");
    let (program, d) = slope::check::check(&file);
    assert!(d.is_empty(), "{d:?}");
    program
}

/// The interpreter's environment: the weights and all rows of the data.
fn env(dir: &Path, program: &Program, w: &Weights) -> Env {
    let model = &program.models[0];
    let spec = program.train.as_ref().and_then(|t| t.data.as_ref());
    let text = std::fs::read_to_string(dir.join("d.csv")).expect("data");
    let ds = slope::data::load(&text, slope::diag::FileId(1), spec.expect("data"), model)
        .expect("valid data");
    let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let mut env = Env::new();
    for t in &w.tensors {
        let v = Tensor::new(t.shape.clone(), wide(&t.data)).expect("shape");
        env.insert(t.name.clone(), v);
    }
    let x = Tensor::new(vec![ROWS, 36], wide(&ds.features)).expect("shape");
    env.insert("x".into(), x);
    let t = Tensor::new(vec![ROWS], wide(&ds.targets)).expect("shape");
    env.insert("t".into(), t);
    env
}

fn read_weights(path: &Path, program: &Program) -> Weights {
    let bytes = std::fs::read(path).expect("the file was written");
    weights::from_safetensors(&bytes, &program.models[0]).expect("valid safetensors")
}

#[test]
fn predict_and_grad_match_the_interpreter() {
    let dir = scratch("values");
    let program = program();
    let w = read_weights(&dir.join("w.st"), &program);
    let env = env(&dir, &program, &w);
    let net = slope::lower::lower_model(&program, &program.models[0]).expect("lowers");
    let y = eval(&net.graph, &[net.y], &env, ROWS).expect("evaluates")[0].clone();

    let out = ok(
        &dir,
        &["predict", "tiny.nn", "--weights", "w.st", "--data", "d.csv"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "y0,y1,y2,class");
    assert_eq!(lines.len(), ROWS + 1, "one line per row after the header");
    for (r, line) in lines[1..].iter().enumerate() {
        let cells: Vec<f64> = line
            .split(',')
            .map(|c| c.parse().expect("a number"))
            .collect();
        for (k, cell) in cells[..3].iter().enumerate() {
            let want = y.data[r * 3 + k];
            assert!((cell - want).abs() < 1e-5, "row {r}: {line} vs {want}");
        }
        let best = (0..3).fold(0, |b, k| if cells[k] > cells[b] { k } else { b });
        assert_eq!(cells[3] as usize, best, "row {r}: the class is the arg-max");
    }

    ok(
        &dir,
        &[
            "grad",
            "tiny.nn",
            "--weights",
            "w.st",
            "--data",
            "d.csv",
            "--out",
            "g.st",
        ],
    );
    let (net, _) = slope::pipeline::compile(&program, &program.models[0]).expect("compiles");
    let want = eval(&net.graph, &net.grads, &env, ROWS).expect("evaluates");
    let got = read_weights(&dir.join("g.st"), &program);
    for (p, want) in net.params.iter().zip(&want) {
        let g = got.get(&p.name).expect("every parameter has a gradient");
        assert_eq!(g.shape, p.shape, "{}", p.name);
        let scale = want.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in g.data.iter().zip(&want.data).enumerate() {
            let tol = 1e-4 * b.abs().max(1e-3 * scale).max(1e-9);
            assert!(
                (f64::from(*a) - b).abs() <= tol,
                "{}[{i}]: {a} vs {b}",
                p.name
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sample_prints_images_as_cut_vectors_with_their_norm() {
    let dir = scratch("sample");
    let out = ok(
        &dir,
        &[
            "grad",
            "tiny.nn",
            "--weights",
            "w.st",
            "--data",
            "d.csv",
            "--sample",
            "2",
        ],
    );
    for want in [
        "x = [",
        "(36 entries, norm ",
        "z1 = b1 + unflatten(x) ⋆ W1",
        "(2×6×6, norm ",
        "z2 = maxpool(a1)",
        "(2×3×3, norm ",
        "z4 = avgpool(a3)",
        "maxpool_back(a1, ",
        "⋆ᵀ W3",
        "(2×1×3×3, norm ",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    // Every flat value line (images are flat) shows 8 entries, then `…`.
    let flat = |l: &&str| l.contains(", norm ") && !l.contains("[[");
    for line in out.lines().filter(flat) {
        let shown = line.split('[').next_back().expect("a list");
        let commas = shown.split('…').next().expect("text").matches(',').count();
        assert_eq!(commas, 8, "8 entries, then …: {line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_counts_convolution_flops() {
    let dir = scratch("bench");
    let out = ok(&dir, &["bench", "tiny.nn", "--batch", "4"]);
    // Multiply-adds per example: conv1 2·6·6 outputs × 1·3·3 = 648; conv2
    // 3·2·2 outputs × 2·2·2 = 96; dense1 3 × 3 = 9; pooling none. Two flop
    // each forward, four for the two backward products; batch 4.
    let flops = 6 * 4 * (648 + 96 + 9);
    assert!(
        out.contains(&format!("6·B·Σ MACs = {flops} flop per step")),
        "{out}"
    );
    for phase in ["loss+grad", "train step"] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(phase))
            .expect("the phase is timed");
        let rate: f64 = line
            .split_whitespace()
            .rev()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("GFLOP/s");
        assert!(rate.is_finite() && rate > 0.0, "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Node ids declared in DOT text, and edges between them.
fn dot_parts(dot: &str) -> (Vec<String>, Vec<(String, String)>) {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for line in dot.lines().map(str::trim) {
        if let Some((a, rest)) = line.split_once(" -> ") {
            let b = rest.split([' ', ';', '[']).next().expect("a target");
            edges.push((a.to_string(), b.to_string()));
        } else if line.starts_with('n') && line.contains("[label=") {
            nodes.push(line.split(' ').next().expect("an id").to_string());
        }
    }
    (nodes, edges)
}

#[test]
fn graph_and_fmt_of_a_cnn() {
    let dir = scratch("graph");
    for (flag, ops) in [
        (
            None,
            &["conv\\n[B, 2, 6, 6]", "maxpool\\n[B, 2, 3, 3]", "avgpool"][..],
        ),
        (
            Some("--grad"),
            &[
                "conv_back_kernel",
                "conv_back_input",
                "maxpool_back",
                "avgpool_back",
            ][..],
        ),
    ] {
        let mut args = vec!["graph", "tiny.nn"];
        args.extend(flag);
        let dot = ok(&dir, &args);
        assert!(dot.starts_with("digraph slope {") && dot.trim_end().ends_with('}'));
        for op in ops {
            assert!(dot.contains(op), "{flag:?}: no {op} in the DOT");
        }
        let (nodes, edges) = dot_parts(&dot);
        assert!(!edges.is_empty());
        for (a, b) in &edges {
            assert!(nodes.contains(a) && nodes.contains(b), "edge {a} -> {b}");
        }
    }

    std::fs::write(dir.join("messy.nn"), MESSY).expect("writable");
    assert_eq!(ok(&dir, &["fmt", "messy.nn"]), MODEL);
    let (code, _, err) = run_in(&dir, &["fmt", "messy.nn", "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("messy.nn:2: not in canonical form"), "{err}");
    ok(&dir, &["fmt", "tiny.nn", "--check"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gradcheck_passes_at_the_default_init_with_kinks_counted() {
    let dir = scratch("gradcheck");
    ok(&dir, &["gradcheck", "tiny.nn"]);
    ok(&dir, &["gradcheck", "tiny.nn", "--weights", "w.st"]);
    // Biases start at 0 and many pixels are 0: relu sits on its kink at
    // every all-zero patch, where a central difference straddles it.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = ok(root, &["gradcheck", "examples/digits_cnn.nn"]);
    assert!(out.contains("ok: every tensor within 1e-4"), "{out}");
    let bias = out
        .lines()
        .find(|l| l.trim_start().starts_with("conv1.bias"))
        .expect("a line per tensor");
    assert!(bias.ends_with(" at kinks)"), "{bias}");
    let _ = std::fs::remove_dir_all(&dir);
}
