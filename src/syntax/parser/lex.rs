//! Lexemes of spec §2, written with nom: blanks and comments, identifiers,
//! numbers, and the comment pre-pass that feeds `File.comments`.
//!
//! The grammar-level functions (in `items.rs` and `expr.rs`) keep the nom
//! shape `input -> (rest, output)` but are methods on the parser state, because
//! they must record diagnostics, count nesting depth, and recover.

use crate::diag::Span;
use crate::syntax::ast::Comment;
use nom::bytes::complete::take_while;
use nom::character::complete::{char, digit1, one_of, satisfy};
use nom::combinator::{opt, recognize};
use nom::{IResult, Parser};

/// `ident = letter_ , { letter_ | digit } ;` with ASCII letters only.
pub(super) fn ident_text(i: &str) -> IResult<&str, &str> {
    recognize((
        satisfy(|c| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(i)
}

/// `number = ( digits [ "." digits ] | "." digits ) [ ( "e" | "E" ) [ "+" | "-" ] digits ] ;`
pub(super) fn number_text(i: &str) -> IResult<&str, &str> {
    recognize((
        nom::branch::alt((
            recognize((digit1, opt((char('.'), digit1)))),
            recognize((char('.'), digit1)),
        )),
        opt((one_of("eE"), opt(one_of("+-")), digit1)),
    ))
    .parse(i)
}

/// `size = digits "x" digits { "x" digits } ;` (`1x8x8`; no blanks inside).
pub(super) fn size_text(i: &str) -> IResult<&str, &str> {
    recognize((digit1, nom::multi::many1((char('x'), digit1)))).parse(i)
}

/// True if `i` starts with digits directly followed by `x`: a size, well
/// formed or not (`1x8`, `1x`), rather than a number.
pub(super) fn starts_size(i: &str) -> bool {
    let digits = i.len() - i.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    digits > 0 && i[digits..].starts_with('x')
}

/// True if `c` may continue an identifier or a number; used to find the
/// extent of a malformed number such as `2x` or `1e`.
pub(super) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Skips spaces, tabs, carriage returns and `#` comments; with `newlines`,
/// line breaks too. Comments are collected separately by [`comments`].
pub(in crate::syntax) fn skip_blanks(mut i: &str, newlines: bool) -> &str {
    loop {
        let trimmed = i.trim_start_matches([' ', '\t', '\r']);
        i = trimmed;
        if let Some(rest) = i.strip_prefix('#') {
            i = &rest[rest.find('\n').unwrap_or(rest.len())..];
        } else if newlines && i.starts_with('\n') {
            i = &i[1..];
        } else {
            return i;
        }
    }
}

/// Finds every `#` comment, skipping `#` inside strings. Strings end at the
/// end of their line (an unterminated string is an error the parser reports),
/// so a line-by-line scan agrees with the parser on what is a comment.
pub(super) fn comments(src: &str) -> Vec<Comment> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in src.split_inclusive('\n') {
        let mut in_string = false;
        let mut escaped = false;
        for (k, c) in line.char_indices() {
            if in_string {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_string = false,
                    _ => {}
                }
            } else if c == '"' {
                in_string = true;
            } else if c == '#' {
                let body = line[k + 1..].trim_end_matches(['\n', '\r']);
                let start = line_start + k;
                out.push(Comment {
                    text: body.to_string(),
                    span: Span::new(start, start + 1 + body.len()),
                });
                break;
            }
        }
        line_start += line.len();
    }
    out
}

/// A short description of what starts at `i`, for "found ..." messages,
/// with the span it covers (at least one character unless at the end).
pub(super) fn describe(i: &str, offset: usize) -> (String, Span) {
    if i.is_empty() {
        return ("end of input".into(), Span::new(offset, offset));
    }
    if i.starts_with('\n') || i.starts_with("\r\n") {
        return ("end of line".into(), Span::new(offset, offset));
    }
    if let Ok((rest, word)) = ident_text(i) {
        return (
            format!("'{word}'"),
            Span::new(offset, offset + (i.len() - rest.len())),
        );
    }
    if let Ok((rest, num)) = number_text(i) {
        return (
            format!("'{num}'"),
            Span::new(offset, offset + (i.len() - rest.len())),
        );
    }
    if i.starts_with('"') {
        return ("a string".into(), Span::new(offset, offset + 1));
    }
    // The input is not empty, so it has a first character.
    let c = i
        .chars()
        .next()
        .expect("non-empty input has a first character");
    let shown = if c.is_control() || c == '\u{feff}' {
        format!("{c:?}")
    } else {
        format!("'{c}'")
    };
    (shown, Span::new(offset, offset + c.len_utf8()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_in_the_spec() {
        for n in ["2", "0.5", ".5", "1e-3", "2.5E+4"] {
            assert_eq!(number_text(n), Ok(("", n)));
        }
        assert_eq!(number_text("1e"), Ok(("e", "1")));
        assert!(number_text("e1").is_err());
    }

    #[test]
    fn sizes_as_in_the_spec() {
        for n in ["3x3", "1x8x8", "10x20x30x4"] {
            assert_eq!(size_text(n), Ok(("", n)));
            assert!(starts_size(n));
        }
        assert_eq!(size_text("1x8x"), Ok(("x", "1x8")));
        assert!(size_text("1x").is_err());
        assert!(starts_size("1x"));
        assert!(!starts_size("1e3") && !starts_size("x1") && !starts_size("1.5x2"));
    }

    #[test]
    fn comments_skip_strings() {
        let c = comments("a \"#x\" # real\n# two\r\n");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].text, " real");
        assert_eq!(c[1].text, " two");
        assert_eq!(c[1].span, Span::new(14, 19));
    }
}
