//! DataFusion functions for the SLS query language:
//!
//! - `sls_text(text, term, mode)`: whether a string matches a term (`mode`: `word`,
//!   `phrase` or `pattern`; see [`super::text`]);
//! - `sls_map_text(values, term, mode)`: whether any value of a map, or any column of a
//!   struct of strings, matches;
//! - `sls_field(map, key)`: a map's value for a key, or null.
//!
//! Strings are matched a whole Arrow buffer at a time (see [`Needle::match_rows`]).

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, MapArray, StringArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

use super::text::Needle;

/// Registers the functions on a session.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(TextMatch::new("sls_text")));
    ctx.register_udf(ScalarUDF::from(TextMatch::new("sls_map_text")));
    ctx.register_udf(ScalarUDF::from(FieldLookup::new()));
}

fn literal(value: &ColumnarValue, what: &str) -> Result<String> {
    match value {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
        ) => Ok(s.clone()),
        _ => exec_err!("the {what} must be a string literal"),
    }
}

fn needle(term: &str, mode: &str) -> Result<Needle> {
    match mode {
        "word" => Ok(Needle::word(term)),
        "phrase" => Ok(Needle::phrase(term)),
        "pattern" => Ok(Needle::pattern(term)),
        other => exec_err!("unknown match mode {other}"),
    }
}

/// As a `StringArray` (contiguous values), casting views and large strings.
fn strings(array: &ArrayRef) -> Result<StringArray> {
    match array.data_type() {
        DataType::Utf8 => Ok(array.as_string::<i32>().clone()),
        DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => {
            Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
        }
        other => exec_err!("expected strings, found {other}"),
    }
}

/// Which rows of a string array match, nulls never.
fn match_strings(values: &StringArray, needle: &Needle, out: &mut Vec<bool>) {
    let offsets: Vec<usize> = values.value_offsets().iter().map(|o| *o as usize).collect();
    needle.match_rows(values.value_data(), &offsets, out);
    if let Some(nulls) = values.nulls() {
        for (i, hit) in out.iter_mut().enumerate() {
            *hit &= nulls.is_valid(i);
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TextMatch {
    name: &'static str,
    signature: Signature,
}

impl TextMatch {
    fn new(name: &'static str) -> Self {
        Self { name, signature: Signature::any(3, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for TextMatch {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let needle = needle(&literal(&args.args[1], "term")?, &literal(&args.args[2], "match mode")?)?;
        let array = args.args[0].to_array(args.number_rows)?;
        let mut hits = Vec::new();
        let result = if let Some(columns) = array.as_struct_opt().filter(|_| self.name == "sls_map_text") {
            let mut any = vec![false; columns.len()];
            for column in columns.columns() {
                match_strings(&strings(column)?, &needle, &mut hits);
                any.iter_mut().zip(&hits).for_each(|(a, h)| *a |= *h);
            }
            if let Some(nulls) = columns.nulls() {
                any.iter_mut().enumerate().for_each(|(i, a)| *a &= nulls.is_valid(i));
            }
            BooleanArray::from(any)
        } else if self.name == "sls_map_text" {
            let Some(map) = array.as_any().downcast_ref::<MapArray>() else {
                return exec_err!("sls_map_text needs a map, found {}", array.data_type());
            };
            let values = strings(map.values())?;
            match_strings(&values, &needle, &mut hits);
            let offsets = map.value_offsets();
            let mut out = BooleanBufferBuilder::new(map.len());
            for row in 0..map.len() {
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                out.append(map.is_valid(row) && hits[start..end].iter().any(|h| *h));
            }
            BooleanArray::new(out.finish(), None)
        } else {
            match_strings(&strings(&array)?, &needle, &mut hits);
            BooleanArray::from(hits)
        };
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FieldLookup {
    signature: Signature,
}

impl FieldLookup {
    fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for FieldLookup {
    fn name(&self) -> &str {
        "sls_field"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let key = literal(&args.args[1], "key")?;
        let array = args.args[0].to_array(args.number_rows)?;
        let Some(map) = array.as_any().downcast_ref::<MapArray>() else {
            return exec_err!("sls_field needs a map, found {}", array.data_type());
        };
        let keys = strings(map.keys())?;
        let values = strings(map.values())?;
        let offsets = map.value_offsets();
        let mut out = StringBuilder::with_capacity(map.len(), map.len() * 8);
        for row in 0..map.len() {
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let found = (start..end).find(|&i| keys.is_valid(i) && keys.value(i) == key);
            match found {
                Some(i) if map.is_valid(row) && values.is_valid(i) => out.append_value(values.value(i)),
                _ => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
