//! The search part of an SLS query as a DataFusion filter over the table's columns.
//!
//! A key names a column when the table has one (the promoted `level`, `message`,
//! `trace_id`, `span_id`, and the Proliferate columns: what the catalogue of
//! [`crate::lake::schema`] says), a column of the `frequent` struct when the table keeps
//! that field as a column, a field of the `fields` map otherwise; `__topic__`,
//! `__source__` and `__tag__:name` name the topic, source and tags. Id-like keys
//! (`trace_id`, `user_id`, ...) compare for equality, so that Parquet bloom filters and
//! statistics prune; text compares by SLS tokens (see [`super::text`]).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::execution::FunctionRegistry;
use datafusion::functions::expr_fn::{coalesce, get_field};
use datafusion::logical_expr::{Expr, ScalarUDF, cast, not};
use datafusion::prelude::{col, lit};
use std::sync::Arc;

use super::syntax::{Compare, Key, Search, Term};
use crate::lake::schema::{self, FIELDS, FREQUENT, LEVEL, LINE_NUMBER, MESSAGE, SOURCE, TAGS, TOPIC, column_named};

/// What a search key of this name compares: the catalogue's entry for a column of that name.
fn column_of(key: &str) -> Option<&'static schema::Column> {
    column_named(key).filter(|c| c.search != schema::Search::No)
}

/// The query functions, called by name.
#[derive(Clone, Debug)]
pub struct Functions {
    text: Arc<ScalarUDF>,
    map_text: Arc<ScalarUDF>,
    field: Arc<ScalarUDF>,
    /// The fields the table keeps in columns of its own (under `frequent`).
    pub frequent: Vec<String>,
}

impl Functions {
    pub fn new(ctx: &datafusion::prelude::SessionContext) -> datafusion::common::Result<Self> {
        Ok(Self {
            text: ctx.udf(super::udf::TEXT)?,
            map_text: ctx.udf("sls_map_text")?,
            field: ctx.udf("sls_field")?,
            frequent: Vec::new(),
        })
    }

    /// Whether a text expression matches a term.
    pub fn text_filter(&self, value: Expr, term: &Term) -> Expr {
        self.text(value, term)
    }

    fn text(&self, value: Expr, term: &Term) -> Expr {
        let (t, mode) = term_parts(term);
        self.text.call(vec![value, lit(t), lit(mode)])
    }

    fn map_text(&self, map: Expr, term: &Term) -> Expr {
        let (t, mode) = term_parts(term);
        self.map_text.call(vec![map, lit(t), lit(mode)])
    }

    /// A field's value: its column under `frequent` if the table has one, else
    /// `fields[key]`, or null.
    pub fn field(&self, key: &str) -> Expr {
        if self.frequent.iter().any(|k| k == key) {
            get_field(col(FREQUENT), key)
        } else {
            self.field.call(vec![col(FIELDS), lit(key)])
        }
    }

    /// Whether any field's value matches a term.
    fn any_field_text(&self, term: &Term) -> Expr {
        let in_map = self.map_text(col(FIELDS), term);
        if self.frequent.is_empty() { in_map } else { in_map.or(self.map_text(col(FREQUENT), term)) }
    }

    /// `tags[key]`, or null.
    pub fn tag(&self, key: &str) -> Expr {
        self.field.call(vec![col(TAGS), lit(key)])
    }

    /// A column that SLS logs may also carry as a field of the same name (`user_id`,
    /// `environment`, ...: the catalogue's shared columns): the column, or else the field.
    pub fn shared_column(&self, name: &str) -> Option<Expr> {
        column_named(name).filter(|c| c.shared).map(|c| coalesce(vec![col(c.name), self.field(name)]))
    }

    /// The text a key names.
    fn value(&self, key: &Key) -> Expr {
        match key {
            Key::Topic => col(TOPIC),
            Key::Source => col(SOURCE),
            Key::Tag(t) => self.tag(t),
            Key::Field(k) => match column_named(k) {
                Some(c) if c.promoted => col(c.name),
                _ => self.shared_column(k).unwrap_or_else(|| self.field(k)),
            },
        }
    }

    /// The number a key names: the line number column, or a field parsed as a number.
    fn number(&self, key: &Key) -> Expr {
        match key {
            Key::Field(k) if k == LINE_NUMBER => cast(col(LINE_NUMBER), DataType::Float64),
            _ => Expr::TryCast(datafusion::logical_expr::TryCast::new(Box::new(self.value(key)), DataType::Float64)),
        }
    }

    /// The filter for a search.
    pub fn filter(&self, search: &Search) -> Expr {
        match search {
            Search::All => lit(true),
            Search::Text(term) => self.text(col(MESSAGE), term).or(self.any_field_text(term)),
            Search::Field(key, term) => self.field_filter(key, term),
            Search::Compare(key, op, n) => {
                let value = self.number(key);
                let n = lit(ScalarValue::Float64(Some(*n)));
                match op {
                    Compare::Gt => value.gt(n),
                    Compare::Ge => value.gt_eq(n),
                    Compare::Lt => value.lt(n),
                    Compare::Le => value.lt_eq(n),
                    Compare::Eq => value.eq(n),
                }
            }
            Search::Range { key, low, high, low_inclusive, high_inclusive } => {
                let value = self.number(key);
                let (low, high) = (lit(*low), lit(*high));
                let low = if *low_inclusive { value.clone().gt_eq(low) } else { value.clone().gt(low) };
                let high = if *high_inclusive { value.lt_eq(high) } else { value.lt(high) };
                low.and(high)
            }
            Search::And(a, b) => self.filter(a).and(self.filter(b)),
            Search::Or(a, b) => self.filter(a).or(self.filter(b)),
            // A log without the field does not match the inner search, so it matches its
            // negation: nulls count as false.
            Search::Not(inner) => not(coalesce(vec![self.filter(inner), lit(false)])),
        }
    }

    fn field_filter(&self, key: &Key, term: &Term) -> Expr {
        if let (Key::Field(k), Term::Word(w)) = (key, term) {
            if let Some(c) = column_of(k).filter(|c| c.search == schema::Search::Exact) {
                let column = col(c.name).eq(lit(w.as_str()));
                return if c.shared { column.or(self.field(k).eq(lit(w.as_str()))) } else { column };
            }
            if k == LEVEL {
                // `lower(level) = w`, evaluated once per distinct level.
                return self.text.call(vec![col(LEVEL), lit(w.as_str()), lit("equal")]);
            }
            if k == LINE_NUMBER
                && let Ok(n) = w.parse::<i32>()
            {
                return col(LINE_NUMBER).eq(lit(n));
            }
        }
        if let (Key::Topic | Key::Source, Term::Word(w)) = (key, term) {
            return self.value(key).eq(lit(w.as_str()));
        }
        self.text(self.value(key), term)
    }
}

fn term_parts(term: &Term) -> (&str, &'static str) {
    match term {
        Term::Word(w) => (w, "word"),
        Term::Phrase(p) => (p, "phrase"),
        Term::Pattern(p) => (p, "pattern"),
    }
}
