//! Every `.nn` file under `tests/errors/` is a realistic mistake: syntax
//! errors directly in it (also snapshot by `tests/parse.rs`), checker and
//! data errors in `tests/errors/check/` (their CSVs in `check/data/`). Each
//! is run through `slope check` (the same code path users get, data loading
//! included) and the exit status and rendered diagnostics are snapshot-tested.

use assert_cmd::Command;

#[test]
fn every_error_file_is_reported() {
    insta::glob!("errors/**/*.nn", |path| {
        let dir = path.parent().expect("a globbed file has a directory");
        let name = path.file_name().expect("a globbed file has a name");
        let output = Command::cargo_bin("slope")
            .expect("the slope binary is built for integration tests")
            .current_dir(dir)
            .arg("check")
            .arg(name)
            .output()
            .expect("slope runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let code = output.status.code();
        assert_eq!(
            code,
            Some(1),
            "{name:?} must fail with exit 1:\n{stderr}{stdout}"
        );
        assert!(stdout.is_empty(), "{name:?} printed on stdout: {stdout}");
        assert!(!stderr.contains("panicked"), "{name:?} panicked:\n{stderr}");
        insta::assert_snapshot!(stderr);
    });
}
