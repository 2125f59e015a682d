//! `slope check` end to end: the summaries of every example (snapshots),
//! `--json`, `--model`, and the exit statuses 0, 1 and 2.

use assert_cmd::Command;

fn slope() -> Command {
    Command::cargo_bin("slope").expect("the slope binary is built for integration tests")
}

/// Runs `slope ARGS` from the crate root; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = slope()
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
fn example_summaries() {
    insta::glob!("../examples", "*.nn", |path| {
        let name = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
        let (code, stdout, stderr) = run(&["check", &name]);
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(stderr.is_empty(), "{name}: {stderr}");
        insta::assert_snapshot!(stdout);
    });
}

#[test]
fn digits_has_2410_parameters() {
    let (code, stdout, _) = run(&["check", "examples/digits.nn"]);
    assert_eq!(code, 0);
    // 64*32 + 32 + 32*10 + 10
    assert!(stdout.starts_with("model digits: 64 inputs -> 10 outputs, 2,410 parameters\n"));
}

#[test]
fn json_summary() {
    let (code, stdout, stderr) = run(&["check", "examples/xor.nn", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("check --json prints JSON");
    assert_eq!(value["parameters"], 17);
    assert_eq!(value["layers"][0]["params"], 12);
    assert_eq!(value["data"]["rows"], 4);
    insta::assert_snapshot!(stdout);
}

#[test]
fn model_selection() {
    let file = "tests/check_cases/two_models.nn";
    let (code, _, stderr) = run(&["check", file]);
    assert_eq!(code, 2, "a missing --model is a usage error");
    insta::assert_snapshot!("missing_model", stderr);

    let (code, _, stderr) = run(&["check", file, "--model", "wdie"]);
    assert_eq!(code, 2, "an unknown --model is a usage error");
    insta::assert_snapshot!("unknown_model", stderr);

    let (code, stdout, stderr) = run(&["check", file, "--model", "wide"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("chosen_model", stdout);
}

#[test]
fn unreadable_files_fail_with_exit_1() {
    let (code, stdout, stderr) = run(&["check", "tests/no_such_file.nn"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert_eq!(
        stderr,
        "error: cannot read 'tests/no_such_file.nn': No such file or directory\n"
    );

    let (code, _, stderr) = run(&["check", "tests/errors/check/dense_four.nn"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--> tests/errors/check/dense_four.nn:4:11"),
        "{stderr}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let (code, _, _) = run(&["check"]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&["check", "examples/xor.nn", "--bogus"]);
    assert_eq!(code, 2);
}
