//! The parser: one method per rule of `grammar/nn.ebnf`, with the same name.
//!
//! Lexemes are nom parsers (`lex.rs`). Grammar rules keep nom's shape, input
//! slice in and `(rest, output)` out, but are methods on [`Parser`] because
//! they record diagnostics, count nesting and recover from errors:
//! a failed statement is skipped to its end (newline, `;` or `}`), a failed
//! item to the next line that starts an item. Offsets are
//! `src.len() - rest.len()`, so every slice maps back to a [`Span`].

mod expr;
mod items;
pub(in crate::syntax) mod lex;

use super::MAX_DEPTH;
use super::ast;
use crate::diag::{Diagnostic, Span};

/// A rule's result: the rest of the input and what was parsed, or the
/// diagnostic that stops the enclosing statement or item.
type PResult<'a, T> = Result<(&'a str, T), Box<Diagnostic>>;

/// Parser state for one source text.
pub(super) struct Parser<'a> {
    /// The whole source; every slice handled is a suffix of it.
    src: &'a str,
    /// Errors recorded without stopping the current rule (e.g. bad escapes).
    diags: Vec<Diagnostic>,
    /// Current nesting of parentheses, calls, lists, minus signs and `^`.
    depth: usize,
    /// Open `(` and `[` around the current position: inside them line breaks
    /// are blanks, outside they end an expression or a statement.
    brackets: usize,
}

pub(super) fn parse_file(src: &str) -> (ast::File, Vec<Diagnostic>) {
    with_stack_for(nesting_bound(src, true), || parse_file_here(src))
}

pub(super) fn parse_expr_only(src: &str) -> Result<ast::Expr, Vec<Diagnostic>> {
    // A lone expression may span lines, so no line break ends one.
    with_stack_for(nesting_bound(src, false), || parse_expr_here(src))
}

/// An upper bound on the nesting the parser can reach in `src`: the most
/// opening brackets, minus signs and carets in one stretch of text that an
/// expression may span.
///
/// Nesting only grows inside one expression, and an expression of a file
/// ends at a line break outside brackets unless the line ends with an
/// operator. With `line_breaks`, a stretch therefore ends at a line break
/// where no bracket is open and the line ends with a word, a number or a
/// closing bracket. The count errs high, never low: every `(` and `[`
/// counts, even in comments and strings, while a `)` or `]` after a `#` or
/// `"` on its line is ignored, and a line with a `#` never ends a stretch.
fn nesting_bound(src: &str, line_breaks: bool) -> usize {
    let mut most = 0;
    let mut stretch = 0usize;
    let mut open = 0usize;
    let mut quoted = false;
    let mut last = b'\n';
    for b in src.bytes() {
        match b {
            b'(' | b'[' => {
                open += 1;
                stretch += 1;
            }
            b'-' | b'^' => stretch += 1,
            b')' | b']' if !quoted => open = open.saturating_sub(1),
            b'#' | b'"' => quoted = true,
            b'\n' => {
                let ends = last.is_ascii_alphanumeric()
                    || matches!(last, b'_' | b')' | b']' | b'{' | b'}');
                if line_breaks && open == 0 && !quoted && ends {
                    most = most.max(stretch);
                    stretch = 0;
                }
                quoted = false;
            }
            _ => {}
        }
        if !matches!(b, b' ' | b'\t' | b'\r') {
            last = b;
        }
    }
    most.max(stretch)
}

/// Runs `parse` where the stack is deep enough for `MAX_DEPTH` levels,
/// given an upper bound on the nesting of the input ([`nesting_bound`]).
///
/// One level of nesting is a cycle of eight rule functions (`paren`, `expr`,
/// `comparison`, ..., `atom`); unoptimised builds spend about 14 KiB of
/// stack on it, so 256 levels need about 3.5 MiB, more than a test thread's
/// 2 MiB. Input that cannot nest more than a few levels (few brackets,
/// minus signs and carets in any one expression) is parsed on the caller's thread; other input on
/// a helper thread with a 64 MiB stack (reserved, not committed, memory).
fn with_stack_for<T: Send>(bound: usize, parse: impl Fn() -> T + Sync) -> T {
    const SHALLOW: usize = 32;
    const STACK: usize = 64 << 20;
    if bound <= SHALLOW {
        return parse();
    }
    let spawned = std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("slope-parse".into())
            .stack_size(STACK)
            .spawn_scoped(scope, &parse)
            .ok()?;
        Some(match handle.join() {
            Ok(result) => result,
            // A panic in the parser is a bug; let it surface as it would inline.
            Err(panic) => std::panic::resume_unwind(panic),
        })
    });
    // If no thread can be started, parsing here is still right for all but
    // pathologically nested input.
    spawned.unwrap_or_else(parse)
}

fn parse_file_here(src: &str) -> (ast::File, Vec<Diagnostic>) {
    let mut parser = Parser::new(src);
    let items = parser.file(src);
    let file = ast::File {
        items,
        comments: lex::comments(src),
    };
    (file, parser.finish())
}

fn parse_expr_here(src: &str) -> Result<ast::Expr, Vec<Diagnostic>> {
    let mut parser = Parser::new(src);
    // A lone expression may span lines, as if it were in parentheses.
    parser.brackets = 1;
    let result = parser.whole_expr(src);
    let mut diags = parser.finish();
    match result {
        Ok(e) if diags.is_empty() => Ok(e),
        Ok(_) => Err(diags),
        Err(d) => {
            diags.push(*d);
            diags.sort_by_key(|d| d.sort_key());
            Err(diags)
        }
    }
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Parser<'a> {
        Parser {
            src,
            diags: Vec::new(),
            depth: 0,
            brackets: 0,
        }
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        // Stable sort: errors at one place stay in the order found.
        self.diags.sort_by_key(|d| d.sort_key());
        self.diags
    }

    /// The byte offset of the suffix `rest` in the source.
    fn off(&self, rest: &str) -> usize {
        self.src.len() - rest.len()
    }

    /// The span from the start of `from` to the start of `to` (both suffixes).
    fn span(&self, from: &str, to: &str) -> Span {
        Span::new(self.off(from), self.off(to))
    }

    /// Blanks and comments; line breaks too when inside brackets.
    fn blanks(&self, i: &'a str) -> &'a str {
        lex::skip_blanks(i, self.brackets > 0)
    }

    /// Blanks, comments and line breaks.
    fn blanks_nl(&self, i: &'a str) -> &'a str {
        lex::skip_blanks(i, true)
    }

    /// "found X" text and span for what starts at `i`.
    fn found(&self, i: &str) -> (String, Span) {
        lex::describe(i, self.off(i))
    }

    /// An error pointing at what starts at `i`: `message, found X`.
    fn expected(&self, i: &str, message: &str) -> Box<Diagnostic> {
        let (what, span) = self.found(i);
        Box::new(Diagnostic::error(format!("{message}, found {what}"), span))
    }

    /// Enters one nesting level (a parenthesis, call, list, `-` or `^`).
    fn enter(&mut self, at: Span) -> Result<(), Box<Diagnostic>> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(too_deep(at));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Forgets nesting state after an error, before the next statement/item.
    fn reset(&mut self) {
        self.depth = 0;
        self.brackets = 0;
    }

    /// True if `i` is the first token of its line.
    fn at_line_start(&self, i: &str) -> bool {
        let before = &self.src[..self.off(i)];
        before
            .trim_end_matches([' ', '\t', '\r'])
            .chars()
            .next_back()
            .is_none_or(|c| c == '\n')
    }
}

/// `error: expression nested too deeply (more than 256 levels)`.
fn too_deep(at: Span) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::error(
            format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
            at,
        )
        .with_label("this is one level too many")
        .with_note("every parenthesis, call, list, unary '-' and operator adds a level of nesting")
        .with_help("split the formula, e.g. into several activations"),
    )
}
