//! The portable kernels (4-lane Cranelift code and the `gemm` crate), which
//! a CPU without AVX-512 runs, checked on every machine.
//!
//! On an AVX-512 machine the other test binaries exercise the AVX-512 host
//! kernels only. This binary includes the kernel test suites and, from its
//! one driver test, runs itself again with `SLOPE_PORTABLE_KERNELS` set, so
//! the same checks (JIT against the f64 interpreter, with tails) run on the
//! portable path; then it trains the bundled examples through the binary on
//! that path and holds them to the same accuracy bars.

#[path = "matmul_shapes.rs"]
mod matmul_shapes;
#[path = "row_kernels.rs"]
mod row_kernels;

use assert_cmd::Command;
use slope::codegen::gemm::PORTABLE_KERNELS_VAR;

#[test]
fn the_kernel_suites_pass_on_the_portable_path() {
    if std::env::var_os(PORTABLE_KERNELS_VAR).is_some() {
        // This is the inner run: the included suites are the checks.
        return;
    }
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let out = std::process::Command::new(exe)
        .env(PORTABLE_KERNELS_VAR, "1")
        .arg("--test-threads=2")
        .output()
        .expect("the test binary runs again");
    assert!(
        out.status.success(),
        "portable kernels failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Final training accuracy from `slope train --json` (the last epoch's line).
fn final_accuracy(file: &str) -> (f64, Option<f64>) {
    let dir = std::env::temp_dir().join(format!("slope-portable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join(format!("{}.safetensors", file.replace(['/', '.'], "_")));
    let assert = Command::cargo_bin("slope")
        .expect("the slope binary is built")
        .env(PORTABLE_KERNELS_VAR, "1")
        .args(["train", file, "--json", "--quiet", "--out"])
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let last = stdout.lines().last().expect("one line per epoch");
    let v: serde_json::Value = serde_json::from_str(last).expect("JSON lines");
    (
        v["accuracy"].as_f64().expect("classification"),
        v["val_accuracy"].as_f64(),
    )
}

#[test]
fn the_examples_train_to_their_accuracy_on_the_portable_path() {
    if std::env::var_os(PORTABLE_KERNELS_VAR).is_some() {
        return;
    }
    assert_eq!(final_accuracy("examples/xor.nn").0, 1.0);
    let (train, val) = final_accuracy("examples/digits.nn");
    assert!(train >= 0.97, "digits train accuracy {train}");
    assert!(
        val.expect("digits holds out rows") >= 0.94,
        "digits validation accuracy {val:?}"
    );
}
