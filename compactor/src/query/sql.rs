//! The analytic part of an SLS query (`search | SQL`): SLS lets it omit `FROM` (it runs
//! over the logs the search selected) and name fields as columns. This module adds
//! `FROM log` where it is missing and lists the identifiers the SQL uses, so that the
//! `log` view can project those fields.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// SQL ready to run over the `log` view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analytic {
    pub sql: String,
    /// Every identifier the SQL mentions (candidate field names).
    pub identifiers: Vec<String>,
}

/// Clauses that follow the select list: `FROM log` goes before the first of them.
const AFTER_SELECT_LIST: [Keyword; 8] = [
    Keyword::WHERE,
    Keyword::GROUP,
    Keyword::HAVING,
    Keyword::ORDER,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::WINDOW,
    Keyword::UNION,
];

/// Prepares SLS SQL: adds `FROM log` when the query has none, checks that it parses.
pub fn prepare(sql: &str) -> Result<Analytic, String> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().map_err(|e| format!("invalid SQL: {e}"))?;
    let mut depth = 0i32;
    let mut has_from = false;
    let mut insert_at: Option<usize> = None;
    let mut identifiers = Vec::new();
    let mut aliases = Vec::new();
    let mut text_len = 0usize;
    let mut positions = Vec::with_capacity(tokens.len());
    for token in &tokens {
        positions.push(text_len);
        text_len += token.to_string().len();
    }
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) => {
                let after_as = tokens[..i]
                    .iter()
                    .rev()
                    .find(|t| !matches!(t, Token::Whitespace(_)))
                    .is_some_and(|t| matches!(t, Token::Word(p) if p.keyword == Keyword::AS));
                if after_as {
                    aliases.push(w.value.clone());
                }
                if depth == 0 && w.quote_style.is_none() {
                    if w.keyword == Keyword::FROM {
                        has_from = true;
                    } else if insert_at.is_none() && AFTER_SELECT_LIST.contains(&w.keyword) {
                        insert_at = Some(i);
                    }
                }
                identifiers.push(w.value.clone());
            }
            _ => {}
        }
    }
    let rebuilt: String = if has_from {
        sql.to_owned()
    } else {
        let mut out = String::new();
        for (i, token) in tokens.iter().enumerate() {
            if insert_at == Some(i) {
                out.push_str("FROM log ");
            }
            out.push_str(&token.to_string());
        }
        if insert_at.is_none() {
            out.push_str(" FROM log");
        }
        out
    };
    let statements = Parser::parse_sql(&dialect, &rebuilt).map_err(|e| format!("invalid SQL: {e}"))?;
    if statements.len() != 1 {
        return Err("expected one SQL statement after '|'".into());
    }
    // Names the SQL defines itself (`count(*) AS c`) are not fields.
    identifiers.retain(|i| !aliases.contains(i));
    identifiers.sort();
    identifiers.dedup();
    Ok(Analytic { sql: rebuilt, identifiers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_from_log_where_sls_leaves_it_out() {
        assert_eq!(prepare("select count(*) as c").unwrap().sql, "select count(*) as c FROM log");
        assert_eq!(
            prepare("select status, count(*) as c group by status order by c desc limit 5").unwrap().sql,
            "select status, count(*) as c FROM log group by status order by c desc limit 5"
        );
        assert_eq!(
            prepare("select count(*) where cast(latency as double) > 10").unwrap().sql,
            "select count(*) FROM log where cast(latency as double) > 10"
        );
        assert_eq!(prepare("select count(*) from log").unwrap().sql, "select count(*) from log");
        let sub = prepare("select max(c) from (select count(*) as c from log group by status)").unwrap();
        assert!(sub.sql.starts_with("select max(c) from (select"), "{}", sub.sql);
    }

    #[test]
    fn lists_identifiers_and_refuses_nonsense() {
        let a = prepare("select \"__tag__:host\", request_uri, count(*) group by 1, 2").unwrap();
        assert!(a.identifiers.contains(&"__tag__:host".to_owned()));
        assert!(a.identifiers.contains(&"request_uri".to_owned()));
        let b = prepare("select count(*) as c group by status order by c").unwrap();
        assert!(!b.identifiers.contains(&"c".to_owned()), "{:?}", b.identifiers);
        assert!(prepare("select count(").is_err());
        assert!(prepare("select level,, count(*)").is_err());
        assert!(prepare("select 1; select 2").is_err());
    }
}
