//! Items, blocks, statements and values (spec §2, §3, §5, §6), with error
//! recovery: a bad statement is skipped to its end, a bad item to the next
//! line that starts an item.

use super::expr::starts_expr;
use super::{PResult, Parser, lex};
use crate::diag::{Diagnostic, Span, suggest};
use crate::syntax::ast::{Block, FuncDef, Ident, Item, Opt, Stmt, Value, ValueKind};

/// The item keywords, for `unknown item` suggestions.
const ITEM_KEYWORDS: [&str; 4] = ["activation", "loss", "model", "train"];

/// Statement keywords of spec §5–§6, to explain a statement found at top level.
const STATEMENT_KEYWORDS: [&str; 10] = [
    "input",
    "dense",
    "data",
    "validation",
    "optimizer",
    "epochs",
    "batch",
    "shuffle",
    "seed",
    "target",
];

impl<'a> Parser<'a> {
    /// `file = { item } ;` — every item that parses, recovering from errors.
    pub(super) fn file(&mut self, src: &'a str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut i = src;
        loop {
            i = self.blanks_nl(i);
            if i.is_empty() {
                return items;
            }
            self.reset();
            match self.item(i) {
                Ok((rest, item)) => {
                    items.push(item);
                    i = rest;
                }
                Err(d) => {
                    let at = d.sort_key().1.max(self.off(i));
                    self.diags.push(*d);
                    let rest = &self.src[at..];
                    // An error found at the start of a later item (e.g. an
                    // unclosed '(' running into it) resumes at that item.
                    i = if at > self.off(i) && self.at_line_start(rest) && self.starts_item(rest) {
                        rest
                    } else {
                        self.skip_to_item(rest)
                    };
                }
            }
        }
    }

    /// Recovery: skips to the first line after `i`'s line whose first token
    /// starts an item, or to the end. Braces on the skipped lines are counted:
    /// outside braces any item keyword stops; inside them (a skipped block)
    /// only a whole item header does, so `loss mse` there is not a `loss` item.
    fn skip_to_item(&self, i: &'a str) -> &'a str {
        // Every byte looked at is ASCII, so each index is a char boundary.
        let bytes = i.as_bytes();
        let mut depth = 0usize;
        let mut k = 0;
        while k < bytes.len() {
            match bytes[k] {
                b'"' => {
                    // Strings end at their quote or at the end of the line.
                    k += 1;
                    while k < bytes.len() && !matches!(bytes[k], b'"' | b'\n') {
                        k += if bytes[k] == b'\\' && bytes.get(k + 1) != Some(&b'\n') {
                            2
                        } else {
                            1
                        };
                    }
                    if bytes.get(k) == Some(&b'"') {
                        k += 1;
                    }
                    continue;
                }
                b'#' => {
                    k = i[k..].find('\n').map_or(bytes.len(), |n| k + n);
                    continue;
                }
                b'{' => depth += 1,
                b'}' => depth = depth.saturating_sub(1),
                b'\n' => {
                    let line = lex::skip_blanks(&i[k + 1..], false);
                    let keyword =
                        lex::ident_text(line).is_ok_and(|(_, w)| ITEM_KEYWORDS.contains(&w));
                    if self.starts_item(line) || (depth == 0 && keyword) {
                        return line;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        &i[i.len()..]
    }

    /// True if `i` starts an item header: `activation NAME(`, `loss NAME(`,
    /// `model NAME {` or `train {`. None of these is a valid statement
    /// (`(` and `{` are not values), so inside a block such a line means the
    /// block's `}` is missing, while `loss mse` or `model name=x` stay
    /// statements: keywords are not reserved.
    pub(super) fn starts_item(&self, i: &str) -> bool {
        let Ok((rest, word)) = lex::ident_text(i) else {
            return false;
        };
        let after_name = |open: char| {
            let r = lex::skip_blanks(rest, false);
            lex::ident_text(r).is_ok_and(|(r, _)| lex::skip_blanks(r, false).starts_with(open))
        };
        match word {
            "activation" | "loss" => after_name('('),
            "model" => after_name('{'),
            "train" => lex::skip_blanks(rest, false).starts_with('{'),
            _ => false,
        }
    }

    /// `item = activation_item | loss_item | model_item | train_item ;`
    fn item(&mut self, i: &'a str) -> PResult<'a, Item> {
        let Ok((rest, word)) = lex::ident_text(i) else {
            if i.starts_with('}') {
                let at = self.off(i);
                return Err(Box::new(
                    Diagnostic::error("unexpected '}'", Span::new(at, at + 1))
                        .with_label("no '{' is open here")
                        .with_help("remove it, or check the braces of the block above"),
                ));
            }
            return Err(self
                .expected(i, "expected an item (activation, loss, model or train)")
                .with_help_boxed("a file holds 'activation', 'loss', 'model' and 'train' items"));
        };
        let keyword = Ident {
            name: word.to_string(),
            span: self.span(i, rest),
        };
        match word {
            "activation" => self.activation_item(keyword, rest),
            "loss" => self.loss_item(keyword, rest),
            "model" => self.model_item(keyword, rest),
            "train" => self.train_item(keyword, rest),
            _ => {
                let mut d = Diagnostic::error(format!("unknown item '{word}'"), keyword.span)
                    .with_label("expected 'activation', 'loss', 'model' or 'train'");
                if let Some(s) = suggest(word, ITEM_KEYWORDS) {
                    d = d.with_help(format!("did you mean '{s}'?"));
                } else if STATEMENT_KEYWORDS.contains(&word) {
                    d = d.with_note(format!(
                        "'{word}' is a statement: it belongs inside a 'model' or 'train' block"
                    ));
                }
                Err(Box::new(d))
            }
        }
    }

    /// `activation_item = "activation" ident params "=" expr ;`
    fn activation_item(&mut self, keyword: Ident, i: &'a str) -> PResult<'a, Item> {
        let (rest, def) = self.func_def(keyword, i, "x")?;
        Ok((rest, Item::Activation(def)))
    }

    /// `loss_item = "loss" ident params "=" expr ;`
    fn loss_item(&mut self, keyword: Ident, i: &'a str) -> PResult<'a, Item> {
        let (rest, def) = self.func_def(keyword, i, "y, t")?;
        Ok((rest, Item::Loss(def)))
    }

    /// The shared body of the formula items; the formula ends at the end of
    /// its line unless a bracket is open or the line ends with an operator.
    fn func_def(&mut self, keyword: Ident, i: &'a str, example: &str) -> PResult<'a, FuncDef> {
        // Only errors need these texts; build them lazily.
        let kw = keyword.name.as_str();
        let form = || format!("{kw} NAME({example}) = EXPR");
        let r = self.blanks(i);
        let Ok((r, name)) = lex::ident_text(r).map(|(rest, n)| (rest, (n, self.span(r, rest))))
        else {
            return Err(self
                .expected(r, &format!("expected a name after '{kw}'"))
                .with_help_boxed(format!("write '{}'", form())));
        };
        let name = Ident {
            name: name.0.to_string(),
            span: name.1,
        };
        let r = self.blanks(r);
        if !r.starts_with('(') {
            let mut d = self.expected(r, &format!("expected '(' after the {kw} name"));
            d = d.with_help_boxed(format!("a '{kw}' item defines a formula: '{}'", form()));
            if kw == "loss" {
                d = d.with_note_boxed(format!(
                    "to pick a loss for a model, write 'loss {}' inside the model block",
                    name.name
                ));
            }
            return Err(d);
        }
        let (r, params) = self.params(r)?;
        let r = self.blanks(r);
        let Some(r) = r.strip_prefix('=') else {
            return Err(self
                .expected(r, "expected '=' after the parameters")
                .with_help_boxed(format!("write '{}'", form())));
        };
        let eq = Span::new(self.off(r) - 1, self.off(r));
        let r = self.blanks(r);
        if !starts_expr(r) {
            let (what, span) = self.found(r);
            let mut d = Diagnostic::error(
                format!("expected an expression after '=', found {what}"),
                span,
            )
            .with_secondary(eq, "the formula starts after this '='");
            if r.is_empty() || r.starts_with(['\n', '\r']) {
                d = d.with_help("the formula must start on the same line as '='");
            }
            return Err(Box::new(d));
        }
        let (rest, (body, _)) = self.expr(r)?;
        let end = self.blanks(rest);
        if !(end.is_empty() || end.starts_with('\n')) {
            return Err(self.trailing(end, "after the formula"));
        }
        let span = Span::new(keyword.span.start, body.span.end);
        Ok((
            rest,
            FuncDef {
                name,
                params,
                body,
                span,
            },
        ))
    }

    /// `params = "(" [ ident { "," ident } ] ")" ;`
    fn params(&mut self, i: &'a str) -> PResult<'a, Vec<Ident>> {
        let open = Span::new(self.off(i), self.off(i) + 1);
        self.brackets += 1;
        let mut params = Vec::new();
        let mut r = self.blanks(&i[1..]);
        if !r.starts_with(')') {
            loop {
                let (rest, p) = self.ident(r, "expected a parameter name")?;
                params.push(p);
                r = self.blanks(rest);
                match r.strip_prefix(',') {
                    Some(rest) => r = self.blanks(rest),
                    None => break,
                }
            }
        }
        let rest = self.close(r, ')', open)?;
        self.brackets -= 1;
        Ok((rest, params))
    }

    /// `ident` as a rule: an identifier with its span.
    fn ident(&self, i: &'a str, message: &str) -> PResult<'a, Ident> {
        match lex::ident_text(i) {
            Ok((rest, name)) => Ok((
                rest,
                Ident {
                    name: name.to_string(),
                    span: self.span(i, rest),
                },
            )),
            Err(_) => Err(self.expected(i, message)),
        }
    }

    /// `model_item = "model" ident block ;`
    fn model_item(&mut self, keyword: Ident, i: &'a str) -> PResult<'a, Item> {
        let r = self.blanks(i);
        let (r, name) = self
            .ident(r, "expected a name after 'model'")
            .map_err(|d| d.with_help_boxed("write 'model NAME { ... }'"))?;
        let (rest, block) = self.block(keyword, Some(name), r)?;
        Ok((rest, Item::Model(block)))
    }

    /// `train_item = "train" block ;`
    fn train_item(&mut self, keyword: Ident, i: &'a str) -> PResult<'a, Item> {
        let (rest, block) = self.block(keyword, None, i)?;
        Ok((rest, Item::Train(block)))
    }

    /// `block = "{" { statement ( newline | ";" ) } [ statement ] "}" ;`
    /// Statement errors are recorded and skipped. A missing `}` is reported
    /// at the end of the file or before the next item, with the block kept.
    fn block(&mut self, keyword: Ident, name: Option<Ident>, i: &'a str) -> PResult<'a, Block> {
        let r = self.blanks_nl(i);
        if !r.starts_with('{') {
            let what = if name.is_some() {
                "the model name"
            } else {
                "'train'"
            };
            return Err(self.expected(r, &format!("expected '{{' after {what}")));
        }
        let open = Span::new(self.off(r), self.off(r) + 1);
        let mut stmts = Vec::new();
        let mut r = &r[1..];
        loop {
            // Blank lines, comments and empty statements (`;;`) separate statements.
            loop {
                let t = lex::skip_blanks(r, true);
                match t.strip_prefix(';') {
                    Some(after) => r = after,
                    None => {
                        r = t;
                        break;
                    }
                }
            }
            if let Some(rest) = r.strip_prefix('}') {
                let span = Span::new(keyword.span.start, self.off(rest));
                return Ok((
                    rest,
                    Block {
                        keyword,
                        name,
                        stmts,
                        span,
                    },
                ));
            }
            if r.is_empty() || (self.at_line_start(r) && self.starts_item(r)) {
                let (what, at) = self.found(r);
                self.diags.push(
                    Diagnostic::error("unclosed '{'", at)
                        .with_label(format!("expected '}}' before {what}"))
                        .with_secondary(open, "this '{' is never closed"),
                );
                let end = stmts.last().map_or(open.end, |s: &Stmt| s.span.end);
                let span = Span::new(keyword.span.start, end);
                return Ok((
                    r,
                    Block {
                        keyword,
                        name,
                        stmts,
                        span,
                    },
                ));
            }
            self.reset();
            match self.statement(r) {
                Ok((rest, stmt)) => {
                    stmts.push(stmt);
                    r = rest;
                }
                Err(d) => {
                    let at = d.sort_key().1.max(self.off(r));
                    self.diags.push(*d);
                    r = skip_statement(&self.src[at..]);
                }
            }
        }
    }

    /// `statement = ident { value } { option } ;` ending at a newline, `;`,
    /// `}` or the end of the input.
    fn statement(&mut self, i: &'a str) -> PResult<'a, Stmt> {
        let (mut r, keyword) = self.ident(i, "expected a statement")?;
        let mut values = Vec::new();
        let mut options: Vec<Opt> = Vec::new();
        let mut end = keyword.span.end;
        loop {
            let rest = lex::skip_blanks(r, false);
            if at_statement_end(rest) {
                break;
            }
            if let Some((key_rest, key)) = self.option_key(rest) {
                let (rest, opt) = self.option(key, key_rest)?;
                end = opt.span.end;
                options.push(opt);
                r = rest;
                continue;
            }
            if rest.starts_with('=') {
                let at = self.off(rest);
                return Err(Box::new(
                    Diagnostic::error("unexpected '='", Span::new(at, at + 1))
                        .with_label("an option needs a name before '='")
                        .with_help("options are written 'key=value', e.g. 'lr=0.1'"),
                ));
            }
            let (rest, value) = self.value(rest)?;
            if let Some(first) = options.first() {
                return Err(Box::new(
                    Diagnostic::error("a positional value cannot follow options", value.span)
                        .with_secondary(first.span, "the first option")
                        .with_help("move it before the 'key=value' options"),
                ));
            }
            end = value.span.end;
            values.push(value);
            r = rest;
        }
        let span = Span::new(keyword.span.start, end);
        Ok((
            r,
            Stmt {
                keyword,
                values,
                options,
                span,
            },
        ))
    }

    /// An option's key: an identifier followed by `=`.
    fn option_key(&self, i: &'a str) -> Option<(&'a str, Ident)> {
        let (rest, key) = self.ident(i, "").ok()?;
        let r = lex::skip_blanks(rest, false);
        r.starts_with('=').then_some((r, key))
    }

    /// `option = ident "=" value ;` (`i` is at the `=`)
    fn option(&mut self, key: Ident, i: &'a str) -> PResult<'a, Opt> {
        let eq = Span::new(self.off(i), self.off(i) + 1);
        let r = lex::skip_blanks(&i[1..], false);
        if at_statement_end(r) {
            let (what, span) = self.found(r);
            return Err(Box::new(
                Diagnostic::error(format!("expected a value after '=', found {what}"), span)
                    .with_secondary(eq, format!("'{}' needs a value", key.name))
                    .with_help(format!("write '{}=VALUE'", key.name)),
            ));
        }
        let (rest, value) = self.value(r)?;
        let span = key.span.to(value.span);
        Ok((rest, Opt { key, value, span }))
    }

    /// `size = digits "x" digits { "x" digits } ;` as a value (`1x8x8`).
    /// `i` starts with digits and `x`; anything else glued to it (`1x`,
    /// `1x8x`, `2x2.5`) makes the whole word an invalid size.
    fn size(&mut self, i: &'a str) -> PResult<'a, Value> {
        if let Ok((rest, text)) = lex::size_text(i)
            && !rest.starts_with(lex::is_word_char)
        {
            let dims = text
                .split('x')
                .map(|d| d.parse::<u64>().unwrap_or(u64::MAX))
                .collect();
            let kind = ValueKind::Size {
                dims,
                text: text.to_string(),
            };
            let span = self.span(i, rest);
            return Ok((rest, Value { kind, span }));
        }
        let len = i.len() - i.trim_start_matches(lex::is_word_char).len();
        let start = self.off(i);
        Err(Box::new(
            Diagnostic::error(
                format!("invalid size '{}'", &i[..len]),
                Span::new(start, start + len),
            )
            .with_label("expected whole numbers joined by 'x'")
            .with_help(
                "a size is two or more whole numbers joined by 'x' with no spaces, such as 1x8x8",
            ),
        ))
    }

    /// `value = size | number | string | "true" | "false" | ident | list ;`
    /// Numbers may carry a sign here (`lr=-1` parses; `check` rejects it).
    fn value(&mut self, i: &'a str) -> PResult<'a, Value> {
        let start = self.off(i);
        if i.starts_with('"') {
            let (rest, s) = self.string(i)?;
            return Ok((
                rest,
                Value {
                    kind: ValueKind::Str(s),
                    span: self.span(i, rest),
                },
            ));
        }
        if i.starts_with('[') {
            return self.list(i);
        }
        if let Ok((rest, word)) = lex::ident_text(i) {
            let kind = match word {
                "true" => ValueKind::Bool(true),
                "false" => ValueKind::Bool(false),
                _ => ValueKind::Ident(word.to_string()),
            };
            return Ok((
                rest,
                Value {
                    kind,
                    span: self.span(i, rest),
                },
            ));
        }
        if lex::starts_size(i) {
            return self.size(i);
        }
        let unsigned = i.strip_prefix(['-', '+']).unwrap_or(i);
        if unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            let (rest, (value, text)) = self.number(unsigned)?;
            let (value, text) = if unsigned.len() < i.len() {
                let sign = &i[..1];
                let v = if sign == "-" { -value } else { value };
                (v, format!("{sign}{text}"))
            } else {
                (value, text)
            };
            let span = Span::new(start, self.off(rest));
            return Ok((
                rest,
                Value {
                    kind: ValueKind::Number { value, text },
                    span,
                },
            ));
        }
        Err(self.expected(
            i,
            "expected a value (a number, name, string, true/false or list)",
        ))
    }

    /// `list = "[" [ value { "," value } [ "," ] ] "]" ;` — may span lines.
    fn list(&mut self, i: &'a str) -> PResult<'a, Value> {
        let open = Span::new(self.off(i), self.off(i) + 1);
        self.enter(open)?;
        self.brackets += 1;
        let mut items = Vec::new();
        let mut r = self.blanks(&i[1..]);
        while !r.starts_with(']') {
            let (rest, v) = self.value(r)?;
            items.push(v);
            r = self.blanks(rest);
            match r.strip_prefix(',') {
                Some(rest) => r = self.blanks(rest),
                None => break,
            }
        }
        let rest = self.close(r, ']', open)?;
        self.brackets -= 1;
        self.leave();
        Ok((
            rest,
            Value {
                kind: ValueKind::List(items),
                span: Span::new(open.start, self.off(rest)),
            },
        ))
    }

    /// `string = '"' { char | '\"' | '\\' } '"' ;` on one line. A bad escape
    /// is recorded and the string goes on; a missing `"` stops the statement.
    fn string(&mut self, i: &'a str) -> PResult<'a, String> {
        let start = self.off(i);
        let mut out = String::new();
        let mut chars = i.char_indices().skip(1);
        while let Some((k, c)) = chars.next() {
            match c {
                '"' => return Ok((&i[k + 1..], out)),
                '\n' => break,
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => out.push(e),
                    Some((_, '\n' | '\r')) => break,
                    Some((k2, e)) => {
                        let at = start + k;
                        let shown: String = e.escape_default().collect();
                        self.diags.push(
                            Diagnostic::error(
                                format!("unknown escape '\\{shown}' in string"),
                                Span::new(at, start + k2 + e.len_utf8()),
                            )
                            .with_help("the only escapes are '\\\"' and '\\\\'"),
                        );
                        out.push(e);
                    }
                    None => break,
                },
                _ => out.push(c),
            }
        }
        let line_end = i.find('\n').unwrap_or(i.len());
        let body_end = i[..line_end].trim_end_matches('\r').len();
        Err(Box::new(
            Diagnostic::error("unterminated string", Span::new(start, start + body_end))
                .with_label("this string has no closing '\"'")
                .with_help("add '\"' at its end; strings cannot span lines"),
        ))
    }
}

/// True where a statement ends: newline, `;`, `}` or the end of the input.
fn at_statement_end(i: &str) -> bool {
    i.is_empty() || i.starts_with(['\n', ';', '}'])
}

/// Recovery inside a block: skips to the end of the current statement
/// (the next newline, `;` or `}` outside a string), not consuming it.
fn skip_statement(i: &str) -> &str {
    let mut in_string = false;
    let mut escaped = false;
    for (k, c) in i.char_indices() {
        if c == '\n' {
            return &i[k..];
        }
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            ';' | '}' => return &i[k..],
            '#' => {
                let nl = i[k..].find('\n').map_or(i.len(), |n| k + n);
                return &i[nl..];
            }
            _ => {}
        }
    }
    &i[i.len()..]
}

/// Builder helpers on boxed diagnostics, so `?`-style code reads plainly.
trait BoxedDiag {
    fn with_help_boxed(self, help: impl Into<String>) -> Self;
    fn with_note_boxed(self, note: impl Into<String>) -> Self;
}

impl BoxedDiag for Box<Diagnostic> {
    fn with_help_boxed(self, help: impl Into<String>) -> Self {
        Box::new((*self).with_help(help))
    }
    fn with_note_boxed(self, note: impl Into<String>) -> Self {
        Box::new((*self).with_note(note))
    }
}
