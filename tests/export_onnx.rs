//! `slope export` checked by a real ONNX client: every example and test
//! models covering every built-in activation, custom formulas (where,
//! comparisons, max/min, powers, abs/sqrt/exp/log/sin/cos), every kind
//! of loss and convolutional networks (strides, asymmetric 'same' pads,
//! windows that miss the last rows, no bias, max and average pooling) are exported, forward pass and gradient graph; Python's `onnx`
//! runs its full checker on each model and `onnxruntime` runs it; the
//! outputs must match `slope predict` (1e-5) and `slope grad --out` (1e-4
//! relative), and the exported `loss` a naive loss loop written here.
//!
//! The client is `tests/onnx/client.py`, run by the Python named in
//! `SLOPE_ONNX_PYTHON` (`.ci/run` makes a virtual environment with pinned
//! `onnx` and `onnxruntime` and sets it). Without it the test still
//! exports everything and checks the files' structure, says loudly that
//! the client did not run, and fails when `CI` is set: CI always runs it.

mod common;

use prost::Message;
use slope::export::proto::{ModelProto, type_proto};
use std::path::{Path, PathBuf};
use std::process::Command;

fn slope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_slope"))
        .args(args)
        .output()
        .expect("slope runs")
}

fn ok(args: &[&str]) -> String {
    let out = slope(args);
    assert!(
        out.status.success(),
        "slope {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The per-element (or per-row, for cross-entropy) loss, written out naively.
#[derive(Clone, Copy, Debug)]
enum LossKind {
    Mse,
    Bce,
    CrossEntropy,
    /// `where(abs(y - t) < 1, 0.5*(y - t)^2, abs(y - t) - 0.5)` (examples/custom.nn)
    Huber,
    /// `sqrt(1 + (y - t)^2) - 1`
    PseudoHuber,
}

/// The mean loss of predictions `y` (`rows × k`) against targets `t`.
fn naive_loss(kind: LossKind, y: &[f64], t: &[f32], k: usize) -> f64 {
    let rows = y.len() / k;
    let elem = |f: &dyn Fn(f64, f64) -> f64| -> f64 {
        y.iter()
            .zip(t)
            .map(|(&y, &t)| f(y, f64::from(t)))
            .sum::<f64>()
            / y.len() as f64
    };
    match kind {
        LossKind::Mse => elem(&|y, t| (y - t) * (y - t)),
        LossKind::Bce => elem(&|y, t| -(t * y.ln() + (1.0 - t) * (1.0 - y).ln())),
        LossKind::Huber => elem(&|y, t| {
            let d = (y - t).abs();
            if d < 1.0 { 0.5 * d * d } else { d - 0.5 }
        }),
        LossKind::PseudoHuber => elem(&|y, t| (1.0 + (y - t) * (y - t)).sqrt() - 1.0),
        LossKind::CrossEntropy => {
            let picked: f64 = (0..rows).map(|r| -y[r * k + t[r] as usize].ln()).sum();
            picked / rows as f64
        }
    }
}

/// One model to export: its file, weights, data and loss.
struct Case {
    name: String,
    nn: PathBuf,
    weights: PathBuf,
    data: PathBuf,
    loss: LossKind,
}

/// Test models beside the examples: every built-in activation, custom
/// formulas of every built-in function and comparison, every kind of loss.
const MODELS: &[(&str, &str, LossKind)] = &[
    (
        "acts1",
        "model acts1 {\n input 3\n dense 5 sigmoid\n dense 5 tanh\n dense 5 relu\n \
         dense 5 leaky_relu\n dense 5 elu\n dense 5 softplus\n dense 2\n loss mse\n}\n\
         train {\n data \"acts1.csv\" target=[t0, t1]\n}\n",
        LossKind::Mse,
    ),
    (
        "acts2",
        "model acts2 {\n input 3\n dense 6 softsign\n dense 6 swish\n dense 6 mish\n \
         dense 6 gelu\n dense 6 identity bias=false\n dense 3 softmax\n loss cross_entropy\n}\n\
         train {\n data \"acts2.csv\" target=class\n}\n",
        LossKind::CrossEntropy,
    ),
    (
        "formulas",
        "activation bumpy(x) = where(x > 0.5, x^2, -x) + max(x, 0.25) - min(x, -0.25) \
         + where(x <= -1, 1, 0) + where(x >= 1, x, 0) + where(x < 0, 0.5, x)\n\
         activation wavy(x) = sqrt(abs(x) + 1)*exp(-x^2/4) + log(1 + x^2) + sin(x)*cos(2*x) \
         + (abs(x) + 1)^1.5 + 2^x + x^3/10 - x/(2 + x^2)\n\
         loss pseudo_huber(y, t) = sqrt(1 + (y - t)^2) - 1\n\
         model formulas {\n input 3\n dense 5 bumpy\n dense 4 wavy\n dense 2\n loss pseudo_huber\n}\n\
         train {\n data \"formulas.csv\" target=[t0, t1]\n}\n",
        LossKind::PseudoHuber,
    ),
    (
        "bce2",
        "model bce2 {\n input 3\n dense 4 tanh\n dense 2 sigmoid\n loss bce\n}\n\
         train {\n data \"bce2.csv\" target=[t0, t1]\n}\n",
        LossKind::Bce,
    ),
    // Stride 2 with 'same' padding (pads 0 before, 1 after), a 2x2 'same'
    // convolution without bias (0 before, 1 after), average pooling.
    (
        "cnn_same",
        "model cnn_same {\n input 2x8x8\n conv 4 3x3 relu stride=2 padding=same\n \
         conv 3 2x2 tanh padding=same bias=false\n avgpool 2x2\n dense 3 softmax\n \
         loss cross_entropy\n}\ntrain {\n data \"cnn_same.csv\" target=class\n}\n",
        LossKind::CrossEntropy,
    ),
    // Stride 2 'valid' leaving a row and a column no window reaches, then
    // overlapping max pooling windows (stride 1) after relu: ties at zero.
    (
        "cnn_valid",
        "model cnn_valid {\n input 1x8x8\n conv 3 3x3 relu stride=2\n maxpool 2x2 stride=1\n \
         flatten\n dense 2\n loss mse\n}\ntrain {\n data \"cnn_valid.csv\" target=[t0, t1]\n}\n",
        LossKind::Mse,
    ),
    // Average pooling whose windows miss the last row and column (stride 2).
    (
        "cnn_avg",
        "model cnn_avg {\n input 3x6x6\n conv 2 3x3 elu\n avgpool 3x3 stride=2\n \
         dense 2 sigmoid\n loss bce\n}\ntrain {\n data \"cnn_avg.csv\" target=[t0, t1]\n}\n",
        LossKind::Bce,
    ),
];

/// A deterministic CSV of 37 rows: `features` features in [-2, 2] and the
/// targets the loss needs (class indices, 0/1, or real values).
fn write_data(path: &Path, loss: LossKind, features: usize, targets: usize) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut csv = (0..features)
        .map(|i| format!("f{i}"))
        .collect::<Vec<_>>()
        .join(",");
    match loss {
        LossKind::CrossEntropy => csv.push_str(",class"),
        _ => (0..targets).for_each(|i| csv.push_str(&format!(",t{i}"))),
    }
    csv.push('\n');
    for _ in 0..37 {
        let mut cells: Vec<String> = (0..features)
            .map(|_| format!("{:.4}", 4.0 * next() - 2.0))
            .collect();
        match loss {
            LossKind::CrossEntropy => cells.push(((next() * 3.0) as usize).min(2).to_string()),
            LossKind::Bce => {
                (0..targets).for_each(|_| cells.push(u8::from(next() > 0.5).to_string()))
            }
            _ => (0..targets).for_each(|_| cells.push(format!("{:.4}", 2.0 * next() - 1.0))),
        }
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    std::fs::write(path, csv).expect("the data is written");
}

/// Max pooling where ties decide the gradient: small-integer pixels and
/// kernels of 0.5s and 0/1 make many windows whose largest values are
/// equal (exactly, in float32) yet come from different pixels, so the
/// kernel's gradient depends on which one the pooling picks. slope picks
/// the first in row-major window order; the export must too.
fn tie_case(dir: &Path) -> Case {
    let src = "model ties {\n input 1x4x4\n conv 2 2x2 bias=false\n maxpool 3x3 stride=1\n \
               dense 1\n loss mse\n}\ntrain {\n data \"ties.csv\" target=t\n}\n";
    let nn = dir.join("ties.nn");
    std::fs::write(&nn, src).expect("the model is written");
    let mut csv = (0..16).map(|i| format!("f{i},")).collect::<String>() + "t\n";
    let mut state: u32 = 7;
    for row in 0..37 {
        for _ in 0..16 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            csv.push_str(&format!("{},", (state >> 16) % 3));
        }
        csv.push_str(&format!("{}\n", row % 5));
    }
    let data = dir.join("ties.csv");
    std::fs::write(&data, csv).expect("the data is written");
    let t = |name: &str, shape: Vec<usize>, data: Vec<f32>| slope::train::weights::Tensor {
        name: name.into(),
        shape,
        data,
    };
    let w = slope::train::weights::Weights {
        tensors: vec![
            t(
                "conv1.weight",
                vec![2, 1, 2, 2],
                vec![0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 0.0, 1.0],
            ),
            t("dense1.weight", vec![1, 2], vec![1.0, -0.5]),
            t("dense1.bias", vec![1], vec![0.25]),
        ],
    };
    let weights = dir.join("ties.safetensors");
    std::fs::write(&weights, slope::train::weights::to_safetensors(&w)).expect("written");
    Case {
        name: "ties".into(),
        nn,
        weights,
        data,
        loss: LossKind::Mse,
    }
}

/// The test models with data and freshly initialised weights, in `dir`.
fn test_models(dir: &Path) -> Vec<Case> {
    MODELS
        .iter()
        .map(|&(name, src, loss)| {
            let nn = dir.join(format!("{name}.nn"));
            std::fs::write(&nn, src).expect("the model is written");
            let (file, d) = slope::syntax::parse(src);
            assert!(d.is_empty(), "{name}: {d:?}");
            let (program, d) = slope::check::check(&file);
            assert!(d.is_empty(), "{name}: {d:?}");
            let model = &program.models[0];
            let data = dir.join(format!("{name}.csv"));
            let features = model.input.dims().iter().product();
            write_data(&data, loss, features, model.output_width());
            let w = slope::train::weights::init(model, 5);
            let weights = dir.join(format!("{name}.safetensors"));
            std::fs::write(&weights, slope::train::weights::to_safetensors(&w)).expect("written");
            Case {
                name: name.into(),
                nn,
                weights,
                data,
                loss,
            }
        })
        .collect()
}

fn example_cases(dir: &Path) -> Vec<Case> {
    let e = examples();
    let case = |name: &str, weights: &str, data: &str, loss| Case {
        name: name.into(),
        nn: e.join(format!("{name}.nn")),
        weights: common::trained_example_weights(weights, dir),
        data: e.join(data),
        loss,
    };
    vec![
        case("xor", "xor", "xor.csv", LossKind::Bce),
        case("iris", "iris", "iris.csv", LossKind::CrossEntropy),
        case("digits", "digits", "digits.csv", LossKind::CrossEntropy),
        case(
            "digits_image",
            "digits",
            "digits.csv",
            LossKind::CrossEntropy,
        ),
        case(
            "digits_cnn",
            "digits_cnn",
            "digits.csv",
            LossKind::CrossEntropy,
        ),
        case("custom", "custom", "iris_petal.csv", LossKind::Huber),
    ]
}

/// What slope itself says for a case, and the ONNX inputs.
struct Expected {
    forward: PathBuf,
    gradient: PathBuf,
    /// `slope predict --json` outputs, row-major.
    y: Vec<f64>,
    k: usize,
    /// `slope grad --out`: name, values.
    grads: Vec<(String, Vec<f32>)>,
    /// The ONNX inputs as JSON.
    x: serde_json::Value,
    t: serde_json::Value,
    targets: Vec<f32>,
}

fn expected(case: &Case, dir: &Path) -> Expected {
    let s = |p: &Path| p.to_str().expect("UTF-8 path").to_string();
    let forward = dir.join(format!("{}.onnx", case.name));
    let gradient = dir.join(format!("{}.grad.onnx", case.name));
    let (nn, w, data) = (s(&case.nn), s(&case.weights), s(&case.data));
    ok(&["export", &nn, "--weights", &w, "--out", &s(&forward)]);
    ok(&[
        "export",
        &nn,
        "--weights",
        &w,
        "--out",
        &s(&gradient),
        "--gradient",
    ]);
    let grad_file = dir.join(format!("{}.grad.safetensors", case.name));
    ok(&[
        "grad",
        &nn,
        "--weights",
        &w,
        "--data",
        &data,
        "--out",
        &s(&grad_file),
    ]);
    let mut y = Vec::new();
    let mut k = 0;
    for line in ok(&["predict", &nn, "--weights", &w, "--data", &data, "--json"]).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let row: Vec<f64> = serde_json::from_value(v["outputs"].clone()).expect("outputs");
        k = row.len();
        y.extend(row);
    }
    let bytes = std::fs::read(&grad_file).expect("gradient file");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let grads = st
        .names()
        .into_iter()
        .map(|n| {
            let v = st.tensor(n).expect("tensor");
            let data = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n.to_string(), data)
        })
        .collect();

    let src = std::fs::read_to_string(&case.nn).expect("model");
    let (file, _) = slope::syntax::parse(&src);
    let (program, _) = slope::check::check(&file);
    let model = &program.models[0];
    let spec = program
        .train
        .as_ref()
        .and_then(|t| t.data.clone())
        .expect("data statement");
    let text = std::fs::read_to_string(&case.data).expect("data");
    let ds = slope::data::load(&text, slope::diag::FileId(1), &spec, model).expect("valid data");
    let mut x_shape = vec![ds.rows];
    x_shape.extend(model.input.dims());
    let x = serde_json::json!({"dtype": "float32", "shape": x_shape, "data": ds.features});
    let t = match case.loss {
        LossKind::CrossEntropy => {
            let idx: Vec<i64> = ds.targets.iter().map(|&v| v as i64).collect();
            serde_json::json!({"dtype": "int64", "shape": [ds.rows], "data": idx})
        }
        _ => {
            serde_json::json!({"dtype": "float32", "shape": [ds.rows, ds.n_targets()], "data": ds.targets})
        }
    };
    Expected {
        forward,
        gradient,
        y,
        k,
        grads,
        x,
        t,
        targets: ds.targets,
    }
}

/// Checks what every export promises without an ONNX engine: the header,
/// the batch dimension, the weights as initializers, dense layers as Gemm.
fn check_structure(case: &Case, e: &Expected) {
    let m =
        ModelProto::decode(&*std::fs::read(&e.forward).expect("model")).expect("valid protobuf");
    assert_eq!(m.ir_version, Some(slope::export::IR_VERSION));
    assert_eq!(m.opset_import[0].version, Some(slope::export::OPSET));
    assert_eq!(m.producer_name.as_deref(), Some("slope"));
    let g = m.graph.expect("a graph");
    let names: Vec<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    for (n, _) in &e.grads {
        assert!(
            names.contains(&n.as_str()),
            "{}: no initializer {n}",
            case.name
        );
    }
    let Some(type_proto::Value::TensorType(x)) =
        g.input[0].r#type.as_ref().and_then(|t| t.value.clone())
    else {
        panic!("{}: x is not a tensor", case.name)
    };
    // [batch, features], or [batch, C, H, W] for an image input.
    let rank = e.x["shape"].as_array().expect("a shape").len();
    assert_eq!(
        x.shape.expect("shape").dim.len(),
        rank,
        "{}: x is [batch, ...input]",
        case.name
    );
    let gemms = g
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Gemm"))
        .count();
    assert!(gemms >= 1, "{}: dense layers are Gemm", case.name);
    let src = std::fs::read_to_string(&case.nn).expect("model");
    let convs = g
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Conv"))
        .count();
    assert_eq!(
        convs,
        src.matches("\n conv ").count() + src.matches("\n    conv ").count(),
        "{}: each conv layer is one Conv (its bias fused)",
        case.name
    );
    assert_eq!(g.output[0].name.as_deref(), Some("y"));
}

/// |a - b| within `tol` times max(|b|, floor).
fn close(a: f64, b: f64, tol: f64, floor: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(floor)
}

fn read_outputs(path: &Path) -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("the client wrote its outputs");
    serde_json::from_str(&text).expect("JSON outputs")
}

fn data(v: &serde_json::Value) -> Vec<f64> {
    serde_json::from_value(v["data"].clone()).expect("numbers")
}

/// Checks one case's ONNX outputs; returns the worst forward error and
/// the worst relative gradient error, for the summary.
fn compare(case: &Case, e: &Expected, dir: &Path) -> (f64, f64) {
    let mut worst = (0.0f64, 0.0f64);
    let fwd = read_outputs(&dir.join(format!("{}.out.json", case.name)));
    let y = data(&fwd["y"]);
    assert_eq!(
        y.len(),
        e.y.len(),
        "{}: y has the predictions' size",
        case.name
    );
    for (i, (a, b)) in y.iter().zip(&e.y).enumerate() {
        assert!(
            close(*a, *b, 1e-5, 1.0),
            "{}: y[{i}] onnx {a} vs slope predict {b}",
            case.name
        );
        worst.0 = worst.0.max((a - b).abs());
    }
    let grad = read_outputs(&dir.join(format!("{}.grad.out.json", case.name)));
    let loss = data(&grad["loss"])[0];
    let want = naive_loss(case.loss, &e.y, &e.targets, e.k);
    assert!(
        close(loss, want, 1e-4, 1e-6),
        "{}: loss onnx {loss} vs naive {want}",
        case.name
    );
    for (name, want) in &e.grads {
        let got = data(&grad[&format!("{name}.grad")]);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            // Relative error, with a floor of 1e-2 of the tensor's largest
            // element (so an absolute 1e-6 of it): near a trained optimum
            // float32 gradients are sums of cancelling terms and `p - t`
            // cancels too, so their error is absolute, not relative. On
            // trained iris, dense1.weight.grad[0] is -3.86187e-5 in f64;
            // slope says -3.86180e-5, onnxruntime -3.86434e-5 (2.5e-8 off,
            // with the tensor's largest element 0.19).
            let floor = (1e-2 * scale).max(1e-7);
            assert!(
                close(*a, f64::from(*b), 1e-4, floor),
                "{}: {name}.grad[{i}] onnx {a} vs slope grad {b}",
                case.name
            );
            worst.1 = worst
                .1
                .max((a - f64::from(*b)).abs() / f64::from(b.abs()).max(floor));
        }
    }
    worst
}

#[test]
fn every_example_and_activation_runs_in_onnxruntime() {
    let dir = std::env::temp_dir().join(format!("slope-export-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut cases = example_cases(&dir);
    cases.extend(test_models(&dir));
    cases.push(tie_case(&dir));
    let mut jobs = Vec::new();
    let mut all = Vec::new();
    for case in &cases {
        let e = expected(case, &dir);
        check_structure(case, &e);
        let s = |p: PathBuf| p.to_str().expect("UTF-8").to_string();
        jobs.push(serde_json::json!({
            "model": s(e.forward.clone()),
            "out": s(dir.join(format!("{}.out.json", case.name))),
            "inputs": {"x": e.x},
        }));
        jobs.push(serde_json::json!({
            "model": s(e.gradient.clone()),
            "out": s(dir.join(format!("{}.grad.out.json", case.name))),
            "inputs": {"x": e.x, "t": e.t},
        }));
        all.push(e);
    }
    let Some(python) = std::env::var_os("SLOPE_ONNX_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the ONNX client: .ci/run sets SLOPE_ONNX_PYTHON"
        );
        eprintln!(
            "NOT CHECKED: onnx/onnxruntime did not run (set SLOPE_ONNX_PYTHON to a Python \
             with onnx and onnxruntime, as .ci/run does); only the files' structure was checked"
        );
        return;
    };
    let jobs_file = dir.join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_string(&jobs).expect("JSON")).expect("jobs");
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx/client.py");
    let out = Command::new(python)
        .arg(client)
        .arg(&jobs_file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the ONNX client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    for (case, e) in cases.iter().zip(&all) {
        let (fwd, grad) = compare(case, e, &dir);
        eprintln!(
            "{:<14} worst |y - predict| {fwd:.1e}, worst gradient relative error {grad:.1e}",
            case.name
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
