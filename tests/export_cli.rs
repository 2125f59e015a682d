//! `slope export` on the command line: default paths, determinism, the
//! structure it promises (read back with the same protobuf messages), and
//! bad input — clear errors, exit 1, an existing file left byte-identical.
//! The numbers are checked by a real ONNX engine in `export_onnx.rs`.

mod common;

use prost::Message;
use slope::export::proto::ModelProto;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn slope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slope"))
        .args(args)
        .output()
        .expect("slope runs")
}

/// Weights for example `name`, trained once per test into `dir`.
fn weights(name: &str, dir: &Path) -> String {
    s(&common::trained_example_weights(name, dir)).to_string()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slope-export-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn decode(path: &Path) -> ModelProto {
    ModelProto::decode(&*std::fs::read(path).expect("the model was written")).expect("protobuf")
}

fn op_types(m: &ModelProto) -> Vec<String> {
    let g = m.graph.as_ref().expect("a graph");
    g.node.iter().filter_map(|n| n.op_type.clone()).collect()
}

#[test]
fn default_paths_sit_next_to_the_file_and_exports_are_deterministic() {
    let dir = temp_dir("default");
    let nn = dir.join("xor.nn");
    std::fs::copy(example("xor.nn"), &nn).expect("copy");
    let w = weights("xor", &dir);
    for gradient in [false, true] {
        let mut args = vec!["export", s(&nn), "--weights", &w];
        if gradient {
            args.push("--gradient");
        }
        let first = slope(&args);
        assert!(first.status.success(), "{}", stderr(&first));
        let path = dir.join(if gradient {
            "xor.grad.onnx"
        } else {
            "xor.onnx"
        });
        let bytes = std::fs::read(&path).expect("the default path");
        let stdout = String::from_utf8_lossy(&first.stdout);
        assert!(stdout.starts_with("wrote "), "{stdout}");
        assert!(slope(&args).status.success());
        assert_eq!(
            std::fs::read(&path).expect("again"),
            bytes,
            "same file, same bytes"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_forward_model_is_what_pytorch_would_export() {
    let dir = temp_dir("structure");
    let out = dir.join("xor.onnx");
    let o = slope(&[
        "export",
        &example("xor.nn"),
        "--weights",
        &weights("xor", &dir),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = decode(&out);
    assert_eq!(
        (m.ir_version, m.opset_import[0].version),
        (Some(9), Some(20))
    );
    assert_eq!(m.opset_import[0].domain.as_deref(), Some(""));
    assert_eq!(m.producer_name.as_deref(), Some("slope"));
    assert_eq!(
        m.producer_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(op_types(&m), ["Gemm", "Tanh", "Gemm", "Sigmoid"]);
    let g = m.graph.expect("graph");
    for n in g
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Gemm"))
    {
        assert_eq!(
            n.input[1..],
            [
                format!("{}.weight", &n.input[1][..6]),
                format!("{}.bias", &n.input[1][..6])
            ]
        );
        let trans_b: Vec<_> = n
            .attribute
            .iter()
            .filter(|a| a.name.as_deref() == Some("transB"))
            .collect();
        assert_eq!(trans_b.len(), 1);
        assert_eq!(trans_b[0].i, Some(1));
    }
    // The initializers are the weights file's tensors, bytes and all.
    let bytes = std::fs::read(weights("xor", &dir)).expect("weights");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    assert_eq!(g.initializer.len(), st.names().len());
    for t in &g.initializer {
        let name = t.name.as_deref().expect("named");
        let view = st.tensor(name).expect("same names");
        let dims: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        assert_eq!(t.dims, dims, "{name}");
        assert_eq!(t.raw_data.as_deref(), Some(view.data()), "{name}");
    }
    let outputs: Vec<_> = g.output.iter().filter_map(|o| o.name.clone()).collect();
    assert_eq!(outputs, ["y", "logits"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn image_inputs_keep_their_shape_and_are_flattened_in_the_graph() {
    let dir = temp_dir("image");
    let out = dir.join("d.onnx");
    let o = slope(&[
        "export",
        &example("digits_image.nn"),
        "--weights",
        &weights("digits", &dir),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = decode(&out);
    assert_eq!(op_types(&m)[0], "Flatten");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_gradient_graph_needs_no_train_block() {
    // The targets' shape follows from the model (its loss and output
    // width), so a file without a train block exports its gradient too.
    let dir = temp_dir("notrain");
    let nn = dir.join("m.nn");
    std::fs::write(
        &nn,
        "model xor {\n input 2\n dense 4 tanh\n dense 1 sigmoid\n loss bce\n}\n",
    )
    .expect("write");
    let out = dir.join("m.grad.onnx");
    let o = slope(&[
        "export",
        s(&nn),
        "--weights",
        &weights("xor", &dir),
        "--out",
        s(&out),
        "--gradient",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = decode(&out);
    let g = m.graph.expect("graph");
    let inputs: Vec<_> = g.input.iter().filter_map(|i| i.name.clone()).collect();
    assert_eq!(inputs[..2], ["x", "t"]);
    let outputs: Vec<_> = g.output.iter().filter_map(|o| o.name.clone()).collect();
    assert_eq!(
        outputs,
        [
            "loss",
            "dense1.weight.grad",
            "dense1.bias.grad",
            "dense2.weight.grad",
            "dense2.bias.grad"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a failing export whose `--out` is an existing file and checks the
/// exit status, the message, and that the file is byte-identical.
fn fails_keeping(args: &[&str], out: &Path, code: i32, message: &str) {
    std::fs::write(out, b"previous contents").expect("write");
    let mut all = args.to_vec();
    all.extend(["--out", s(out)]);
    let o = slope(&all);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
    assert_eq!(
        std::fs::read(out).expect("still there"),
        b"previous contents"
    );
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_the_old_file() {
    let dir = temp_dir("bad");
    let out = dir.join("old.onnx");
    let iris = example("iris.nn");
    let xor_w = weights("xor", &dir);
    fails_keeping(
        &["export", &iris, "--weights", &xor_w],
        &out,
        1,
        "do not fit model 'iris'",
    );
    fails_keeping(
        &["export", &iris, "--weights", &xor_w, "--gradient"],
        &out,
        1,
        "has shape [4, 2], the model needs [8, 4]",
    );
    let missing = dir.join("nope.safetensors");
    fails_keeping(
        &["export", &iris, "--weights", s(&missing)],
        &out,
        1,
        "cannot read weights",
    );
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not safetensors").expect("write");
    fails_keeping(
        &["export", &iris, "--weights", s(&garbage)],
        &out,
        1,
        "not a valid safetensors file",
    );
    let bad_nn = dir.join("bad.nn");
    std::fs::write(&bad_nn, "model m {\n input 2\n dense 0\n loss mse\n}\n").expect("write");
    fails_keeping(
        &["export", s(&bad_nn), "--weights", &xor_w],
        &out,
        1,
        "bad.nn:3:",
    );

    // Where the file cannot be written: nothing is left behind.
    let iris_w = weights("iris", &dir);
    let nowhere = dir.join("missing-dir").join("m.onnx");
    let o = slope(&["export", &iris, "--weights", &iris_w, "--out", s(&nowhere)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    assert!(!nowhere.parent().expect("parent").exists());
    let o = slope(&["export", &iris, "--weights", &iris_w, "--out", s(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.iter().all(|n| !n.to_string_lossy().contains(".tmp")),
        "{left:?}"
    );

    // Usage errors are exit 2.
    assert_eq!(slope(&["export", &iris]).status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_library_checks_the_weights_it_is_given() {
    use slope::export::{ExportError, ParamValue, forward, gradient};
    let src = "model m {\n input 2\n dense 1 sigmoid\n loss bce\n}\n";
    let (file, _) = slope::syntax::parse(src);
    let (program, d) = slope::check::check(&file);
    assert!(d.is_empty());
    let model = &program.models[0];
    let (w, b) = ([0.5f32, -0.5], [0.1f32]);
    let p = |name, shape, data| ParamValue { name, shape, data };
    let good = [
        p("dense1.weight", &[1, 2][..], &w[..]),
        p("dense1.bias", &[1][..], &b[..]),
    ];
    assert!(forward(&program, model, &good).is_ok());
    assert!(gradient(&program, model, &good).is_ok());
    let cases: [(&[ParamValue], &str); 4] = [
        (&good[..1], "'dense1.bias' is missing"),
        (
            &[good[0], good[1], p("extra", &[1][..], &b[..])],
            "unexpected tensor 'extra'",
        ),
        (
            &[p("dense1.weight", &[2, 1][..], &w[..]), good[1]],
            "has shape [2, 1]",
        ),
        (
            &[p("dense1.weight", &[1, 2][..], &b[..]), good[1]],
            "has 1 values for shape [1, 2]",
        ),
    ];
    for (params, message) in cases {
        match forward(&program, model, params) {
            Err(ExportError::Weights(why)) => assert!(why.contains(message), "{why}"),
            other => panic!("expected a weights error with {message:?}, got {other:?}"),
        }
    }
}
