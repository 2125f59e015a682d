//! `slope train --flow/--report` and `slope compare` from the command line:
//! the theory of the vanishing gradient on examples/deep.nn, byte-identical
//! weights, the report directory, and every bad input.

use assert_cmd::Command;
use serde_json::Value;
use std::path::Path;

fn slope() -> Command {
    Command::cargo_bin("slope").unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("slope-flow-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `compare --json` objects of examples/deep.nn.
fn compare(acts: &str, init: &str, epochs: &str) -> Vec<Value> {
    let out = slope()
        .args([
            "compare",
            "examples/deep.nn",
            "--activation",
            acts,
            "--init",
            init,
        ])
        .args(["--epochs", epochs, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The per-layer gains δ_l / δ_(l+1) between hidden layers at epoch 0.
fn gains(runs: &[Value], act: &str) -> (f64, Vec<f64>) {
    let o = runs
        .iter()
        .find(|o| o["activation"] == act && o["epoch"] == 0)
        .unwrap();
    let d: Vec<f64> = (o["layers"].as_array().unwrap().iter())
        .map(|l| l["delta_rms"].as_f64().unwrap())
        .collect();
    assert_eq!(d.len(), 6);
    (
        o["flow"].as_f64().unwrap(),
        (0..4).map(|l| d[l] / d[l + 1]).collect(),
    )
}

#[test]
fn theory_of_the_vanishing_gradient_holds_at_init() {
    // Theory: gain ≈ sqrt(n·Var[W]·E[f'(z)²]); standard init n·Var[W] = 1/3.
    let runs = compare("sigmoid,tanh,relu", "standard", "1");
    let (flow, g) = gains(&runs, "sigmoid");
    assert!(
        g.iter().all(|&g| (0.08..0.25).contains(&g)),
        "sigmoid gains {g:?}, theory 0.14"
    );
    assert!(flow < 1e-3, "sigmoid flow {flow}");
    let (flow, g) = gains(&runs, "tanh");
    assert!(
        g.iter().all(|&g| (0.4..0.8).contains(&g)),
        "tanh gains {g:?}, theory 0.58"
    );
    assert!((1e-3..0.3).contains(&flow), "tanh flow {flow}");
    let (_, g) = gains(&runs, "relu");
    assert!(
        g.iter().all(|&g| (0.28..0.55).contains(&g)),
        "relu/standard gains {g:?}, theory 0.41"
    );
    // He init for relu: n·Var[W] = 2, E[f'²] = 1/2, gain ≈ 1.
    let runs = compare("relu", "auto", "1");
    let (flow, g) = gains(&runs, "relu");
    assert!(
        g.iter().all(|&g| (0.75..1.35).contains(&g)),
        "relu/he gains {g:?}, theory 1"
    );
    assert!(flow > 0.05, "relu/he flow {flow}");
}

#[test]
fn sigmoid_with_standard_init_stalls_where_relu_with_he_learns() {
    let last = |runs: &[Value]| runs.last().unwrap()["accuracy"].as_f64().unwrap();
    let sigmoid = last(&compare("sigmoid", "standard", "4"));
    let relu = last(&compare("relu", "auto", "4"));
    assert!(sigmoid < 0.3, "sigmoid/standard accuracy {sigmoid}");
    assert!(relu > 0.85, "relu/he accuracy {relu}");
}

#[test]
fn flow_writes_the_same_weights_and_a_whole_report() {
    let dir = tmp("same");
    let (a, b, rep) = (
        dir.join("a.safetensors"),
        dir.join("b.safetensors"),
        dir.join("rep"),
    );
    let run = |extra: &[&str], out: &Path| {
        let o = slope()
            .args([
                "train",
                "examples/digits.nn",
                "--epochs",
                "3",
                "--quiet",
                "--json",
                "--out",
            ])
            .arg(out)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let plain = run(&[], &a);
    let flowed = run(&["--report", rep.to_str().unwrap(), "--probe", "100"], &b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let objects: Vec<Value> = flowed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 4);
    let keys = |o: &Value| o.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&objects[0]), ["epoch", "flow", "layers", "probe_loss"]);
    assert_eq!(
        keys(&objects[0]["layers"][0]),
        [
            "act_mean",
            "act_std",
            "dead",
            "delta_rms",
            "grad_max_abs",
            "grad_rms",
            "name",
            "saturated",
            "update_ratio"
        ]
    );
    assert!(objects[0]["layers"][0]["update_ratio"].is_null());
    assert!(objects[1]["layers"][0]["update_ratio"].as_f64().unwrap() > 0.0);
    assert!(objects[1]["layers"][1]["saturated"].is_null(), "softmax");
    // The epoch objects are the plain run's, plus the probe's keys.
    for (p, f) in plain.lines().zip(&objects[1..]) {
        let p: Value = serde_json::from_str(p).unwrap();
        for (k, v) in p.as_object().unwrap() {
            if k != "seconds" {
                assert_eq!(&f[k], v, "{k}");
            }
        }
    }
    let mut files: Vec<String> = std::fs::read_dir(&rep)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "depth.svg",
            "flow.svg",
            "index.html",
            "loss.svg",
            "saturation.svg"
        ]
    );
    let html = std::fs::read_to_string(rep.join("index.html")).unwrap();
    assert!(
        html.contains("dense1") && html.contains("δ"),
        "summary and equations"
    );
    assert!(!html.contains("<script"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let dir = tmp("bad");
    let out = dir.join("w.safetensors");
    let code = |args: &[&str]| {
        let o = slope().args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let o = out.to_str().unwrap();
    let (c, e) = code(&[
        "train",
        "examples/xor.nn",
        "--flow",
        "--probe",
        "0",
        "--out",
        o,
    ]);
    assert_eq!(c, Some(2), "{e}");
    assert!(e.contains("--probe"));
    let (c, e) = code(&["train", "examples/xor.nn", "--probe", "5", "--out", o]);
    assert_eq!(c, Some(2), "{e}");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (c, e) = code(&[
        "train",
        "examples/xor.nn",
        "--report",
        file.to_str().unwrap(),
        "--out",
        o,
    ]);
    assert_eq!(c, Some(1), "{e}");
    assert!(e.contains("is a file"), "{e}");
    let nowhere = dir.join("no/such/dir");
    let (c, e) = code(&[
        "train",
        "examples/xor.nn",
        "--report",
        nowhere.to_str().unwrap(),
        "--out",
        o,
    ]);
    assert_eq!(c, Some(1), "{e}");
    assert!(e.contains("does not exist"), "{e}");
    assert!(!out.exists(), "nothing written");
    for (acts, why) in [
        ("relu,softmax", "not element-wise"),
        ("relu,nope", "unknown activation `nope`"),
    ] {
        let (c, e) = code(&["compare", "examples/xor.nn", "--activation", acts]);
        assert_eq!(c, Some(2), "{e}");
        assert!(e.contains(why), "{e}");
    }
    let (c, e) = code(&[
        "compare",
        "examples/xor.nn",
        "--activation",
        "relu",
        "--init",
        "zeros",
    ]);
    assert_eq!(c, Some(2), "{e}");
    // No rows left for training: one data row, validation holds it out.
    let nn = dir.join("one.nn");
    std::fs::write(dir.join("one.csv"), "a,y\n1,0\n").unwrap();
    std::fs::write(&nn, "model m {\n input 1\n dense 1 sigmoid\n loss bce\n}\ntrain {\n data \"one.csv\" target=y\n validation 0.9\n}\n").unwrap();
    let (c, e) = code(&["train", nn.to_str().unwrap(), "--flow", "--out", o]);
    assert_eq!(c, Some(1), "{e}");
    assert!(e.contains("no rows are left for training"), "{e}");
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_table_and_the_warning_name_the_derivative() {
    let dir = tmp("warn");
    let csv = std::fs::canonicalize("examples/digits.csv").unwrap();
    let nn = dir.join("deep.nn");
    let hidden = "    dense 64 sigmoid init=standard\n".repeat(4);
    std::fs::write(
        &nn,
        format!(
            "model d {{\n    input 64\n{hidden}    dense 10 softmax\n    loss cross_entropy\n}}\n\
             train {{\n    data \"{}\" target=class\n    optimizer sgd lr=0.05\n    epochs 1\n}}\n",
            csv.display()
        ),
    )
    .unwrap();
    let out = dir.join("w.safetensors");
    let o = slope()
        .arg("train")
        .arg(&nn)
        .arg("--flow")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("layer   activation  δ rms @0  δ rms @1"),
        "{err}"
    );
    assert!(err.contains("dense4  sigmoid"), "{err}");
    assert!(
        err.contains("warning: the back-propagated signal vanishes"),
        "{err}"
    );
    assert!(err.contains("sigmoid′ ≤ 0.250: the signal shrinks about 4× per sigmoid layer (layers dense1, dense2, dense3, dense4); try relu with init=he"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A CNN's pooling and flatten layers have no parameters and are not
/// measured; the measured layers keep their own statistics (the conv after a
/// pool is not given the pool's, nor the softmax layer the conv's).
#[test]
fn cnn_layers_after_pooling_keep_their_own_statistics() {
    let dir = tmp("cnn");
    let nn = dir.join("cnn.nn");
    let csv = std::fs::read_to_string("examples/digits.csv").unwrap();
    let head: String = csv.lines().take(101).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("d.csv"), head).unwrap();
    std::fs::write(
        &nn,
        "model m {\n input 1x8x8\n conv 4 3x3 tanh\n maxpool 2x2\n conv 4 2x2 relu\n flatten\n dense 10 softmax\n loss cross_entropy\n}\n\
         train {\n data \"d.csv\" target=class\n epochs 1\n batch 20\n}\n",
    )
    .unwrap();
    let out = slope()
        .args(["train", nn.to_str().unwrap(), "--flow", "--json", "--quiet"])
        .arg("--out")
        .arg(dir.join("w.safetensors"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let layers = first["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["conv1", "conv2", "dense1"]);
    for l in &layers[..2] {
        assert!(l["delta_rms"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["saturated"].as_f64().is_some(), "{l}");
    }
    assert!(
        layers[2]["saturated"].is_null(),
        "softmax has no saturation: {}",
        layers[2]
    );
}
