//! The `train { ... }` block (spec §6): data, optimizer and schedule, with
//! every default filled in and marked as such.

use super::TRAIN_STATEMENTS;
use super::model::{DataSpec, Optimizer, Setting, TrainConfig};
use super::values::{Range, Seen, boolean, choice, describe, options, positional, real, whole};
use crate::diag::{Diagnostic, Span, suggest};
use crate::syntax::ast::{Block, Stmt, Value, ValueKind};

/// The largest epoch count and batch size accepted.
const MAX_COUNT: u64 = u32::MAX as u64;

/// Checks a `train` block; every setting not given takes the spec's default.
pub(super) fn check_train(block: &Block, diags: &mut Vec<Diagnostic>) -> TrainConfig {
    let mut config = TrainConfig {
        data: None,
        validation: Setting::default(0.0),
        optimizer: Optimizer::default(),
        epochs: Setting::default(10),
        batch: Setting::default(32),
        shuffle: Setting::default(true),
        seed: Setting::default(0),
        span: block.span,
    };
    let mut seen = Seen::default();
    let mut data_seen = false;
    for stmt in &block.stmts {
        let keyword = stmt.keyword.name.as_str();
        if !TRAIN_STATEMENTS.contains(&keyword) {
            diags.push(unknown_statement(stmt, keyword));
            continue;
        }
        if !seen.first(stmt, "the train block", diags) {
            continue;
        }
        match keyword {
            "data" => {
                data_seen = true;
                config.data = check_data(stmt, diags);
            }
            "optimizer" => {
                if let Some(opt) = check_optimizer(stmt, diags) {
                    config.optimizer = opt;
                }
            }
            _ => check_simple(stmt, keyword, &mut config, diags),
        }
    }
    if !data_seen {
        diags.push(
            Diagnostic::error(
                "the train block has no 'data' statement",
                block.keyword.span,
            )
            .with_label("no data to train on")
            .with_help("add a data statement, such as: data \"train.csv\" target=y"),
        );
    }
    config
}

fn unknown_statement(stmt: &Stmt, keyword: &str) -> Diagnostic {
    let mut d = Diagnostic::error(
        format!("unknown statement '{keyword}' in the train block"),
        stmt.keyword.span,
    )
    .with_label("not a train statement");
    if Optimizer::ALL_OPTIONS.contains(&keyword) {
        d = d.with_help(format!(
            "'{keyword}' is an option of the optimizer: optimizer sgd {keyword}=..."
        ));
    } else if ["input", "dense", "loss"].contains(&keyword) {
        d = d.with_help(format!("'{keyword}' belongs in a model block"));
    } else if let Some(s) = suggest(keyword, TRAIN_STATEMENTS) {
        d = d.with_help(format!("did you mean '{s}'?"));
    }
    d.with_note(format!(
        "the train block takes {}",
        TRAIN_STATEMENTS.join(", ")
    ))
}

/// `validation`, `epochs`, `batch`, `shuffle` and `seed`: one value, no options.
fn check_simple(stmt: &Stmt, keyword: &str, config: &mut TrainConfig, diags: &mut Vec<Diagnostic>) {
    options(stmt, &[], &[], diags);
    let usage = match keyword {
        "validation" => "validation F (0 <= F < 1)",
        "epochs" => "epochs N",
        "batch" => "batch N",
        "shuffle" => "shuffle true|false",
        _ => "seed N",
    };
    let Some(values) = positional(stmt, 1, 1, usage, diags) else {
        return;
    };
    let v = &values[0];
    match keyword {
        "validation" => {
            if let Some(f) = real(v, "validation fraction", Range::UnitOpen, diags) {
                config.validation = Setting::given(f);
            }
        }
        "epochs" => {
            if let Some(n) = whole(v, "epoch count", 1, MAX_COUNT, diags) {
                config.epochs = Setting::given(n as usize);
            }
        }
        "batch" => {
            if let Some(n) = whole(v, "batch size", 1, MAX_COUNT, diags) {
                config.batch = Setting::given(n as usize);
            }
        }
        "shuffle" => {
            if let Some(b) = boolean(v, "shuffle setting", diags) {
                config.shuffle = Setting::given(b);
            }
        }
        _ => {
            if let Some(n) = whole(v, "seed", 0, u64::MAX, diags) {
                config.seed = Setting::given(n);
            }
        }
    }
}

fn check_data(stmt: &Stmt, diags: &mut Vec<Diagnostic>) -> Option<DataSpec> {
    const USAGE: &str = "data \"FILE.csv\" target=COLUMN";
    let opts = options(stmt, &["target"], &[], diags);
    let values = positional(stmt, 1, 1, USAGE, diags)?;
    let path_value = &values[0];
    let path = match &path_value.kind {
        ValueKind::Str(s) if !s.is_empty() => Some(s.clone()),
        ValueKind::Str(_) => {
            diags.push(
                Diagnostic::error("the data path is empty", path_value.span)
                    .with_label("empty path")
                    .with_help(format!("write it as: {USAGE}")),
            );
            None
        }
        _ => {
            diags.push(
                Diagnostic::error(
                    format!("invalid data path {}", describe(path_value)),
                    path_value.span,
                )
                .with_label("expected a quoted path")
                .with_help("put the path in double quotes, such as: data \"xor.csv\" target=y"),
            );
            None
        }
    };
    let Some(target) = opts.iter().find(|o| o.key.name == "target") else {
        diags.push(
            Diagnostic::error("'data' needs target=COLUMN", stmt.span)
                .with_label("which columns are the targets?")
                .with_help("name the target column, such as target=y, or several: target=[y1, y2]")
                .with_note("every column that is not a target is an input feature"),
        );
        return None;
    };
    let targets = check_targets(&target.value, diags)?;
    Some(DataSpec {
        path: path?,
        targets: targets.iter().map(|(n, _)| n.clone()).collect(),
        span: stmt.span,
        path_span: path_value.span,
        target_spans: targets.iter().map(|(_, s)| *s).collect(),
    })
}

/// `target=y`, `target="petal width"` or `target=[y1, y2]`.
fn check_targets(value: &Value, diags: &mut Vec<Diagnostic>) -> Option<Vec<(String, Span)>> {
    let column = |v: &Value, diags: &mut Vec<Diagnostic>| match &v.kind {
        ValueKind::Ident(n) | ValueKind::Str(n) => Some((n.clone(), v.span)),
        _ => {
            diags.push(
                Diagnostic::error(format!("invalid target column {}", describe(v)), v.span)
                    .with_label("expected a column name")
                    .with_help(
                        "write the column's header, such as target=y or target=\"petal width\"",
                    ),
            );
            None
        }
    };
    let ValueKind::List(items) = &value.kind else {
        return column(value, diags).map(|c| vec![c]);
    };
    if items.is_empty() {
        diags.push(
            Diagnostic::error("the target list is empty", value.span)
                .with_label("no columns")
                .with_help("name at least one column, such as target=[y]"),
        );
        return None;
    }
    let mut out: Vec<(String, Span)> = Vec::new();
    let mut ok = true;
    for item in items {
        match column(item, diags) {
            Some((name, span)) => {
                if let Some((_, first)) = out.iter().find(|(n, _)| *n == name) {
                    diags.push(
                        Diagnostic::error(format!("target column '{name}' is listed twice"), span)
                            .with_label("listed again here")
                            .with_secondary(*first, "first listed here"),
                    );
                    ok = false;
                } else {
                    out.push((name, span));
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn check_optimizer(stmt: &Stmt, diags: &mut Vec<Diagnostic>) -> Option<Optimizer> {
    let values = positional(
        stmt,
        1,
        1,
        "optimizer sgd|adam|adamw|rmsprop [OPTIONS]",
        diags,
    );
    let kind = values.and_then(|v| choice(&v[0], "optimizer", &Optimizer::NAMES, diags));
    let Some(mut opt) = kind.and_then(Optimizer::default_of) else {
        // Still check the options' values, against every optimizer's keys.
        options(stmt, &Optimizer::ALL_OPTIONS, &[], diags);
        return None;
    };
    let allowed: Vec<&str> = opt.settings().iter().map(|(k, _)| *k).collect();
    let elsewhere: Vec<(&str, &str)> = Optimizer::ALL_OPTIONS
        .iter()
        .filter_map(|&k| opt.foreign_option_note(k).map(|note| (k, note)))
        .collect();
    let mut ok = true;
    for o in options(stmt, &allowed, &elsewhere, diags) {
        let key = o.key.name.as_str();
        let Some((what, range)) = Optimizer::option_bound(key) else {
            unreachable!("options() only returns keys allowed for this optimizer")
        };
        let Some(x) = real(&o.value, what, range, diags) else {
            ok = false;
            continue;
        };
        let Some(setting) = opt.setting_mut(key) else {
            unreachable!("options() only returns keys allowed for this optimizer")
        };
        *setting = Setting::given(x);
    }
    ok.then_some(opt)
}
