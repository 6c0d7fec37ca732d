//! The analytic part of an SLS query (`search | SQL`): one read-only `SELECT` over the
//! logs the search selected, and nothing else.
//!
//! The text is tokenized once, comments are dropped (so that nothing can be commented
//! out), `FROM log` is added where SLS lets it be left out, and the tokens are parsed
//! once into one statement, which is then checked and handed to DataFusion as parsed
//! (never as re-assembled text):
//!
//! - it must be a query (`SELECT`, `WITH ... SELECT`, `VALUES`, set operations): DDL,
//!   DML, `COPY`, `SET`, `EXPLAIN`, `PREPARE` and every other statement are refused;
//! - the only table it may name is the selected logs, `log` (or `logs`), and the names
//!   its own `WITH` defines: no catalog, schema, `information_schema`, URL or file;
//! - table functions other than `generate_series`/`range` are refused, and those take
//!   integer literals and produce at most [`SqlLimits::max_series`] rows;
//! - regular expressions are literals, at most [`SqlLimits::max_regex_bytes`] long, and
//!   must compile within a size limit;
//! - expressions nest at most [`SqlLimits::max_depth`] deep;
//! - the outermost query returns at most [`SqlLimits::default_rows`] rows unless it says
//!   `LIMIT`, and `LIMIT` is at most [`SqlLimits::max_rows`] (SLS's rules).

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, LimitClause, ObjectName, ObjectNamePart,
    Query, Select, SetExpr, Statement, TableFactor, UnaryOperator, Value, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use std::collections::HashSet;
use std::ops::ControlFlow;

/// The names the selected logs go by.
pub const LOG_TABLES: [&str; 2] = ["log", "logs"];

/// What the analytic part may ask for.
#[derive(Clone, Copy, Debug)]
pub struct SqlLimits {
    /// Deepest nesting of expressions and subqueries.
    pub max_depth: usize,
    /// Rows returned when the SQL has no `LIMIT` (SLS: 100).
    pub default_rows: u64,
    /// Largest `LIMIT`.
    pub max_rows: u64,
    /// Most values one `generate_series`/`range` may produce.
    pub max_series: u64,
    /// Longest regular expression, and the compiled size it may have is 64 times that.
    pub max_regex_bytes: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self { max_depth: 64, default_rows: 100, max_rows: 1_000_000, max_series: 10_000_000, max_regex_bytes: 1024 }
    }
}

/// SQL checked and ready to plan over the `log` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Analytic {
    /// One query, as parsed, with the row limit applied.
    pub statement: Statement,
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

/// Functions whose second argument is a regular expression.
const REGEX_FUNCTIONS: [&str; 6] =
    ["regexp_like", "regexp_match", "regexp_replace", "regexp_count", "regexp_instr", "regexp_substr"];
/// Functions (table or scalar) that generate a series from integer bounds.
const SERIES_FUNCTIONS: [&str; 2] = ["generate_series", "range"];

/// Prepares SLS SQL: see the module documentation for what is accepted.
pub fn prepare(sql: &str, limits: &SqlLimits) -> Result<Analytic, String> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().map_err(|e| format!("invalid SQL: {e}"))?;
    // Comments go: what is parsed is what runs, and nothing added below can be commented out.
    let tokens: Vec<Token> = tokens
        .into_iter()
        .map(|t| match t {
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                Token::Whitespace(Whitespace::Space)
            }
            other => other,
        })
        .collect();
    if let Some(kind) = first_keyword(&tokens).filter(|k| !matches!(k.as_str(), "SELECT" | "WITH" | "VALUES" | "(")) {
        return Err(format!("only a SELECT may follow '|': {kind} is not allowed"));
    }
    let (tokens, identifiers) = with_from_log(tokens);
    let mut parser = Parser::new(&dialect).with_recursion_limit(limits.max_depth).with_tokens(tokens);
    let mut statements = parser.parse_statements().map_err(|e| format!("invalid SQL: {e}"))?;
    if statements.len() != 1 {
        return Err("expected one SQL statement after '|'".into());
    }
    let mut statement = statements.remove(0);
    let Statement::Query(query) = &mut statement else {
        return Err(format!("only a SELECT may follow '|': {} is not allowed", statement_kind(&statement)));
    };
    let mut check = Check { limits, ctes: HashSet::new(), depth: 0 };
    if let ControlFlow::Break(reason) = query.visit(&mut check) {
        return Err(reason);
    }
    limit_rows(query, limits)?;
    Ok(Analytic { statement, identifiers })
}

/// The first keyword of the statement (uppercase), or `(` for a parenthesized query.
fn first_keyword(tokens: &[Token]) -> Option<String> {
    tokens.iter().find(|t| !matches!(t, Token::Whitespace(_))).map(|t| match t {
        Token::Word(w) => w.value.to_uppercase(),
        Token::LParen => "(".to_owned(),
        other => other.to_string(),
    })
}

/// What kind of statement it is, for the message that refuses it.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let mut words = text.split_whitespace().take(2);
    match (words.next(), words.next()) {
        (Some(first), Some(second)) if matches!(first, "CREATE" | "DROP" | "ALTER" | "SHOW") => {
            format!("{first} {second}")
        }
        (Some(first), _) => first.to_owned(),
        _ => "an empty statement".to_owned(),
    }
}

/// Adds `FROM log` when the outer query has no `FROM`, and lists every identifier the
/// SQL mentions but does not define itself (`count(*) AS c`).
fn with_from_log(tokens: Vec<Token>) -> (Vec<Token>, Vec<String>) {
    let mut depth = 0i32;
    let mut has_from = false;
    let mut insert_at: Option<usize> = None;
    let mut identifiers = Vec::new();
    let mut aliases = Vec::new();
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
    identifiers.retain(|i| !aliases.contains(i));
    identifiers.sort();
    identifiers.dedup();
    if has_from {
        return (tokens, identifiers);
    }
    let from_log = [
        Token::Whitespace(Whitespace::Space),
        Token::make_keyword("FROM"),
        Token::Whitespace(Whitespace::Space),
        Token::make_word(LOG_TABLES[0], None),
        Token::Whitespace(Whitespace::Space),
    ];
    let mut out = tokens;
    // Before the clause that ends the select list, or before a trailing `;`.
    let at = insert_at.unwrap_or_else(|| {
        let end = out.iter().rposition(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon | Token::EOF));
        end.map_or(out.len(), |e| e + 1)
    });
    out.splice(at..at, from_log);
    (out, identifiers)
}

/// Applies SLS's row rules to the outermost query: 100 rows unless it says `LIMIT`, and
/// `LIMIT` at most `max_rows`.
fn limit_rows(query: &mut Query, limits: &SqlLimits) -> Result<(), String> {
    if query.fetch.is_some() {
        return Err("FETCH is not supported: use LIMIT".into());
    }
    let limit = match &query.limit_clause {
        None | Some(LimitClause::LimitOffset { limit: None, .. }) => None,
        Some(LimitClause::LimitOffset { limit: Some(limit), .. } | LimitClause::OffsetCommaLimit { limit, .. }) => {
            Some(integer(limit).ok_or_else(|| format!("LIMIT {limit} is not a number"))?)
        }
    };
    match limit {
        Some(n) if n < 0 || n.unsigned_abs() > limits.max_rows => {
            Err(format!("LIMIT {n} is out of range: at most {} rows", limits.max_rows))
        }
        Some(_) => Ok(()),
        None => {
            let default = Expr::value(Value::Number(limits.default_rows.to_string(), false));
            match &mut query.limit_clause {
                Some(LimitClause::LimitOffset { limit, .. }) => *limit = Some(default),
                _ => {
                    query.limit_clause =
                        Some(LimitClause::LimitOffset { limit: Some(default), offset: None, limit_by: Vec::new() })
                }
            }
            Ok(())
        }
    }
}

/// An integer literal, possibly negated.
fn integer(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => integer(expr).and_then(i64::checked_neg),
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } | Expr::Nested(expr) => integer(expr),
        _ => None,
    }
}

/// A string literal.
fn string(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s)
            | Value::NationalStringLiteral(s)
            | Value::DollarQuotedString(datafusion::sql::sqlparser::ast::DollarQuotedString { value: s, .. }) => {
                Some(s)
            }
            _ => None,
        },
        Expr::Nested(expr) => string(expr),
        _ => None,
    }
}

/// A single-part name, lowercased.
fn simple_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Some(ident.value.to_lowercase()),
        _ => None,
    }
}

fn function_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(ObjectNamePart::as_ident)
        .map(|i| i.value.to_lowercase())
        .unwrap_or_else(|| name.to_string().to_lowercase())
}

fn plain_args(args: &[FunctionArg]) -> Vec<Option<&Expr>> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
            | FunctionArg::Named { arg: FunctionArgExpr::Expr(e), .. }
            | FunctionArg::ExprNamed { arg: FunctionArgExpr::Expr(e), .. } => Some(e),
            _ => None,
        })
        .collect()
}

/// The walk over a parsed query that enforces the rules.
struct Check<'a> {
    limits: &'a SqlLimits,
    /// Names defined by `WITH` clauses.
    ctes: HashSet<String>,
    depth: usize,
}

impl Check<'_> {
    fn series(&self, name: &str, args: &[Option<&Expr>]) -> ControlFlow<String> {
        let values: Option<Vec<i64>> = args.iter().map(|a| a.and_then(integer)).collect();
        let (start, stop, step) = match values.as_deref() {
            Some([stop]) => (0, *stop, 1),
            Some([start, stop]) => (*start, *stop, 1),
            Some([start, stop, step]) => (*start, *stop, *step),
            _ => return ControlFlow::Break(format!("{name} takes one to three integer literals")),
        };
        if step == 0 {
            return ControlFlow::Break(format!("{name}: the step must not be 0"));
        }
        let count = (i128::from(stop) - i128::from(start)) / i128::from(step) + 1;
        if count > i128::from(self.limits.max_series) {
            return ControlFlow::Break(format!(
                "{name} would produce {count} values, more than the {} allowed",
                self.limits.max_series
            ));
        }
        ControlFlow::Continue(())
    }

    fn regex(&self, pattern: Option<&Expr>) -> ControlFlow<String> {
        let Some(pattern) = pattern.and_then(string) else {
            return ControlFlow::Break("a regular expression must be a string literal".into());
        };
        if pattern.len() > self.limits.max_regex_bytes {
            return ControlFlow::Break(format!(
                "a regular expression is {} bytes, more than the {} allowed",
                pattern.len(),
                self.limits.max_regex_bytes
            ));
        }
        match regex::RegexBuilder::new(pattern).size_limit(self.limits.max_regex_bytes * 64).build() {
            Ok(_) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(format!("regular expression {pattern:?} is not allowed: {e}")),
        }
    }
}

impl Visitor for Check<'_> {
    type Break = String;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if let Some(with) = &query.with {
            self.ctes.extend(with.cte_tables.iter().map(|cte| cte.alias.name.value.to_lowercase()));
        }
        if !query.locks.is_empty() || query.for_clause.is_some() || query.settings.is_some() {
            return ControlFlow::Break("locking, FOR and SETTINGS clauses are not allowed".into());
        }
        if !query.pipe_operators.is_empty() || query.format_clause.is_some() {
            return ControlFlow::Break("pipe operators and FORMAT are not supported".into());
        }
        if let SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) = query.body.as_ref() {
            return ControlFlow::Break("only a SELECT may follow '|'".into());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        if select.into.is_some() {
            return ControlFlow::Break("SELECT INTO is not allowed".into());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        match factor {
            TableFactor::Table { name, args: None, version: None, partitions, json_path: None, .. }
                if partitions.is_empty() =>
            {
                match simple_name(name) {
                    Some(n) if LOG_TABLES.contains(&n.as_str()) || self.ctes.contains(&n) => ControlFlow::Continue(()),
                    _ => ControlFlow::Break(format!(
                        "table {name} is not available: the SQL part reads the logs the search selected, as `log`"
                    )),
                }
            }
            TableFactor::Table { name, args: Some(args), .. } => {
                let function = function_name(name);
                if simple_name(name).is_some_and(|n| SERIES_FUNCTIONS.contains(&n.as_str())) {
                    self.series(&function, &plain_args(&args.args))
                } else {
                    ControlFlow::Break(format!("table function {name} is not allowed"))
                }
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } | TableFactor::UNNEST { .. } => {
                ControlFlow::Continue(())
            }
            other => ControlFlow::Break(format!("{} is not allowed in the SQL part", first_words(&other.to_string()))),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return ControlFlow::Break(format!("the SQL nests more than {} levels deep", self.limits.max_depth));
        }
        match expr {
            Expr::Function(f) => {
                let name = function_name(&f.name);
                let FunctionArguments::List(list) = &f.args else { return ControlFlow::Continue(()) };
                let args = plain_args(&list.args);
                if SERIES_FUNCTIONS.contains(&name.as_str()) {
                    return self.series(&name, &args);
                }
                if REGEX_FUNCTIONS.contains(&name.as_str()) {
                    return self.regex(args.get(1).copied().flatten());
                }
                ControlFlow::Continue(())
            }
            Expr::BinaryOp {
                op:
                    BinaryOperator::Regexp
                    | BinaryOperator::PGRegexMatch
                    | BinaryOperator::PGRegexIMatch
                    | BinaryOperator::PGRegexNotMatch
                    | BinaryOperator::PGRegexNotIMatch,
                right,
                ..
            } => self.regex(Some(right)),
            Expr::SimilarTo { pattern, .. } | Expr::RLike { pattern, .. } => self.regex(Some(pattern)),
            _ => ControlFlow::Continue(()),
        }
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// The first two words of a clause, to name it in a message.
fn first_words(text: &str) -> String {
    text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(text: &str) -> String {
        prepare(text, &SqlLimits::default()).unwrap().statement.to_string()
    }

    fn refused(text: &str) -> String {
        prepare(text, &SqlLimits::default()).unwrap_err()
    }

    #[test]
    fn adds_from_log_where_sls_leaves_it_out() {
        assert_eq!(sql("select count(*) as c"), "SELECT count(*) AS c FROM log LIMIT 100");
        assert_eq!(
            sql("select status, count(*) as c group by status order by c desc limit 5"),
            "SELECT status, count(*) AS c FROM log GROUP BY status ORDER BY c DESC LIMIT 5"
        );
        assert_eq!(
            sql("select count(*) where cast(latency as double) > 10"),
            "SELECT count(*) FROM log WHERE CAST(latency AS DOUBLE) > 10 LIMIT 100"
        );
        assert_eq!(sql("select count(*) from log"), "SELECT count(*) FROM log LIMIT 100");
        assert!(
            sql("select max(c) from (select count(*) as c from log group by status)")
                .starts_with("SELECT max(c) FROM (SELECT")
        );
        assert_eq!(sql("select 1;"), "SELECT 1 FROM log LIMIT 100");
    }

    #[test]
    fn lists_identifiers_and_refuses_nonsense() {
        let a = prepare("select \"__tag__:host\", request_uri, count(*) group by 1, 2", &SqlLimits::default()).unwrap();
        assert!(a.identifiers.contains(&"__tag__:host".to_owned()));
        assert!(a.identifiers.contains(&"request_uri".to_owned()));
        let b = prepare("select count(*) as c group by status order by c", &SqlLimits::default()).unwrap();
        assert!(!b.identifiers.contains(&"c".to_owned()), "{:?}", b.identifiers);
        refused("select count(");
        refused("select level,, count(*)");
        assert!(refused("select 1; select 2").contains("one SQL statement"));
    }

    #[test]
    fn only_a_select_over_the_selected_logs() {
        for (text, named) in [
            ("COPY (SELECT 'x' AS x) TO '/tmp/pwned' --", "COPY"),
            ("copy (select * from logs) to '/tmp/x.json'", "COPY"),
            ("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc/'", "CREATE"),
            ("create table t as select 1", "CREATE"),
            ("insert into log values (1)", "INSERT"),
            ("drop table log", "DROP"),
            ("set datafusion.execution.target_partitions = 1", "SET"),
            ("explain analyze select 1", "EXPLAIN"),
            ("prepare p as select 1", "PREPARE"),
            ("show tables", "SHOW"),
            ("delete from log", "DELETE"),
        ] {
            let message = refused(text);
            assert!(message.contains("only a SELECT") && message.contains(named), "{text}: {message}");
        }
        for text in [
            "select * from compacted",
            "select * from fresh",
            "select * from information_schema.tables",
            "select * from datafusion.public.log",
            "select * from '/etc/passwd'",
            "select * from \"s3://bucket/x.parquet\"",
            "select * from log, other",
            "select * from read_parquet('/tmp/x.parquet')",
            "select * from log join secrets on true",
            "with a as (select 1) select * from b",
        ] {
            let message = refused(text);
            assert!(message.contains("not available") || message.contains("not allowed"), "{text}: {message}");
        }
        assert!(refused("select 1 into t from log").contains("SELECT INTO"));
        // A comment cannot hide the rest of the statement, nor the FROM added to it.
        assert_eq!(sql("select level -- , secret from elsewhere"), "SELECT level FROM log LIMIT 100");
        assert_eq!(sql("select /* from x */ level"), "SELECT level FROM log LIMIT 100");
        let second = refused("select 1; copy (select 1) to '/tmp/x' --");
        assert!(second.contains("one SQL statement") || second.contains("invalid SQL"), "{second}");
        // What is allowed: CTEs, subqueries, set operations, unnest, self joins.
        sql("with errors as (select * from log where level = 'error') select count(*) from errors");
        sql("select a.level from log a join logs b on a.trace_id = b.trace_id");
        sql("select level from log union all select level from logs");
        sql("select * from unnest([1, 2, 3])");
    }

    #[test]
    fn bombs_are_bounded() {
        sql("select * from generate_series(1, 1000)");
        assert!(refused("select count(*) from generate_series(1, 100000000000)").contains("more than"));
        assert!(refused("select count(*) from range(0, 9223372036854775807, 1)").contains("more than"));
        assert!(refused("select range(1, 100000000000)").contains("more than"));
        assert!(refused("select generate_series(1, level) from log").contains("integer literals"));
        assert!(refused("select * from generate_series(1, 10, 0)").contains("step"));
        sql("select regexp_like(message, 'time(out)?') from log");
        assert!(refused("select regexp_like(message, level) from log").contains("string literal"));
        assert!(refused(&format!("select regexp_like(message, '{}') from log", "a".repeat(2000))).contains("bytes"));
        assert!(refused("select regexp_like(message, '(a{1000}){1000}') from log").contains("not allowed"));
        assert!(refused("select message ~ '((x{100}){100}){100}' from log").contains("not allowed"));
        assert!(refused(&format!("select {}1{} from log", "(".repeat(500), ")".repeat(500))).contains("SQL"));
        let chain = vec!["1"; 2000].join(" + ");
        assert!(refused(&format!("select {chain} from log")).contains("levels deep"));
        assert!(refused("select level from log limit 2000000").contains("at most"));
        assert!(refused("select level from log limit -1").contains("out of range"));
        assert_eq!(sql("select level from log limit 1000000"), "SELECT level FROM log LIMIT 1000000");
        assert_eq!(sql("select level from log offset 5"), "SELECT level FROM log LIMIT 100 OFFSET 5");
    }
}
