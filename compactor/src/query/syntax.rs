//! The SLS query language: `search` or `search | SQL`.
//!
//! The search part:
//!
//! ```text
//! query   := or
//! or      := and ("or" and)*
//! and     := not (["and"] not)*          juxtaposition means and
//! not     := "not" not | primary
//! primary := "(" or ")" | "*" | key ":" value | key op number | key "in" range | value
//! key     := word | "__tag__" ":" word   (__topic__, __source__, __tag__:name, field names)
//! value   := word | "quoted phrase"      (* and ? are wildcards in words)
//! op      := ">" | ">=" | "<" | "<=" | "="
//! range   := ("[" | "(") number number ("]" | ")")
//! ```
//!
//! A bare value is a full-text term: it matches a log when a token of its message or of
//! any field equals it (case-insensitively), a wildcard word when a token matches the
//! pattern, a phrase when the text contains it. `key: value` does the same on one field.
//! The SQL part runs over the logs the search selected; it needs no `FROM` and no `WHERE`.
//!
//! A search holds at most [`MAX_TERMS`] terms and nests at most [`MAX_DEPTH`] levels
//! (parentheses and `not`); chains of `and`/`or` become balanced trees, so that a long
//! chain costs its length, not its depth.

use std::fmt;

/// Most terms a search may hold.
pub const MAX_TERMS: usize = 1024;
/// Deepest nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 64;
/// Longest wildcard pattern: matching one costs its length times the text's.
pub const MAX_PATTERN_CHARS: usize = 256;

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub search: Search,
    /// The analytic part after `|`, as written.
    pub sql: Option<String>,
}

/// The search part.
#[derive(Clone, Debug, PartialEq)]
pub enum Search {
    All,
    /// Full-text, over the message and every field.
    Text(Term),
    /// One field's text.
    Field(Key, Term),
    Compare(Key, Compare, f64),
    Range {
        key: Key,
        low: f64,
        high: f64,
        low_inclusive: bool,
        high_inclusive: bool,
    },
    And(Box<Search>, Box<Search>),
    Or(Box<Search>, Box<Search>),
    Not(Box<Search>),
}

/// What a term matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// A whole token, case-insensitively.
    Word(String),
    /// A token matching a pattern with `*` (any run) and `?` (one character).
    Pattern(String),
    /// A phrase: whole tokens in order, case-insensitively.
    Phrase(String),
}

/// Which value a key names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Topic,
    Source,
    Tag(String),
    /// A field (SLS content, Proliferate attribute) or a column of the same name.
    Field(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

/// Why a query does not parse: what and where (a character offset into the query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

impl std::error::Error for SyntaxError {}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Colon,
    Op(Compare),
}

fn describe(token: Option<&(usize, Token)>) -> String {
    match token.map(|(_, t)| t) {
        None => "the end of the query".into(),
        Some(Token::Word(w)) => format!("{w:?}"),
        Some(Token::Quoted(q)) => format!("\"{q}\""),
        Some(Token::LParen) => "'('".into(),
        Some(Token::RParen) => "')'".into(),
        Some(Token::LBracket) => "'['".into(),
        Some(Token::RBracket) => "']'".into(),
        Some(Token::Colon) => "':'".into(),
        Some(Token::Op(_)) => "a comparison".into(),
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, SyntaxError> {
    let mut tokens = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push((at, Token::LParen));
                i += 1;
            }
            ')' => {
                tokens.push((at, Token::RParen));
                i += 1;
            }
            '[' => {
                tokens.push((at, Token::LBracket));
                i += 1;
            }
            ']' => {
                tokens.push((at, Token::RBracket));
                i += 1;
            }
            ':' => {
                tokens.push((at, Token::Colon));
                i += 1;
            }
            '>' | '<' | '=' => {
                let next = chars.get(i + 1).map(|(_, c)| *c);
                let (op, width) = match (c, next) {
                    ('>', Some('=')) => (Compare::Ge, 2),
                    ('<', Some('=')) => (Compare::Le, 2),
                    ('>', _) => (Compare::Gt, 1),
                    ('<', _) => (Compare::Lt, 1),
                    _ => (Compare::Eq, 1),
                };
                tokens.push((at, Token::Op(op)));
                i += width;
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(SyntaxError { position: at, message: "unterminated quoted phrase".into() }),
                        Some((_, '"')) => {
                            i += 1;
                            break;
                        }
                        Some((_, '\\')) if chars.get(i + 1).is_some() => {
                            value.push(chars[i + 1].1);
                            i += 2;
                        }
                        Some((_, c)) => {
                            value.push(*c);
                            i += 1;
                        }
                    }
                }
                tokens.push((at, Token::Quoted(value)));
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.get(i) {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | ':' | '"' | '>' | '<' | '=') {
                        break;
                    }
                    word.push(c);
                    i += 1;
                }
                tokens.push((at, Token::Word(word)));
            }
        }
    }
    Ok(tokens)
}

/// Splits `search | SQL` at the first `|` outside quotes.
fn split_pipe(text: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '|' if !quoted => return (&text[..i], Some(&text[i + 1..])),
            _ => {}
        }
    }
    (text, None)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    /// Parentheses and `not`s open around the current position.
    depth: usize,
    terms: usize,
}

/// `items` joined by `join` as a balanced tree.
fn balanced(mut items: Vec<Search>, join: fn(Box<Search>, Box<Search>) -> Search) -> Search {
    if items.len() == 1 {
        return items.pop().unwrap_or(Search::All);
    }
    let right = items.split_off(items.len() / 2);
    join(Box::new(balanced(items, join)), Box::new(balanced(right, join)))
}

impl Parser {
    fn peek(&self) -> Option<&(usize, Token)> {
        self.tokens.get(self.at)
    }

    fn position(&self) -> usize {
        self.peek().map_or(self.end, |(p, _)| *p)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError { position: self.position(), message: message.into() })
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Result<Search, SyntaxError> {
        let mut operands = vec![self.and()?];
        while self.keyword("or") {
            self.at += 1;
            operands.push(self.and()?);
        }
        Ok(balanced(operands, Search::Or))
    }

    fn and(&mut self) -> Result<Search, SyntaxError> {
        let mut operands = vec![self.not()?];
        loop {
            if self.keyword("and") {
                self.at += 1;
            } else if self.peek().is_none() || self.keyword("or") || matches!(self.peek(), Some((_, Token::RParen))) {
                return Ok(balanced(operands, Search::And));
            }
            operands.push(self.not()?);
        }
    }

    /// Enters a parenthesis or a `not`.
    fn deeper(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.error(format!("the search nests more than {MAX_DEPTH} levels deep"));
        }
        Ok(())
    }

    fn not(&mut self) -> Result<Search, SyntaxError> {
        if self.keyword("not") {
            self.at += 1;
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Search::Not(Box::new(inner)));
        }
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return self.error(format!("the search has more than {MAX_TERMS} terms"));
        }
        self.primary()
    }

    fn number(&mut self) -> Result<f64, SyntaxError> {
        match self.peek() {
            Some((_, Token::Word(w))) => match w.parse::<f64>() {
                Ok(n) if n.is_finite() => {
                    self.at += 1;
                    Ok(n)
                }
                _ => self.error(format!("expected a number, found {w:?}")),
            },
            other => self.error(format!("expected a number, found {}", describe(other))),
        }
    }

    fn term(&mut self) -> Result<Term, SyntaxError> {
        match self.peek().cloned() {
            Some((_, Token::Quoted(q))) => {
                self.at += 1;
                Ok(Term::Phrase(q))
            }
            Some((_, Token::Word(w))) => {
                self.at += 1;
                self.word(w)
            }
            other => self.error(format!("expected a value, found {}", describe(other.as_ref()))),
        }
    }

    /// A word, or a pattern when it has wildcards.
    fn word(&self, w: String) -> Result<Term, SyntaxError> {
        if !w.contains(['*', '?']) {
            return Ok(Term::Word(w));
        }
        if w.chars().count() > MAX_PATTERN_CHARS {
            return self.error(format!("a wildcard pattern may have at most {MAX_PATTERN_CHARS} characters"));
        }
        Ok(Term::Pattern(w))
    }

    fn primary(&mut self) -> Result<Search, SyntaxError> {
        let Some((_, token)) = self.peek().cloned() else {
            return self.error("expected a search term");
        };
        match token {
            Token::LParen => {
                self.at += 1;
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.peek() {
                    Some((_, Token::RParen)) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    other => self.error(format!("expected ')', found {}", describe(other))),
                }
            }
            Token::Quoted(q) => {
                self.at += 1;
                Ok(Search::Text(Term::Phrase(q)))
            }
            Token::Word(w) if w == "*" => {
                self.at += 1;
                Ok(Search::All)
            }
            Token::Word(w) if ["and", "or"].iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                self.error(format!("{w:?} needs a term before it"))
            }
            Token::Word(word) => {
                self.at += 1;
                match self.peek().map(|(_, t)| t.clone()) {
                    Some(Token::Colon) => {
                        self.at += 1;
                        let key = if word == "__tag__" {
                            let Some((_, Token::Word(tag))) = self.peek().cloned() else {
                                return self.error("expected a tag name after __tag__:");
                            };
                            self.at += 1;
                            if !matches!(self.peek(), Some((_, Token::Colon))) {
                                return self.error(format!("expected ':' after __tag__:{tag}"));
                            }
                            self.at += 1;
                            Key::Tag(tag)
                        } else {
                            key_of(word)
                        };
                        Ok(Search::Field(key, self.term()?))
                    }
                    Some(Token::Op(op)) => {
                        self.at += 1;
                        Ok(Search::Compare(key_of(word), op, self.number()?))
                    }
                    Some(Token::Word(next)) if next.eq_ignore_ascii_case("in") => {
                        self.at += 1;
                        let low_inclusive = match self.peek() {
                            Some((_, Token::LBracket)) => true,
                            Some((_, Token::LParen)) => false,
                            other => return self.error(format!("expected '[' or '(', found {}", describe(other))),
                        };
                        self.at += 1;
                        let low = self.number()?;
                        let high = self.number()?;
                        let high_inclusive = match self.peek() {
                            Some((_, Token::RBracket)) => true,
                            Some((_, Token::RParen)) => false,
                            other => return self.error(format!("expected ']' or ')', found {}", describe(other))),
                        };
                        self.at += 1;
                        Ok(Search::Range { key: key_of(word), low, high, low_inclusive, high_inclusive })
                    }
                    _ => Ok(Search::Text(self.word(word)?)),
                }
            }
            other => self.error(format!("unexpected {}", describe(Some(&(0, other))))),
        }
    }
}

fn key_of(word: String) -> Key {
    match word.as_str() {
        "__topic__" => Key::Topic,
        "__source__" => Key::Source,
        _ => Key::Field(word),
    }
}

/// Parses a query.
pub fn parse(text: &str) -> Result<Query, SyntaxError> {
    let (search_text, sql) = split_pipe(text);
    let tokens = tokenize(search_text)?;
    let search = if tokens.is_empty() {
        Search::All
    } else {
        let mut parser = Parser { tokens, at: 0, end: search_text.len(), depth: 0, terms: 0 };
        let search = parser.or()?;
        if parser.peek().is_some() {
            return parser.error(format!("unexpected {}", describe(parser.peek())));
        }
        search
    };
    let sql = match sql.map(str::trim) {
        None => None,
        Some("") => return Err(SyntaxError { position: text.len(), message: "expected SQL after '|'".into() }),
        Some(sql) => Some(sql.to_owned()),
    };
    Ok(Query { search, sql })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(w: &str) -> Term {
        Term::Word(w.into())
    }

    #[test]
    fn parses_the_forms_sls_documents() {
        assert_eq!(parse("").unwrap().search, Search::All);
        assert_eq!(parse("*").unwrap().search, Search::All);
        assert_eq!(parse("error").unwrap().search, Search::Text(word("error")));
        assert_eq!(parse("err*").unwrap().search, Search::Text(Term::Pattern("err*".into())));
        assert_eq!(
            parse("\"connection refused\"").unwrap().search,
            Search::Text(Term::Phrase("connection refused".into()))
        );
        assert_eq!(parse("status: 500").unwrap().search, Search::Field(Key::Field("status".into()), word("500")));
        assert_eq!(
            parse("latency > 100").unwrap().search,
            Search::Compare(Key::Field("latency".into()), Compare::Gt, 100.0)
        );
        assert_eq!(
            parse("latency>=1.5").unwrap().search,
            Search::Compare(Key::Field("latency".into()), Compare::Ge, 1.5)
        );
        assert_eq!(
            parse("latency in [100 200)").unwrap().search,
            Search::Range {
                key: Key::Field("latency".into()),
                low: 100.0,
                high: 200.0,
                low_inclusive: true,
                high_inclusive: false
            }
        );
        assert_eq!(parse("__topic__: nginx").unwrap().search, Search::Field(Key::Topic, word("nginx")));
        assert_eq!(parse("__source__: 10.0.0.1").unwrap().search, Search::Field(Key::Source, word("10.0.0.1")));
        assert_eq!(
            parse("__tag__:host: web-01").unwrap().search,
            Search::Field(Key::Tag("host".into()), word("web-01"))
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_still() {
        let q = parse("a or b and not c").unwrap().search;
        assert_eq!(
            q,
            Search::Or(
                Box::new(Search::Text(word("a"))),
                Box::new(Search::And(
                    Box::new(Search::Text(word("b"))),
                    Box::new(Search::Not(Box::new(Search::Text(word("c")))))
                ))
            )
        );
        assert_eq!(parse("a b").unwrap().search, parse("a and b").unwrap().search);
        assert_eq!(parse("(a or b) c").unwrap().search, parse("(a OR b) AND c").unwrap().search);
    }

    #[test]
    fn splits_the_sql_part_outside_quotes() {
        let q = parse("status: 500 | select count(*) as c").unwrap();
        assert_eq!(q.sql.as_deref(), Some("select count(*) as c"));
        let q = parse("\"a|b\" | select 1").unwrap();
        assert_eq!(q.search, Search::Text(Term::Phrase("a|b".into())));
        assert_eq!(parse("* | select level, count(*) group by level").unwrap().search, Search::All);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("(a or b").unwrap_err();
        assert_eq!((e.position, e.message.as_str()), (7, "expected ')', found the end of the query"));
        let e = parse("a or").unwrap_err();
        assert_eq!(e.message, "expected a search term");
        let e = parse("latency > fast").unwrap_err();
        assert_eq!((e.position, e.message.as_str()), (10, "expected a number, found \"fast\""));
        let e = parse("\"open").unwrap_err();
        assert_eq!(e.message, "unterminated quoted phrase");
        let e = parse("a )").unwrap_err();
        assert_eq!((e.position, e.message.as_str()), (2, "unexpected ')'"));
        assert!(parse("x in [1 2").is_err());
        assert!(parse("* |").is_err());
        assert!(parse("and b").is_err());
    }

    #[test]
    fn deep_and_long_queries_are_refused_not_overflowed() {
        let nested = format!("{}a{}", "(".repeat(1000), ")".repeat(1000));
        assert!(parse(&nested).unwrap_err().message.contains("levels deep"));
        let nots = format!("{}a", "not ".repeat(100));
        assert!(parse(&nots).unwrap_err().message.contains("levels deep"));
        assert!(parse(&format!("{}a", "not ".repeat(60))).is_ok());
        let long = vec!["a"; 1500].join(" and ");
        assert!(parse(&long).unwrap_err().message.contains("terms"));
        // A long chain within the limit parses into a shallow tree.
        fn depth(s: &Search) -> usize {
            match s {
                Search::And(a, b) | Search::Or(a, b) => 1 + depth(a).max(depth(b)),
                Search::Not(a) => 1 + depth(a),
                _ => 1,
            }
        }
        let chain = parse(&vec!["a"; 1000].join(" or ")).unwrap().search;
        assert!(depth(&chain) <= 11, "{}", depth(&chain));
        assert!(parse(&format!("{}*", "a".repeat(300))).unwrap_err().message.contains("wildcard"));
    }
}
