//! A convolutional network's training trajectory by hand: `slope train
//! --init` on a tiny CNN (a 1x3x3 image, one 2x2 filter with bias, flatten,
//! one dense output, mse) for two epochs of SGD with momentum, against the
//! same steps written out in f64 with naive loops here: the per-epoch
//! losses `--json` prints and the weights slope writes.

use assert_cmd::Command;
use slope::train::weights::{Tensor, Weights};
use std::path::PathBuf;

/// Three 3x3 images, row-major, and their targets.
const X: [[f64; 9]; 3] = [
    [1.0, 0.5, -0.5, 0.0, 2.0, 1.0, -1.0, 0.25, 0.75],
    [0.5, -1.0, 1.5, 2.0, 0.0, -0.5, 1.0, 1.0, -0.25],
    [-1.5, 0.25, 0.0, 1.0, -0.75, 0.5, 0.5, -1.0, 2.0],
];
const T: [f64; 3] = [1.0, -0.5, 0.25];
const LR: f64 = 0.05;
const MOMENTUM: f64 = 0.5;

/// The parameters: kernel K (2x2, row-major), conv bias c, dense weights W
/// (4, over the flattened 2x2 map) and dense bias b, in one vector:
/// K0..K3, c, W0..W3, b.
type Params = [f64; 10];

const INIT: Params = [0.3, -0.2, 0.1, 0.4, 0.05, 0.5, -0.25, 0.2, 0.1, -0.1];

/// The mean loss of `rows` and its gradient, by naive loops.
fn loss_and_grad(p: &Params, rows: &[usize]) -> (f64, Params) {
    let n = rows.len() as f64;
    let (k, c, w, b) = (&p[0..4], p[4], &p[5..9], p[9]);
    let (mut loss, mut g) = (0.0, [0.0; 10]);
    for &r in rows {
        let x = |i: usize, j: usize| X[r][3 * i + j];
        // z[i][j] = c + Σ_ab K[a][b]·x[i+a][j+b]; flattened in (H, W) order.
        let mut z = [0.0; 4];
        for i in 0..2 {
            for j in 0..2 {
                z[2 * i + j] = c;
                for a in 0..2 {
                    for bb in 0..2 {
                        z[2 * i + j] += k[2 * a + bb] * x(i + a, j + bb);
                    }
                }
            }
        }
        let y: f64 = b + (0..4).map(|q| w[q] * z[q]).sum::<f64>();
        let e = y - T[r];
        loss += e * e / n;
        let dy = 2.0 * e / n;
        for q in 0..4 {
            g[5 + q] += dy * z[q];
        }
        g[9] += dy;
        for i in 0..2 {
            for j in 0..2 {
                let dz = dy * w[2 * i + j];
                g[4] += dz;
                for a in 0..2 {
                    for bb in 0..2 {
                        g[2 * a + bb] += dz * x(i + a, j + bb);
                    }
                }
            }
        }
    }
    (loss, g)
}

/// Two epochs, batches [0, 1] then [2]: `v = M·v + g; p -= lr·v`.
fn reference() -> (Params, Vec<f64>) {
    let mut p = INIT.map(|v| f64::from(v as f32));
    let mut v = [0.0; 10];
    let mut losses = Vec::new();
    for _ in 0..2 {
        let mut batch = Vec::new();
        for rows in [&[0usize, 1][..], &[2][..]] {
            let (l, g) = loss_and_grad(&p, rows);
            batch.push(l);
            for i in 0..10 {
                v[i] = MOMENTUM * v[i] + g[i];
                p[i] -= LR * v[i];
            }
        }
        losses.push((batch[0] + batch[1]) / 2.0);
    }
    (p, losses)
}

#[test]
fn tiny_cnn_sgd_trajectory_matches_hand_computation() {
    let dir = std::env::temp_dir().join(format!("slope-train-cnn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let header = (0..9).map(|i| format!("p{i},")).collect::<String>() + "t\n";
    let rows: String = (0..3)
        .map(|r| {
            let cells: Vec<String> = X[r].iter().map(f64::to_string).collect();
            format!("{},{}\n", cells.join(","), T[r])
        })
        .collect();
    std::fs::write(dir.join("d.csv"), header + &rows).expect("written");
    let src = format!(
        "model tiny {{\n    input 1x3x3\n    conv 1 2x2\n    flatten\n    dense 1\n    loss mse\n}}\n\n\
         train {{\n    data \"d.csv\" target=t\n    optimizer sgd lr={LR} momentum={MOMENTUM}\n    \
         epochs 2\n    batch 2\n    shuffle false\n}}\n"
    );
    let nn: PathBuf = dir.join("tiny.nn");
    std::fs::write(&nn, &src).expect("written");
    let t = |name: &str, shape: Vec<usize>, v: &[f64]| Tensor {
        name: name.into(),
        shape,
        data: v.iter().map(|&x| x as f32).collect(),
    };
    let init = Weights {
        tensors: vec![
            t("conv1.weight", vec![1, 1, 2, 2], &INIT[0..4]),
            t("conv1.bias", vec![1], &INIT[4..5]),
            t("dense1.weight", vec![1, 4], &INIT[5..9]),
            t("dense1.bias", vec![1], &INIT[9..10]),
        ],
    };
    let init_path = dir.join("init.safetensors");
    std::fs::write(&init_path, slope::train::weights::to_safetensors(&init)).expect("written");
    let out_path = dir.join("out.safetensors");
    let s = |p: &PathBuf| p.to_str().expect("UTF-8").to_string();
    let out = Command::cargo_bin("slope")
        .expect("built")
        .args([
            "train",
            &s(&nn),
            "--init",
            &s(&init_path),
            "--out",
            &s(&out_path),
            "--json",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (want, losses) = reference();
    let close = |got: f64, want: f64| (got - want).abs() <= 2e-6 * (1.0 + want.abs());
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let epochs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(epochs.len(), 2);
    for (e, want) in epochs.iter().zip(&losses) {
        let got = e["loss"].as_f64().expect("a loss");
        assert!(
            close(got, *want),
            "epoch {}: loss {got} vs {want}",
            e["epoch"]
        );
    }

    let (file, _) = slope::syntax::parse(&src);
    let (program, _) = slope::check::check(&file);
    let bytes = std::fs::read(&out_path).expect("weights written");
    let w = slope::train::weights::from_safetensors(&bytes, &program.models[0]).expect("valid");
    let got: Vec<f64> = ["conv1.weight", "conv1.bias", "dense1.weight", "dense1.bias"]
        .iter()
        .flat_map(|n| w.get(n).expect("every tensor").data.clone())
        .map(f64::from)
        .collect();
    assert_eq!(got.len(), 10);
    for (i, (g, p)) in got.iter().zip(want).enumerate() {
        assert!(
            close(*g, p),
            "parameter {i}: {g} vs {p} (all: {got:?} vs {want:?})"
        );
    }
    // Two epochs moved every parameter: the check is not of the init.
    for (i, (g, p)) in got.iter().zip(INIT).enumerate() {
        assert!((g - p).abs() > 1e-3, "parameter {i} did not move");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
