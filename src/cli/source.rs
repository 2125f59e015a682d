//! Reading input files with the checks every command shares: an unreadable
//! file, invalid UTF-8 and NUL bytes become diagnostics that name
//! `FILE:LINE:COL`; an empty file is fine (it parses to an empty file).

use super::Failure;
use crate::diag::{Diagnostic, SourceMap, Span, render};
use std::path::Path;

/// Reads `path` as `.nn` source. Returns the name to show in diagnostics
/// (the path as typed) and the text.
pub fn read_source(path: &Path) -> Result<(String, String), Failure> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Failure::Input(format!("error: cannot read '{name}': {}\n", io_message(&e)))
    })?;
    match decode(bytes) {
        Ok(text) => Ok((name, text)),
        Err(err) => {
            let (shown, d) = *err;
            Err(Failure::Input(render_diagnostics(&name, &shown, &[d])))
        }
    }
}

/// Bytes to text; otherwise the text to show (made printable) and a
/// diagnostic for the first invalid UTF-8 byte or NUL byte.
pub fn decode(bytes: Vec<u8>) -> Result<String, Box<(String, Diagnostic)>> {
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bad = e.as_bytes()[at];
            // The valid prefix is unchanged by the lossy conversion, so `at`
            // still points at the offending byte, shown as the three-byte U+FFFD.
            let shown = String::from_utf8_lossy(e.as_bytes()).replace('\0', " ");
            let d = Diagnostic::error("the file is not valid UTF-8", Span::new(at, at + 3))
                .with_label(format!("byte 0x{bad:02x} at offset {at}"))
                .with_help("save the file as UTF-8 text");
            return Err(Box::new((shown, d)));
        }
    };
    if let Some(at) = text.find('\0') {
        let count = text.matches('\0').count();
        // Show NUL as the visible U+2400 symbol (three bytes) so the snippet
        // prints cleanly; the text before the first NUL keeps its offsets.
        let shown = text.replace('\0', "\u{2400}");
        let mut d = Diagnostic::error("the file contains a NUL byte", Span::new(at, at + 3))
            .with_label(format!("NUL byte at offset {at}"))
            .with_help("is this a binary file? slope reads plain UTF-8 text");
        if count > 1 {
            d = d.with_note(format!("the file has {count} NUL bytes"));
        }
        return Err(Box::new((shown, d)));
    }
    Ok(text)
}

/// An I/O error's message without the `(os error N)` suffix.
pub fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Renders diagnostics about the file `name` holding `text`.
pub fn render_diagnostics(name: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
    let mut sources = SourceMap::new();
    sources.add(name, text);
    render(diagnostics, &sources)
}
