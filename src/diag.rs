//! Spans, diagnostics and their rendering: the one module every stage may use.
//!
//! A [`Diagnostic`] is plain data (message, labelled spans, help and notes).
//! Stages collect them instead of stopping at the first problem; only the
//! command line renders them, through [`render`], in the rustc style:
//!
//! ```text
//! error: unknown activation 'tahn'
//!   --> xor.nn:4:13
//!   |
//! 4 |     dense 4 tahn
//!   |             ^^^^ not a built-in or defined activation
//!   |
//!   = help: did you mean 'tanh'?
//! ```
//!
//! We render with `codespan-reporting`: it prints exactly this rustc layout
//! with ASCII characters, counts columns in characters (as the spec asks),
//! has no proc-macro or fancy-terminal dependencies, and renders to a
//! `String`, which makes diagnostics snapshot-testable.

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;

/// A half-open byte range `start..end` into one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// Which source file a span belongs to: an index into a [`SourceMap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub usize);

impl FileId {
    /// The `.nn` file being compiled is always added first.
    pub const MAIN: FileId = FileId(0);
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The input is rejected.
    Error,
    /// The input is accepted, but probably not what the user meant.
    Warning,
}

/// A span in a file with a short message printed next to its carets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// The file the span is in.
    pub file: FileId,
    /// The offending text.
    pub span: Span,
    /// Printed after the carets; may be empty.
    pub message: String,
}

/// One problem found in the user's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The headline, e.g. `unknown activation 'tahn'`. No trailing period.
    pub message: String,
    /// Where the problem is. `None` only for problems with no location
    /// (a missing file is reported at the `data` statement instead).
    pub primary: Option<Label>,
    /// Related places, e.g. the first definition of a duplicate name.
    pub secondary: Vec<Label>,
    /// `help:` lines: what to do about it.
    pub help: Vec<String>,
    /// `note:` lines: why it is a problem.
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// An error at `span` of the main file.
    pub fn error(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic::error_in(FileId::MAIN, message, span)
    }

    /// An error at `span` of `file`.
    pub fn error_in(file: FileId, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            primary: Some(Label {
                file,
                span,
                message: String::new(),
            }),
            secondary: Vec::new(),
            help: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// An error with no source location.
    pub fn bare(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Sets the text printed next to the primary carets.
    pub fn with_label(mut self, message: impl Into<String>) -> Diagnostic {
        if let Some(label) = &mut self.primary {
            label.message = message.into();
        }
        self
    }

    /// Adds a secondary span in the same file as the primary one.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        let file = self.primary.as_ref().map_or(FileId::MAIN, |l| l.file);
        self.secondary.push(Label {
            file,
            span,
            message: message.into(),
        });
        self
    }

    /// Adds a `help:` line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help.push(help.into());
        self
    }

    /// Adds a `note:` line.
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// The position used to order diagnostics: file, then offset.
    pub fn sort_key(&self) -> (FileId, usize) {
        self.primary
            .as_ref()
            .map_or((FileId(usize::MAX), 0), |l| (l.file, l.span.start))
    }
}

/// The files diagnostics may point into, by [`FileId`].
#[derive(Default)]
pub struct SourceMap {
    files: SimpleFiles<String, String>,
}

impl SourceMap {
    /// An empty map; add the main `.nn` file first so it gets [`FileId::MAIN`].
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file under the name it is shown with (as the user typed it).
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        FileId(self.files.add(name.into(), text.into()))
    }
}

/// The 1-based line and character column of byte `offset` in `text`.
/// Offsets past the end or inside a character are clamped.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Renders diagnostics as plain text, in the order given, each followed by a
/// blank line, then a summary line such as `error: aborting due to 2 errors`.
pub fn render(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let config = term::Config {
        chars: term::Chars::ascii(),
        ..term::Config::default()
    };
    let mut out = String::new();
    for diagnostic in diagnostics {
        let converted = to_codespan(diagnostic, sources);
        if term::emit_to_string(&mut out, &config, &sources.files, &converted).is_err() {
            // A span outside its file is an internal error; still say something useful.
            out.push_str(&format!("error: {}\n", diagnostic.message));
        }
        out.push('\n');
    }
    let n_errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if n_errors > 1 {
        out.push_str(&format!("error: aborting due to {n_errors} errors\n"));
    }
    out
}

fn to_codespan(diagnostic: &Diagnostic, sources: &SourceMap) -> cs::Diagnostic<usize> {
    let clamp = |label: &Label, style: cs::LabelStyle| {
        let len = sources
            .files
            .get(label.file.0)
            .map_or(0, |f| f.source().len());
        let start = label.span.start.min(len);
        let end = label.span.end.clamp(start, len);
        cs::Label::new(style, label.file.0, start..end).with_message(label.message.clone())
    };
    let mut labels = Vec::new();
    if let Some(primary) = &diagnostic.primary {
        labels.push(clamp(primary, cs::LabelStyle::Primary));
    }
    for secondary in &diagnostic.secondary {
        labels.push(clamp(secondary, cs::LabelStyle::Secondary));
    }
    let mut notes: Vec<String> = diagnostic
        .help
        .iter()
        .map(|h| format!("help: {h}"))
        .collect();
    notes.extend(diagnostic.notes.iter().map(|n| format!("note: {n}")));
    let base = match diagnostic.severity {
        Severity::Error => cs::Diagnostic::error(),
        Severity::Warning => cs::Diagnostic::warning(),
    };
    base.with_message(diagnostic.message.clone())
        .with_labels(labels)
        .with_notes(notes)
}

/// A count with thousands separators, for messages: `2410` as `2,410`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Edit-distance suggestion: the candidate closest to `name`, if it is close
/// enough to be a plausible typo (distance at most a third of the length,
/// and at least 1).
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// The Levenshtein distance between two strings, counted in characters.
/// Transposed neighbours (`tahn` for `tanh`) count as one edit.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Optimal string alignment distance: three rows suffice.
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(prev2[j - 2] + 1);
            }
            cur[j] = best;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_common_typos() {
        let acts = ["identity", "sigmoid", "tanh", "relu", "softmax"];
        assert_eq!(suggest("tahn", acts), Some("tanh"));
        assert_eq!(suggest("sigmiod", acts), Some("sigmoid"));
        assert_eq!(suggest("rleu", acts), Some("relu"));
        assert_eq!(suggest("banana", acts), None);
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "ab\nπx y";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        // 'x' sits after the two-byte 'π', at character column 2.
        assert_eq!(line_col(text, 5), (2, 2));
    }
}
