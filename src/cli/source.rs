//! Reading a `.nn` file with the input checks every command shares:
//! unreadable file, invalid UTF-8 and NUL bytes become diagnostics that name
//! `FILE:LINE:COL`; an empty file is fine (it parses to an empty file).

use super::Failure;
use crate::diag::{Diagnostic, SourceMap, Span, render};
use std::path::Path;

/// Reads `path` as `.nn` source. Returns the name to show in diagnostics
/// (the path as typed) and the text.
pub fn read_source(path: &Path) -> Result<(String, String), Failure> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        let e = super::common::io_message(&e);
        Failure::Input(format!("error: cannot read '{name}': {e}\n"))
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bad = e.as_bytes()[at];
            // The valid prefix is unchanged by the lossy conversion, so `at`
            // still points at the offending byte in the shown text.
            let shown = String::from_utf8_lossy(e.as_bytes()).replace('\0', " ");
            let d = Diagnostic::error("the file is not valid UTF-8", Span::new(at, at + 1))
                .with_label(format!("byte 0x{bad:02x} at offset {at}"))
                .with_note("a .nn file must be UTF-8 text");
            return Err(Failure::Input(render_one(&name, &shown, d)));
        }
    };
    if let Some(at) = text.find('\0') {
        let count = text.matches('\0').count();
        let shown = text.replace('\0', " ");
        let mut d = Diagnostic::error("the file contains a NUL byte", Span::new(at, at + 1))
            .with_label(format!("NUL byte at offset {at}"))
            .with_help("a .nn file is text; is this a binary file?");
        if count > 1 {
            d = d.with_note(format!("the file has {count} NUL bytes"));
        }
        return Err(Failure::Input(render_one(&name, &shown, d)));
    }
    Ok((name, text))
}

/// Renders diagnostics about the file `name` holding `text`.
pub fn render_diagnostics(name: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
    let mut sources = SourceMap::new();
    sources.add(name, text);
    render(diagnostics, &sources)
}

fn render_one(name: &str, text: &str, d: Diagnostic) -> String {
    render_diagnostics(name, text, &[d])
}
