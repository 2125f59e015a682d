//! Layers as kinds and `input` as a shape, end to end: an image input
//! (`input 1x8x8`) checks, prints, formats and trains exactly like the
//! flat input of the same size, and `init=standard` is accepted.

use assert_cmd::Command;
use std::path::Path;

/// Runs `slope ARGS` from the crate root; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("slope")
        .expect("the slope binary is built for integration tests")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("slope runs");
    (
        out.status.code().expect("slope exits normally"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_image_input_is_summarised_with_its_shape() {
    let (code, stdout, stderr) = run(&["check", "examples/digits_image.nn"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(
            "model digits_image: 1x8x8 input (64 features) -> 10 outputs, 2,410 parameters\n"
        ),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["check", "examples/digits_image.nn", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(v["inputs"], 64);
    assert_eq!(v["input_shape"], serde_json::json!([1, 8, 8]));
    assert_eq!(v["layers"][0]["inputs"], 64);
    // A flat input has no shape key: its JSON is as it always was.
    let (_, stdout, _) = run(&["check", "examples/digits.nn", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(v.get("input_shape").is_none());
}

/// Trains `file` for two epochs; returns the JSON lines without timings
/// and the weights file's bytes.
fn train(file: &str, out: &Path) -> (Vec<serde_json::Value>, Vec<u8>) {
    let (code, stdout, stderr) = run(&[
        "train",
        file,
        "--epochs",
        "2",
        "--json",
        "--quiet",
        "--out",
        out.to_str().expect("a UTF-8 temp path"),
    ]);
    assert_eq!(code, 0, "{file}: {stderr}");
    let lines = stdout
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("JSON lines");
            v.as_object_mut().expect("an object").remove("seconds");
            v
        })
        .collect();
    (lines, std::fs::read(out).expect("weights written"))
}

#[test]
fn an_image_input_trains_like_its_flat_features() {
    let dir = std::env::temp_dir().join(format!("slope-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let flat = train("examples/digits.nn", &dir.join("flat.safetensors"));
    let image = train("examples/digits_image.nn", &dir.join("image.safetensors"));
    assert_eq!(flat.0.len(), 2);
    assert_eq!(flat.0, image.0, "the same losses and accuracies");
    assert!(flat.1 == image.1, "the same weights, byte for byte");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sizes_format_as_written() {
    let src = "model m {\n  input   1x8x8\n  dense 2 tanh init=standard\n  loss mse\n}\n";
    let (file, diags) = slope::syntax::parse(src);
    assert!(diags.is_empty(), "{diags:?}");
    let text = slope::syntax::fmt::format(&file, src);
    assert!(text.contains("    input 1x8x8\n"), "{text}");
    assert!(text.contains("dense 2 tanh init=standard"), "{text}");
}

#[test]
fn standard_init_is_shown_in_the_summary() {
    let dir = std::env::temp_dir().join(format!("slope-layers-std-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("standard.nn");
    let src =
        "model m {\n    input 2\n    dense 4 relu init=standard\n    dense 1\n    loss mse\n}\n";
    std::fs::write(&file, src).expect("write the model");
    let (code, stdout, stderr) = run(&["check", file.to_str().expect("UTF-8 path")]);
    assert_eq!(code, 0, "{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("dense1"))
        .expect("a row for dense1");
    assert!(row.contains("relu        standard"), "{row}");
    let _ = std::fs::remove_dir_all(&dir);
}
