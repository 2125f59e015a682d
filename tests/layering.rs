//! The architecture invariant of the code map: imports follow the pipeline.
//!
//! Each stage may use only the stages before it (and `diag`, the shared
//! diagnostics sink); nothing imports `cli`. A stage that reaches forward
//! makes the pipeline impossible to test stage by stage, so this test reads
//! every `crate::` path in `src/` and fails on one that goes the wrong way.

use std::collections::BTreeSet;
use std::path::Path;

/// Each module and the crate modules it may name.
const ALLOWED: &[(&str, &[&str])] = &[
    ("diag", &[]),
    ("syntax", &["diag"]),
    ("check", &["diag", "syntax"]),
    ("data", &["diag", "syntax", "check"]),
    ("graph", &["diag"]),
    ("lower", &["diag", "syntax", "check", "graph"]),
    ("diff", &["diag", "graph"]),
    ("simplify", &["diag", "graph"]),
    ("codegen", &["diag", "graph"]),
    (
        "pipeline",
        &[
            "diag", "syntax", "check", "graph", "lower", "diff", "simplify",
        ],
    ),
    (
        "derivative",
        &[
            "diag", "syntax", "check", "graph", "lower", "diff", "simplify",
        ],
    ),
    (
        "equations",
        &[
            "diag", "syntax", "check", "graph", "lower", "diff", "simplify", "pipeline",
        ],
    ),
    (
        "export",
        &[
            "diag", "syntax", "check", "graph", "lower", "diff", "simplify", "pipeline",
        ],
    ),
    (
        "train",
        &[
            "diag", "syntax", "check", "data", "graph", "lower", "diff", "simplify", "pipeline",
            "codegen",
        ],
    ),
    (
        "report",
        &[
            "diag", "syntax", "check", "data", "graph", "lower", "diff", "simplify", "pipeline",
            "codegen", "train",
        ],
    ),
];

fn crate_paths(dir: &Path, found: &mut BTreeSet<(String, String)>) {
    let entries = std::fs::read_dir(dir).expect("src/ is readable");
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            crate_paths(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source is UTF-8");
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                for name in top_names(rest) {
                    found.insert((path.display().to_string(), name));
                }
            }
        }
    }
}

/// The modules named right after `crate::`: one name, or each name of a
/// `{a, b::c, d}` group (nested groups are skipped, they are below a name).
fn top_names(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let mut names = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// The top-level module a file of `src/` belongs to.
fn module_of(file: &str) -> String {
    let rel = file.trim_start_matches("src/");
    rel.split(['/', '.']).next().unwrap_or("").to_string()
}

#[test]
fn imports_follow_the_pipeline() {
    let mut found = BTreeSet::new();
    crate_paths(Path::new("src"), &mut found);
    let mut wrong = Vec::new();
    for (file, used) in &found {
        let module = module_of(file);
        if used == "cli" && module != "cli" {
            wrong.push(format!("{file} imports cli"));
        }
        // `cli` may use every stage; `lib.rs` and `main.rs` only declare them.
        if ["cli", "lib", "main"].contains(&module.as_str()) {
            continue;
        }
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == module) else {
            wrong.push(format!("{file}: module `{module}` has no row in ALLOWED"));
            continue;
        };
        if used != &module && !allowed.contains(&used.as_str()) {
            wrong.push(format!("{file} (stage `{module}`) uses crate::{used}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the pipeline:\n{}",
        wrong.join("\n")
    );
}
