//! Scalar functions with a bound on what one call may produce.
//!
//! A memory pool bounds what operators hold (sorts, joins, aggregates), but not what a
//! scalar function allocates for its result: `repeat('x', 1e12)`, `lpad('', 1e12)`,
//! `replace` of a character by a long string, or `concat` of one column a thousand times
//! would allocate without asking. Every scalar function of the SQL session is wrapped:
//! before it runs, the size of its result is estimated from its arguments (exactly for
//! the functions whose result can outgrow their arguments, as twice the arguments for
//! the others), and a call over the limit fails with `ResourcesExhausted` instead of
//! allocating.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// A scalar function whose calls may produce at most `limit` bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Bounded {
    inner: ScalarUDF,
    limit: usize,
}

impl Bounded {
    pub fn wrap(inner: &ScalarUDF, limit: usize) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self { inner: inner.clone(), limit })
    }
}

/// Bytes of an argument over all rows (a scalar counts once per row).
fn bytes(value: &ColumnarValue, rows: usize) -> u128 {
    match value {
        ColumnarValue::Array(a) => a.get_array_memory_size() as u128,
        ColumnarValue::Scalar(s) => s.size() as u128 * rows.max(1) as u128,
    }
}

/// The largest integer an argument holds (0 when none, or when it is not a number).
fn max_int(value: Option<&ColumnarValue>) -> u128 {
    let Some(value) = value else { return 0 };
    let array: ArrayRef = match value {
        ColumnarValue::Array(a) => a.clone(),
        ColumnarValue::Scalar(s) => match s.to_array() {
            Ok(a) => a,
            Err(_) => return 0,
        },
    };
    match cast(&array, &DataType::Int64) {
        Ok(ints) => ints.as_primitive::<Int64Type>().iter().flatten().map(i64::unsigned_abs).max().unwrap_or(0).into(),
        Err(_) => 0,
    }
}

/// The longest string an argument holds, in bytes.
fn max_len(value: Option<&ColumnarValue>) -> u128 {
    let Some(value) = value else { return 0 };
    match value {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
        ) => s.len() as u128,
        ColumnarValue::Scalar(_) => 0,
        ColumnarValue::Array(a) => match cast(a, &DataType::Utf8) {
            Ok(strings) => strings.as_string::<i32>().iter().flatten().map(str::len).max().unwrap_or(0) as u128,
            Err(_) => a.get_array_memory_size() as u128,
        },
    }
}

/// How many values a `range`/`generate_series` call makes per row at most.
fn series_len(args: &[ColumnarValue]) -> u128 {
    let ints = |i: usize| args.get(i).map(|a| max_int(Some(a)));
    let (start, stop) = match args.len() {
        1 => (0, ints(0).unwrap_or(0)),
        _ => (ints(0).unwrap_or(0), ints(1).unwrap_or(0)),
    };
    // Bounds by magnitude: |stop - start| <= |stop| + |start|; a step only shortens it.
    start + stop + 1
}

/// An upper bound on the bytes a call produces.
fn estimate(name: &str, args: &[ColumnarValue], rows: usize) -> u128 {
    let rows_u = rows.max(1) as u128;
    let all: u128 = args.iter().map(|a| bytes(a, rows)).sum();
    let arg = |i: usize| args.get(i);
    match name {
        "repeat" => bytes(&args[0], rows).saturating_mul(max_int(arg(1))),
        "lpad" | "rpad" => rows_u.saturating_mul(max_int(arg(1))).saturating_mul(4) + all,
        "replace" => {
            let text = arg(0).map_or(0, |a| bytes(a, rows));
            text.saturating_mul(max_len(arg(2)).max(1)) + rows_u.saturating_mul(max_len(arg(2)))
        }
        "regexp_replace" => {
            let text = arg(0).map_or(0, |a| bytes(a, rows));
            (text + rows_u).saturating_mul(max_len(arg(2)) + 1).saturating_mul(2)
        }
        "array_repeat" => arg(0).map_or(0, |a| bytes(a, rows)).saturating_mul(max_int(arg(1))),
        "array_resize" => rows_u.saturating_mul(max_int(arg(1))).saturating_mul(16) + all,
        "range" | "generate_series" | "generate_series_inner" => {
            rows_u.saturating_mul(series_len(args)).saturating_mul(8)
        }
        _ => all.saturating_mul(2) + rows_u * 64,
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }
    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        self.inner.inner().with_updated_config(config).map(|updated| Self::wrap(&updated, self.limit))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.inner.name();
        let estimated = estimate(name, &args.args, args.number_rows);
        if estimated > self.limit as u128 {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{name}() would produce about {} MB, more than the {} MB one function call may produce",
                estimated / 1_000_000,
                self.limit / 1_000_000
            )));
        }
        self.inner.invoke_with_args(args)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }
    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }
    fn conditional_arguments<'a>(&self, args: &'a [Expr]) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }
    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }
    fn propagate_constraints(&self, interval: &Interval, inputs: &[&Interval]) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }
    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }
    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }
    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use std::sync::Arc;

    fn text(rows: usize, each: &str) -> ColumnarValue {
        ColumnarValue::Array(Arc::new(StringArray::from(vec![each; rows])))
    }

    fn int(n: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(n)))
    }

    fn string(s: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.to_owned())))
    }

    #[test]
    fn amplifiers_are_estimated_from_their_arguments() {
        assert!(estimate("repeat", &[string("x"), int(1_000_000_000_000)], 1) >= 1_000_000_000_000);
        assert!(estimate("repeat", &[text(1000, "ab"), int(3)], 1000) < 1_000_000);
        assert!(estimate("lpad", &[string(""), int(1 << 40)], 1) >= 1 << 40);
        assert!(
            estimate("replace", &[text(8192, &"a".repeat(100)), string("a"), string(&"b".repeat(10_000))], 8192)
                > 1 << 33
        );
        assert!(estimate("range", &[int(0), int(1 << 40)], 1) >= 1 << 43);
        assert!(estimate("array_repeat", &[int(1), int(1 << 40)], 1) >= 1 << 40);
        let many: Vec<ColumnarValue> = (0..1000).map(|_| text(8192, &"m".repeat(100))).collect();
        assert!(estimate("concat", &many, 8192) > 1 << 30, "a thousand columns at once");
        assert!(estimate("lower", &[text(8192, "Hello")], 8192) < 1 << 20);
    }
}
