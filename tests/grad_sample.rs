//! `slope grad FILE --weights W --data D --sample N`: the worked numbers.
//! The binary computes them with f64 compiled code; here they are checked
//! against the f64 interpreter (every equation of every example), against
//! a hand computation for xor (a naive loop in the test), and as a snapshot
//! of the text a learner reads. Then the usage and input errors.

use assert_cmd::Command;
use slope::check::model::{Model, Program};
use slope::graph::eval::{Env, Tensor, eval};
use slope::train::weights::{self, Weights};
use std::path::{Path, PathBuf};

/// Runs slope in `dir`: (stdout, stderr, exit code).
fn slope_in(dir: &Path, args: &[&str]) -> (String, String, i32) {
    let out = Command::cargo_bin("slope")
        .expect("the slope binary is built for integration tests")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the slope binary runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn program(src: &str) -> Program {
    let (file, diags) = slope::syntax::parse(src);
    assert!(diags.is_empty(), "{diags:?}");
    let (program, diags) = slope::check::check(&file);
    assert!(diags.is_empty(), "{diags:?}");
    program
}

/// A scratch directory holding `example` (and its data file) and the
/// init weights of seed 7 as `w.safetensors`; returns it, the program and
/// the weights.
fn scratch(example: &str, data: &str) -> (PathBuf, Program, Weights) {
    let read = |f: &str| {
        std::fs::read_to_string(Path::new("examples").join(f)).expect("examples are readable")
    };
    scratch_with((example, &read(example)), (data, &read(data)))
}

/// [`scratch`] for a model and data given as text.
fn scratch_with((nn, src): (&str, &str), (data, csv): (&str, &str)) -> (PathBuf, Program, Weights) {
    let dir = std::env::temp_dir().join(format!("slope-grad-sample-{}-{nn}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
    std::fs::write(dir.join(nn), src).expect("the temporary directory is writable");
    std::fs::write(dir.join(data), csv).expect("the temporary directory is writable");
    let program = program(src);
    let w = weights::init(&program.models[0], 7);
    weights::write_atomic(&dir.join("w.safetensors"), &weights::to_safetensors(&w))
        .expect("the temporary directory is writable");
    (dir, program, w)
}

/// Every built-in activation in one network, two outputs: `(name, source, csv)`.
fn all_activations() -> [(&'static str, String, String); 2] {
    let hidden = "relu leaky_relu elu softplus softsign swish mish gelu sigmoid tanh";
    let layers: String = hidden
        .split(' ')
        .map(|a| format!("    dense 3 {a}\n"))
        .collect();
    let csv = "a,b,c,y1,y2\n0.5,-1.5,2,0.25,0.75\n-0.3,0.8,-2.2,1,0\n";
    let train = "train {\n    data \"d.csv\" target=[y1, y2]\n}\n";
    let mse = format!("model m {{\n    input 3\n{layers}    dense 2\n    loss mse\n}}\n{train}");
    let bce = format!(
        "loss sq(y, t) = (y - t)^2*exp(-t)\nmodel m {{\n    input 3\n{layers}    dense 2 sigmoid\n    loss sq\n}}\n{train}"
    );
    [
        ("all_mse.nn", mse, csv.to_string()),
        ("all_custom.nn", bce, csv.to_string()),
    ]
}

/// Row `n` (from 1) of the example's data: features and targets.
fn row(dir: &Path, data: &str, program: &Program, n: usize) -> (Vec<f64>, Vec<f64>) {
    let model = &program.models[0];
    let spec = program.train.as_ref().and_then(|t| t.data.as_ref());
    let text = std::fs::read_to_string(dir.join(data)).expect("the data is readable");
    let ds = slope::data::load(
        &text,
        slope::diag::FileId(1),
        spec.expect("a data statement"),
        model,
    )
    .expect("the example's data is valid");
    let (f, t) = (ds.n_features(), ds.n_targets());
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    (
        widen(&ds.features[(n - 1) * f..n * f]),
        widen(&ds.targets[(n - 1) * t..n * t]),
    )
}

/// Every equation object of `--json`, in print order.
fn equations(v: &serde_json::Value) -> Vec<serde_json::Value> {
    let sections = ["forward", "activation_derivatives", "backprop"];
    let lists = sections
        .iter()
        .map(|s| v[s].as_array().expect("a list").clone());
    lists.flatten().collect()
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    let list = v.as_array().unwrap_or_else(|| panic!("not a list: {v}"));
    list.iter().map(|x| x.as_f64().expect("a number")).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-3)
}

/// The interpreter's value of each equation on one row, parallel to the JSON.
fn oracle(model: &Model, program: &Program, w: &Weights, x: &[f64], t: &[f64]) -> Vec<Tensor> {
    let net = slope::lower::lower_model(program, model).expect("the example lowers");
    let eq = slope::equations::derive(net, model);
    let net = eq.network();
    let mut env = Env::new();
    for tensor in &w.tensors {
        let data = tensor.data.iter().map(|&v| f64::from(v)).collect();
        env.insert(
            tensor.name.clone(),
            Tensor::new(tensor.shape.clone(), data).expect("shape"),
        );
    }
    env.insert(
        "x".into(),
        Tensor::new(vec![1, x.len()], x.to_vec()).expect("shape"),
    );
    let t_shape = match model.loss {
        slope::check::model::Loss::CrossEntropy => vec![1],
        _ => vec![1, t.len()],
    };
    env.insert("t".into(), Tensor::new(t_shape, t.to_vec()).expect("shape"));
    eval(&net.graph, &eq.value_nodes(), &env, 1).expect("the interpreter evaluates")
}

#[test]
fn every_value_matches_the_interpreter() {
    let mut cases: Vec<(String, String, String, String, usize)> = Vec::new();
    for (example, data, n) in [
        ("xor.nn", "xor.csv", 3),
        ("iris.nn", "iris.csv", 77),
        ("custom.nn", "iris_petal.csv", 5),
        ("digits.nn", "digits.csv", 10),
        ("digits_cnn.nn", "digits.csv", 4),
    ] {
        let read = |f: &str| std::fs::read_to_string(Path::new("examples").join(f));
        let (src, csv) = (
            read(example).expect("readable"),
            read(data).expect("readable"),
        );
        cases.push((example.into(), src, data.into(), csv, n));
    }
    for (name, src, csv) in all_activations() {
        cases.push((name.into(), src, "d.csv".into(), csv, 2));
    }
    for (example, src, data, csv, n) in &cases {
        let (example, data, n) = (example.as_str(), data.as_str(), *n);
        let (dir, program, w) = scratch_with((example, src), (data, csv));
        let n_text = n.to_string();
        let args = [
            "grad",
            example,
            "--weights",
            "w.safetensors",
            "--data",
            data,
            "--sample",
            &n_text,
            "--json",
        ];
        let (out, err, code) = slope_in(&dir, &args);
        assert_eq!(code, 0, "{example}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
        let (x, t) = row(&dir, data, &program, n);
        assert_eq!(numbers(&v["sample"]["x"]), x, "{example}");
        assert_eq!(numbers(&v["sample"]["t"]), t, "{example}");
        assert_eq!(v["sample"]["row"], n);
        let expected = oracle(&program.models[0], &program, &w, &x, &t);
        let eqs = equations(&v);
        assert_eq!(eqs.len(), expected.len(), "{example}");
        for (eq, want) in eqs.iter().zip(&expected) {
            let got = numbers(&eq["value"]);
            // One row's shape: the interpreter's, batch axis (1) left out.
            let shape: Vec<usize> = numbers(&eq["shape"]).iter().map(|&d| d as usize).collect();
            assert_eq!(
                shape.iter().product::<usize>(),
                want.data.len(),
                "{example} {eq}"
            );
            assert_eq!(got.len(), want.data.len(), "{example} {eq}");
            for (g, e) in got.iter().zip(&want.data) {
                assert!(close(*g, *e), "{example} {}: {g} vs {e}", eq["lhs"]);
            }
        }
    }
}

/// xor by hand, a naive loop over the init weights: each printed value is
/// the textbook formula next to it.
#[test]
fn xor_values_are_the_textbook_formulas() {
    let (dir, program, w) = scratch("xor.nn", "xor.csv");
    let args = [
        "grad",
        "xor.nn",
        "--weights",
        "w.safetensors",
        "--data",
        "xor.csv",
        "--sample",
        "2",
        "--json",
    ];
    let (out, err, code) = slope_in(&dir, &args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    let (x, t) = row(&dir, "xor.csv", &program, 2);
    assert_eq!((x.as_slice(), t.as_slice()), (&[0.0, 1.0][..], &[1.0][..]));
    let get = |lhs: &str| -> Vec<f64> {
        let eq = equations(&v).into_iter().find(|e| e["lhs"] == lhs);
        numbers(&eq.unwrap_or_else(|| panic!("no {lhs}: {out}"))["value"])
    };
    let p = |i: usize| -> Vec<f64> { w.tensors[i].data.iter().map(|&v| f64::from(v)).collect() };
    let (w1, b1, w2, b2) = (p(0), p(1), p(2), p(3));
    let z1: Vec<f64> = (0..4)
        .map(|i| w1[2 * i] * x[0] + w1[2 * i + 1] * x[1] + b1[i])
        .collect();
    let a1: Vec<f64> = z1.iter().map(|z| z.tanh()).collect();
    let z2 = (0..4).map(|i| w2[i] * a1[i]).sum::<f64>() + b2[0];
    let y = 1.0 / (1.0 + (-z2).exp());
    let loss = -(t[0] * y.ln() + (1.0 - t[0]) * (1.0 - y).ln());
    let delta2 = y - t[0];
    let delta1: Vec<f64> = (0..4)
        .map(|i| (1.0 - a1[i] * a1[i]) * w2[i] * delta2)
        .collect();
    let grad_w2: Vec<f64> = a1.iter().map(|a| delta2 * a).collect();
    let grad_w1: Vec<f64> = (0..8).map(|k| delta1[k / 2] * x[k % 2]).collect();
    let tanh_prime: Vec<f64> = a1.iter().map(|a| 1.0 - a * a).collect();
    let cases: [(&str, Vec<f64>); 11] = [
        ("z1", z1),
        ("a1", a1),
        ("z2", vec![z2]),
        ("y", vec![y]),
        ("ℓ", vec![loss]),
        ("tanh'(z1)", tanh_prime),
        ("sigmoid'(z2)", vec![y * (1.0 - y)]),
        ("δ2 = ∂ℓ/∂z2", vec![delta2]),
        ("∂ℓ/∂W2", grad_w2),
        ("δ1 = ∂ℓ/∂z1", delta1),
        ("∂ℓ/∂W1", grad_w1),
    ];
    for (lhs, want) in cases {
        let got = get(lhs);
        assert_eq!(got.len(), want.len(), "{lhs}");
        for (g, e) in got.iter().zip(&want) {
            assert!(close(*g, *e), "{lhs}: {g} vs {e} by hand");
        }
    }
    assert_eq!(get("∂ℓ/∂b2"), get("δ2 = ∂ℓ/∂z2"));
    assert_eq!(get("∂ℓ/∂b1"), get("δ1 = ∂ℓ/∂z1"));
}

#[test]
fn xor_worked_numbers_as_text() {
    let (dir, _, _) = scratch("xor.nn", "xor.csv");
    let args = [
        "grad",
        "xor.nn",
        "--weights",
        "w.safetensors",
        "--data",
        "xor.csv",
        "--sample",
        "2",
    ];
    let (out, err, code) = slope_in(&dir, &args);
    assert_eq!(code, 0, "{err}");
    // Each equation is followed by its value, aligned under its `=`.
    assert!(
        out.contains("δ2 = ∂ℓ/∂z2 = y - t\n            = ["),
        "{out}"
    );
    insta::assert_snapshot!(out);
    // The text equations without --sample are the same lines, without values.
    let (plain, _, _) = slope_in(&dir, &["grad", "xor.nn"]);
    let equations: Vec<&str> = out
        .lines()
        .filter(|l| !l.trim_start().starts_with("= ") && !l.starts_with("# "))
        .filter(|l| !l.starts_with("x = ") && !l.starts_with("t = "))
        .collect();
    let plain: Vec<&str> = plain.lines().filter(|l| !l.starts_with("# ")).collect();
    assert_eq!(equations[1..].join("\n"), plain.join("\n"), "{out}");
}

/// A digits row: long vectors and matrices are cut after 8 entries and
/// carry their norm; the target is one class index.
#[test]
fn long_values_are_cut_with_their_norm() {
    let (dir, _, _) = scratch("digits.nn", "digits.csv");
    let args = [
        "grad",
        "digits.nn",
        "--weights",
        "w.safetensors",
        "--data",
        "digits.csv",
        "--sample",
        "1",
    ];
    let (out, err, code) = slope_in(&dir, &args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\nx = ["), "{out}");
    assert!(out.contains(", …]  (64 entries, norm "), "{out}");
    assert!(out.contains(", …], …]  (32×64, norm "), "{out}");
    // cross_entropy: the target is one class index, printed as a number.
    let t = out
        .lines()
        .find(|l| l.starts_with("t = "))
        .expect("a t line");
    assert!(t["t = ".len()..].parse::<u8>().is_ok(), "{t}");
    let cut = out
        .lines()
        .filter(|l| l.contains('…') && !l.starts_with("# values"));
    for line in cut {
        let value = line.rsplit(" = ").next().expect("a value");
        let value = value.split("  (").next().expect("a value");
        let entries = value
            .split(", ")
            .map(|e| e.trim_matches(|c| c == '[' || c == ']'))
            .filter(|e| e.parse::<f64>().is_ok())
            .count();
        assert_eq!(entries, 8, "not the first 8 entries: {line}");
    }
}

#[test]
fn sample_errors_are_clear() {
    let (dir, _, _) = scratch("xor.nn", "xor.csv");
    std::fs::write(dir.join("bad.csv"), "a,b,y\n0,0,0\n0,x,1\n").expect("writable");
    let base = ["grad", "xor.nn"];
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--sample", "1"], 2, "--weights"),
        (
            &["--sample", "1", "--weights", "w.safetensors"],
            2,
            "--data",
        ),
        (&["--data", "xor.csv", "--sample", "1"], 2, "--weights"),
        (
            &[
                "--weights",
                "w.safetensors",
                "--data",
                "xor.csv",
                "--sample",
                "0",
            ],
            2,
            "--sample 0 is not a row of 'xor.csv', which has 4 data rows",
        ),
        (
            &[
                "--weights",
                "w.safetensors",
                "--data",
                "xor.csv",
                "--sample",
                "5",
            ],
            2,
            "rows count from 1",
        ),
        (
            &[
                "--weights",
                "w.safetensors",
                "--data",
                "xor.csv",
                "--sample",
                "-1",
            ],
            2,
            "-1",
        ),
        (
            &[
                "--weights",
                "w.safetensors",
                "--data",
                "xor.csv",
                "--sample",
                "two",
            ],
            2,
            "two",
        ),
        (
            &[
                "--weights",
                "w.safetensors",
                "--data",
                "bad.csv",
                "--sample",
                "1",
            ],
            1,
            "bad.csv:3:3",
        ),
        (
            &[
                "--weights",
                "missing.safetensors",
                "--data",
                "xor.csv",
                "--sample",
                "1",
            ],
            1,
            "missing.safetensors",
        ),
        (
            &[
                "--weights",
                "w.safetensors",
                "--data",
                "xor.csv",
                "--sample",
                "1",
                "--latex",
            ],
            2,
            "--latex",
        ),
        (
            &[
                "--weights",
                "w.safetensors",
                "--data",
                "xor.csv",
                "--sample",
                "1",
                "--out",
                "g.safetensors",
            ],
            2,
            "--out",
        ),
        (
            &["--weights", "w.safetensors", "--data", "xor.csv", "--json"],
            2,
            "--json goes with --sample N",
        ),
    ];
    for (extra, want_code, want_text) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let (out, err, code) = slope_in(&dir, &args);
        assert_eq!(code, *want_code, "slope {args:?}: {err}");
        assert!(out.is_empty(), "slope {args:?} printed {out}");
        assert!(err.contains(want_text), "slope {args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!dir.join("g.safetensors").exists());
}
