//! `slope train` end to end through the command line: the examples reach
//! their accuracy, `--json` has exactly the spec's keys, a hand-computed
//! trajectory, determinism, atomic checkpoints and the NaN guard.

use assert_cmd::Command;
use slope::train::weights::{Tensor, Weights};
use std::path::{Path, PathBuf};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slope-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn slope() -> Command {
    Command::cargo_bin("slope").unwrap()
}

/// Runs `slope train ARGS --json`, asserts success, returns the epoch objects.
fn train_json(args: &[&str]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = slope()
        .arg("train")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "slope train {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => panic!("not a JSON object: {l}"),
        })
        .collect()
}

fn num(m: &serde_json::Map<String, serde_json::Value>, key: &str) -> f64 {
    m.get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("no number '{key}' in {m:?}"))
}

fn keys(m: &serde_json::Map<String, serde_json::Value>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

#[test]
fn xor_reaches_full_accuracy() {
    let dir = scratch("xor");
    let out = dir.join("xor.safetensors");
    let epochs = train_json(&[
        examples().join("xor.nn").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(epochs.len(), 2000);
    let last = epochs.last().unwrap();
    // serde_json sorts keys; the set is what the spec allows for bce without validation.
    let mut k = keys(last);
    k.sort_unstable();
    assert_eq!(k, vec!["accuracy", "epoch", "loss", "seconds"]);
    assert_eq!(num(&epochs[0], "epoch"), 1.0);
    assert_eq!(num(last, "accuracy"), 1.0, "{last:?}");
    assert!(out.is_file());
}

#[test]
fn iris_reaches_97_percent() {
    let dir = scratch("iris");
    let out = dir.join("iris.safetensors");
    let epochs = train_json(&[
        examples().join("iris.nn").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let last = epochs.last().unwrap();
    let mut k = keys(last);
    k.sort_unstable();
    assert_eq!(
        k,
        vec![
            "accuracy",
            "epoch",
            "loss",
            "seconds",
            "val_accuracy",
            "val_loss"
        ]
    );
    assert!(num(last, "accuracy") >= 0.97, "{last:?}");
}

#[test]
fn digits_reaches_97_train_and_94_validation() {
    let dir = scratch("digits");
    let out = dir.join("digits.safetensors");
    let epochs = train_json(&[
        examples().join("digits.nn").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let last = epochs.last().unwrap();
    assert!(num(last, "accuracy") >= 0.97, "{last:?}");
    assert!(num(last, "val_accuracy") >= 0.94, "{last:?}");
}

#[test]
fn training_twice_gives_identical_bytes() {
    let dir = scratch("determinism");
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    let file = examples().join("iris.nn");
    for out in [&a, &b] {
        train_json(&[
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "20",
        ]);
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn default_weights_path_is_next_to_the_file() {
    let dir = scratch("default-path");
    for f in ["xor.nn", "xor.csv"] {
        std::fs::copy(examples().join(f), dir.join(f)).unwrap();
    }
    slope()
        .args([
            "train",
            dir.join("xor.nn").to_str().unwrap(),
            "--epochs",
            "3",
            "--quiet",
        ])
        .assert()
        .success()
        .stdout("");
    assert!(dir.join("xor.safetensors").is_file());
}

/// A linear model `y = w·x + b` with mse in `dir`, data rows X and T.
const X: [[f64; 2]; 3] = [[1.0, 2.0], [0.5, -1.0], [-1.5, 0.25]];
const T: [f64; 3] = [1.0, 0.0, 2.0];

fn linear_model(dir: &Path, optimizer: &str) -> PathBuf {
    let csv: String = std::iter::once("a,b,y".to_string())
        .chain((0..3).map(|r| format!("{},{},{}", X[r][0], X[r][1], T[r])))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("lin.csv"), csv + "\n").unwrap();
    let nn = format!(
        "model lin {{\n    input 2\n    dense 1\n    loss mse\n}}\n\ntrain {{\n    data \"lin.csv\" target=y\n    {optimizer}\n    epochs 2\n    batch 2\n    shuffle false\n}}\n"
    );
    let path = dir.join("lin.nn");
    std::fs::write(&path, nn).unwrap();
    let init = Weights {
        tensors: vec![
            Tensor {
                name: "dense1.weight".into(),
                shape: vec![1, 2],
                data: vec![0.1, -0.2],
            },
            Tensor {
                name: "dense1.bias".into(),
                shape: vec![1],
                data: vec![0.05],
            },
        ],
    };
    std::fs::write(
        dir.join("init.safetensors"),
        slope::train::weights::to_safetensors(&init),
    )
    .unwrap();
    path
}

/// The f64 trajectory: batches [0, 1] then [2]; the gradient of a batch's
/// mean loss mean((w·x + b - t)^2) is g = Σ 2(z - t)/n · [x0, x1, 1].
fn reference(mut update: impl FnMut(&mut [f64; 3], [f64; 3])) -> ([f64; 3], Vec<f64>) {
    let mut p = [0.1f32 as f64, -0.2f32 as f64, 0.05f32 as f64];
    let mut losses = Vec::new();
    for _ in 0..2 {
        let mut batch_losses = Vec::new();
        for rows in [&[0usize, 1][..], &[2][..]] {
            let n = rows.len() as f64;
            let (mut loss, mut g) = (0.0, [0.0; 3]);
            for &r in rows {
                let e = p[0] * X[r][0] + p[1] * X[r][1] + p[2] - T[r];
                loss += e * e / n;
                for (gi, xi) in g.iter_mut().zip([X[r][0], X[r][1], 1.0]) {
                    *gi += 2.0 * e / n * xi;
                }
            }
            batch_losses.push(loss);
            update(&mut p, g);
        }
        losses.push((batch_losses[0] + batch_losses[1]) / 2.0);
    }
    (p, losses)
}

fn check_trajectory(dir: &Path, optimizer: &str, p: [f64; 3], losses: &[f64]) {
    let file = linear_model(dir, optimizer);
    let out = dir.join("out.safetensors");
    let init = dir.join("init.safetensors");
    let epochs = train_json(&[
        file.to_str().unwrap(),
        "--init",
        init.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let close = |got: f64, want: f64| (got - want).abs() <= 2e-6 * (1.0 + want.abs());
    for (e, want) in epochs.iter().zip(losses) {
        let mut k = keys(e);
        k.sort_unstable();
        assert_eq!(
            k,
            vec!["epoch", "loss", "seconds"],
            "regression has no accuracy"
        );
        assert!(close(num(e, "loss"), *want), "{e:?} vs {want}");
    }
    let model = slope::check::model::Model {
        name: "lin".into(),
        input: slope::check::model::FeatureShape::flat(2),
        layers: vec![slope::check::model::Layer::dense(
            "dense1",
            slope::check::model::FeatureShape::flat(2),
            1,
            slope::check::model::Activation::Builtin(slope::check::model::Builtin::Identity),
            slope::check::model::Init::Glorot,
            true,
        )],
        loss: slope::check::model::Loss::Mse,
        span: Default::default(),
        input_span: Default::default(),
        loss_span: Default::default(),
    };
    let w = slope::train::weights::from_safetensors(&std::fs::read(&out).unwrap(), &model).unwrap();
    let got = [
        w.tensors[0].data[0],
        w.tensors[0].data[1],
        w.tensors[1].data[0],
    ];
    for (g, want) in got.iter().zip(p) {
        assert!(close(f64::from(*g), want), "weights {got:?} vs {p:?}");
    }
}

#[test]
fn sgd_momentum_trajectory_matches_hand_computation() {
    let dir = scratch("traj-sgd");
    let (lr, m) = (0.1, 0.9);
    let mut v = [0.0; 3];
    // v = M*v + g; w -= lr*v
    let (p, losses) = reference(|p, g| {
        for i in 0..3 {
            v[i] = m * v[i] + g[i];
            p[i] -= lr * v[i];
        }
    });
    check_trajectory(&dir, "optimizer sgd lr=0.1 momentum=0.9", p, &losses);
}

#[test]
fn adam_trajectory_matches_hand_computation() {
    let dir = scratch("traj-adam");
    let (lr, b1, b2, e) = (0.01, 0.9, 0.999, 1e-8);
    let (mut m, mut v, mut s) = ([0.0; 3], [0.0; 3], 0);
    // m = B1*m + (1-B1)*g; v = B2*v + (1-B2)*g^2;
    // w -= lr * (m/(1-B1^s)) / (sqrt(v/(1-B2^s)) + E), s from 1 across epochs
    let (p, losses) = reference(|p, g| {
        s += 1;
        for i in 0..3 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            p[i] -= lr * (m[i] / (1.0 - f64::powi(b1, s)))
                / ((v[i] / (1.0 - f64::powi(b2, s))).sqrt() + e);
        }
    });
    check_trajectory(&dir, "optimizer adam lr=0.01", p, &losses);
}

#[test]
fn adamw_trajectory_matches_hand_computation() {
    let dir = scratch("traj-adamw");
    let (lr, b1, b2, e, d) = (0.01, 0.9, 0.999, 1e-8, 0.5);
    let (mut m, mut v, mut s) = ([0.0; 3], [0.0; 3], 0);
    // Adam, after decoupled weight decay on the weights (p[0], p[1]) only:
    // w -= lr*D*w, then w -= lr * (m/(1-B1^s)) / (sqrt(v/(1-B2^s)) + E)
    let (p, losses) = reference(|p, g| {
        s += 1;
        for i in 0..3 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            if i < 2 {
                p[i] -= lr * d * p[i];
            }
            p[i] -= lr * (m[i] / (1.0 - f64::powi(b1, s)))
                / ((v[i] / (1.0 - f64::powi(b2, s))).sqrt() + e);
        }
    });
    check_trajectory(&dir, "optimizer adamw lr=0.01 weight_decay=0.5", p, &losses);
}

#[test]
fn rmsprop_trajectory_matches_hand_computation() {
    let dir = scratch("traj-rmsprop");
    let (lr, r, e) = (0.01, 0.8, 1e-8);
    let mut v = [0.0; 3];
    // v = R*v + (1-R)*g^2; w -= lr*g/(sqrt(v) + E)
    let (p, losses) = reference(|p, g| {
        for i in 0..3 {
            v[i] = r * v[i] + (1.0 - r) * g[i] * g[i];
            p[i] -= lr * g[i] / (v[i].sqrt() + e);
        }
    });
    check_trajectory(&dir, "optimizer rmsprop lr=0.01 rho=0.8", p, &losses);
}

#[test]
fn check_prints_the_new_optimizers_with_their_defaults() {
    let dir = scratch("check-optimizers");
    let cases = [
        (
            "optimizer adamw lr=0.01",
            "optimizer: adamw lr=0.01, beta1=0.9 (default), beta2=0.999 (default), eps=1e-8 (default), weight_decay=0.01 (default)",
        ),
        (
            "optimizer rmsprop rho=0.95",
            "optimizer: rmsprop lr=0.001 (default), rho=0.95, eps=1e-8 (default)",
        ),
    ];
    for (line, want) in cases {
        let file = linear_model(&dir, line);
        let out = slope().arg("check").arg(&file).assert().success();
        let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert!(text.lines().any(|l| l == want), "{text}");
    }
}

#[test]
fn bad_data_leaves_existing_weights_untouched() {
    let dir = scratch("atomic");
    let file = linear_model(&dir, "optimizer sgd lr=0.1");
    let out = dir.join("lin.safetensors");
    std::fs::write(&out, b"previous weights, byte for byte").unwrap();
    std::fs::write(dir.join("lin.csv"), "a,b,y\n1,2,3\n4,oops,6\n").unwrap();
    slope()
        .args(["train", file.to_str().unwrap()])
        .assert()
        .code(1)
        .stdout("");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"previous weights, byte for byte"
    );
}

#[test]
fn divergence_stops_with_a_diagnostic_and_keeps_the_weights() {
    let dir = scratch("nan");
    let file = linear_model(&dir, "optimizer sgd lr=0.1");
    let out = dir.join("lin.safetensors");
    std::fs::write(&out, b"previous weights").unwrap();
    let result = slope()
        .args([
            "train",
            file.to_str().unwrap(),
            "--lr",
            "1e30",
            "--epochs",
            "1000",
        ])
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("training diverged"), "{stderr}");
    assert!(stderr.contains("epoch"), "{stderr}");
    assert!(
        stderr.contains("lin.nn:"),
        "names the file, line and column: {stderr}"
    );
    assert!(stderr.contains("was left unchanged"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous weights");
}

#[test]
fn weights_that_do_not_fit_are_rejected() {
    let dir = scratch("bad-init");
    let file = linear_model(&dir, "optimizer sgd lr=0.1");
    let init = dir.join("wrong.safetensors");
    let wrong = Weights {
        tensors: vec![Tensor {
            name: "dense1.weight".into(),
            shape: vec![1, 3],
            data: vec![0.0; 3],
        }],
    };
    std::fs::write(&init, slope::train::weights::to_safetensors(&wrong)).unwrap();
    let result = slope()
        .args([
            "train",
            file.to_str().unwrap(),
            "--init",
            init.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("'dense1.bias' is missing")
            || stderr.contains("'dense1.weight' has shape [1, 3]"),
        "{stderr}"
    );
    std::fs::write(&init, b"garbage").unwrap();
    slope()
        .args([
            "train",
            file.to_str().unwrap(),
            "--init",
            init.to_str().unwrap(),
        ])
        .assert()
        .code(1);
}

#[test]
fn impossible_overrides_are_usage_errors() {
    let file = examples().join("xor.nn");
    for (flag, value) in [
        ("--epochs", "0"),
        ("--batch", "0"),
        ("--lr", "-1"),
        ("--threads", "0"),
    ] {
        slope()
            .args(["train", file.to_str().unwrap(), flag, value])
            .assert()
            .code(2);
    }
}
