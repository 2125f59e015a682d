//! Helpers shared by the `model` and `train` block checks: statement values
//! of the right kind and range, options, and the wording of their errors.
//!
//! Every helper reports its own diagnostic and returns `None` on failure, so a
//! block check reads as a list of "take this value" lines.

use crate::diag::{Diagnostic, Span, suggest};
use crate::syntax::ast::{Opt, Stmt, Value, ValueKind};

/// How a value is shown in a `found ...` message: numbers and names as written.
pub(super) fn describe(value: &Value) -> String {
    match &value.kind {
        ValueKind::Number { text, .. } => text.clone(),
        ValueKind::Ident(name) => format!("'{name}'"),
        ValueKind::Str(s) => format!("\"{s}\""),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::List(_) => "a list".to_string(),
        ValueKind::Size { text, .. } => text.clone(),
    }
}

/// What kind of value it is, for labels such as `expected a number, found a string`.
fn kind_name(value: &Value) -> &'static str {
    match &value.kind {
        ValueKind::Number { .. } => "a number",
        ValueKind::Ident(_) => "a name",
        ValueKind::Str(_) => "a string",
        ValueKind::Bool(_) => "a boolean",
        ValueKind::List(_) => "a list",
        ValueKind::Size { .. } => "a size",
    }
}

/// The error for a value of the right kind but a bad range or shape:
/// `invalid WHAT V` with `expected` as the label.
pub(super) fn invalid(value: &Value, what: &str, expected: &str) -> Diagnostic {
    Diagnostic::error(format!("invalid {what} {}", describe(value)), value.span)
        .with_label(expected)
}

/// The error for a value of the wrong kind.
fn wrong_kind(value: &Value, what: &str, expected: &str) -> Diagnostic {
    invalid(
        value,
        what,
        &format!("expected {expected}, found {}", kind_name(value)),
    )
}

/// A whole number in `min..=max` (a `seed`, `epochs`, a layer width).
pub(super) fn whole(
    value: &Value,
    what: &str,
    min: u64,
    max: u64,
    diags: &mut Vec<Diagnostic>,
) -> Option<u64> {
    let ValueKind::Number { value: x, text } = &value.kind else {
        diags.push(wrong_kind(value, what, &format!("a whole number >= {min}")));
        return None;
    };
    if !x.is_finite() || x.fract() != 0.0 {
        diags.push(invalid(
            value,
            what,
            &format!("expected a whole number >= {min}"),
        ));
        return None;
    }
    if *x < min as f64 {
        diags.push(invalid(value, what, &format!("must be at least {min}")));
        return None;
    }
    // Plain digits are read exactly (a 20-digit seed must not round); other
    // spellings such as `1e3` go through the float, exact below 2^53.
    let n = if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok()
    } else if *x <= 9_007_199_254_740_992.0 {
        Some(*x as u64)
    } else {
        None
    };
    match n {
        Some(n) if n <= max => Some(n),
        _ => {
            diags.push(invalid(value, what, &format!("must be at most {max}")));
            None
        }
    }
}

/// The ranges real-valued settings may take (one enum with the optimizers').
pub(super) use super::model::Bound as Range;

/// A finite number in `range`.
pub(super) fn real(
    value: &Value,
    what: &str,
    range: Range,
    diags: &mut Vec<Diagnostic>,
) -> Option<f64> {
    let ValueKind::Number { value: x, .. } = &value.kind else {
        diags.push(wrong_kind(value, what, "a number"));
        return None;
    };
    let (ok, expected) = match range {
        Range::Positive => (*x > 0.0 && x.is_finite(), "must be greater than 0"),
        Range::UnitOpen => ((0.0..1.0).contains(x), "must be at least 0 and less than 1"),
        Range::NonNegative => (*x >= 0.0 && x.is_finite(), "must be at least 0"),
    };
    if ok {
        Some(*x)
    } else {
        diags.push(invalid(value, what, expected));
        None
    }
}

/// `true` or `false`.
pub(super) fn boolean(value: &Value, what: &str, diags: &mut Vec<Diagnostic>) -> Option<bool> {
    match &value.kind {
        ValueKind::Bool(b) => Some(*b),
        _ => {
            diags.push(wrong_kind(value, what, "true or false"));
            None
        }
    }
}

/// One name out of `choices`, suggesting the closest on a typo.
pub(super) fn choice<'a>(
    value: &Value,
    what: &str,
    choices: &[&'a str],
    diags: &mut Vec<Diagnostic>,
) -> Option<&'a str> {
    let one_of = format!("one of {}", choices.join(", "));
    let name = match &value.kind {
        ValueKind::Ident(name) => name.as_str(),
        ValueKind::Str(s) => {
            let d = wrong_kind(value, what, "a name");
            let d = if choices.contains(&s.as_str()) {
                d.with_help(format!("write it without quotes: {s}"))
            } else {
                d.with_note(format!("expected {one_of}"))
            };
            diags.push(d);
            return None;
        }
        _ => {
            diags.push(wrong_kind(value, what, &one_of));
            return None;
        }
    };
    if let Some(found) = choices.iter().find(|c| **c == name) {
        return Some(found);
    }
    let mut d = Diagnostic::error(format!("unknown {what} '{name}'"), value.span)
        .with_label(format!("expected {one_of}"));
    if let Some(s) = suggest(name, choices.iter().copied()) {
        d = d.with_help(format!("did you mean '{s}'?"));
    }
    diags.push(d);
    None
}

/// The positional values of `stmt`, checking there are between `min` and
/// `max` of them. Reports a missing value at the keyword and extra values at
/// themselves; returns `None` only when values are missing.
pub(super) fn positional<'a>(
    stmt: &'a Stmt,
    min: usize,
    max: usize,
    usage: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'a [Value]> {
    let keyword = &stmt.keyword.name;
    if stmt.values.len() < min {
        diags.push(
            Diagnostic::error(format!("'{keyword}' needs a value"), stmt.span)
                .with_label("value missing")
                .with_help(format!("write it as: {usage}")),
        );
        return None;
    }
    if stmt.values.len() > max {
        let extra = &stmt.values[max..];
        let span = extra[0].span.to(extra[extra.len() - 1].span);
        let count = if max == 1 {
            "one value"
        } else {
            "fewer values"
        };
        diags.push(
            Diagnostic::error(format!("unexpected value for '{keyword}'"), span)
                .with_label(format!("'{keyword}' takes {count}"))
                .with_help(format!("write it as: {usage}")),
        );
    }
    Some(&stmt.values[..stmt.values.len().min(max)])
}

/// The options of `stmt` whose keys are in `allowed`, first occurrence of
/// each, in source order. Unknown and repeated keys are reported; `elsewhere`
/// lists keys that belong to a related form, with a note saying where.
pub(super) fn options<'a>(
    stmt: &'a Stmt,
    allowed: &[&str],
    elsewhere: &[(&str, &str)],
    diags: &mut Vec<Diagnostic>,
) -> Vec<&'a Opt> {
    let keyword = &stmt.keyword.name;
    let mut kept: Vec<&Opt> = Vec::new();
    for opt in &stmt.options {
        let key = opt.key.name.as_str();
        if !allowed.contains(&key) {
            let mut d = Diagnostic::error(
                format!("unknown option '{key}' for '{keyword}'"),
                opt.key.span,
            );
            if allowed.is_empty() {
                d = d.with_label(format!("'{keyword}' takes no options"));
            } else {
                d = d.with_label("unknown option");
                if let Some((_, note)) = elsewhere.iter().find(|(k, _)| *k == key) {
                    d = d.with_note(note.to_string());
                } else if let Some(s) = suggest(key, allowed.iter().copied()) {
                    d = d.with_help(format!("did you mean '{s}'?"));
                }
                let list: Vec<String> = allowed.iter().map(|k| format!("{k}=")).collect();
                d = d.with_note(format!("'{keyword}' takes {}", list.join(", ")));
            }
            diags.push(d);
        } else if let Some(first) = kept.iter().find(|o| o.key.name == key) {
            diags.push(
                Diagnostic::error(format!("option '{key}' is given twice"), opt.span)
                    .with_label("repeated here")
                    .with_secondary(first.span, "first given here"),
            );
        } else {
            kept.push(opt);
        }
    }
    kept
}

/// Remembers the first statement of each keyword and reports repeats.
#[derive(Default)]
pub(super) struct Seen {
    first: Vec<(String, Span)>,
}

impl Seen {
    /// Records `stmt`; returns false (and reports) when its keyword was seen before.
    pub(super) fn first(&mut self, stmt: &Stmt, block: &str, diags: &mut Vec<Diagnostic>) -> bool {
        let keyword = &stmt.keyword.name;
        if let Some((_, span)) = self.first.iter().find(|(k, _)| k == keyword) {
            diags.push(
                Diagnostic::error(
                    format!("'{keyword}' is given twice in {block}"),
                    stmt.keyword.span,
                )
                .with_label("repeated here")
                .with_secondary(*span, "first given here"),
            );
            false
        } else {
            self.first.push((keyword.clone(), stmt.span));
            true
        }
    }
}
