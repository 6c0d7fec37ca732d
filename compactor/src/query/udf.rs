//! DataFusion functions for the SLS query language:
//!
//! - `sls_text(text, term, mode)`: whether a string matches a term (`mode`: `word`,
//!   `phrase`, `pattern`, or `equal` for `lower(text) = term`; see [`super::text`]);
//! - `sls_map_text(values, term, mode)`: whether any value of a map, or any column of a
//!   struct of strings, matches;
//! - `sls_field(map, key)`: a map's value for a key, or null.
//!
//! Strings are matched a whole Arrow buffer at a time (see [`Needle::match_rows`]);
//! dictionaries (the few-valued columns as Parquet files hold them, see [`super::files`])
//! once per dictionary value, and string views (the other dictionary-encoded columns)
//! once per distinct value.

use datafusion::arrow::array::{
    AnyDictionaryArray, Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, MapArray, StringArray,
    StringBuilder, StringViewArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Int32Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

use super::text::Needle;

/// The name of the text match, `sls_text`.
pub const TEXT: &str = "sls_text";

/// `sls_views(dictionary)`: a dictionary of strings as string views, each row's view its
/// key's value's, the bytes left where the dictionary has them (as Parquet reads a column
/// into views), for the scans of [`super::files`]: Arrow's cast builds each row's view
/// anew, several times slower.
pub fn views() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(Views { signature: Signature::any(1, Volatility::Immutable) }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Views {
    signature: Signature,
}

impl ScalarUDFImpl for Views {
    fn name(&self) -> &str {
        "sls_views"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8View)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let Some(dictionary) = array.as_any_dictionary_opt() else {
            return Ok(ColumnarValue::Array(cast(&array, &DataType::Utf8View)?));
        };
        let values = cast(dictionary.values(), &DataType::Utf8View)?;
        Ok(ColumnarValue::Array(take(&values, dictionary.keys(), None)?))
    }
}

/// Registers the functions on a session.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(TextMatch::new(TEXT)));
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
        "equal" => Ok(Needle::equal(term)),
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

/// Slots of the table of views [`match_views`] remembers (a power of two).
const VIEW_SLOTS: usize = 1024;
/// A slot that holds no view: no array has a string of 2^32 - 1 bytes.
const NO_VIEW: u128 = u128::MAX;

/// Which rows of a string view array match, nulls never, each distinct value matched
/// about once: a view holds a short value whole, and a longer one's place in the array's
/// buffers, which the rows read from one Parquet dictionary entry share, so equal views
/// are equal values. The views seen are remembered in a direct-mapped table (a slot per
/// hash of the view, the last view there kept), which answers a repeated value with one
/// comparison and no branch to mispredict; past its size (mostly unique text) values are
/// matched one by one.
fn match_views(values: &StringViewArray, needle: &Needle) -> BooleanArray {
    let views = values.views();
    let mut table = ViewTable { seen: Box::new([NO_VIEW; VIEW_SLOTS]), hit: Box::new([false; VIEW_SLOTS]) };
    let mut words = Vec::with_capacity(views.len().div_ceil(64));
    for (chunk, first) in views.chunks(64).zip((0..).step_by(64)) {
        let mut word = 0u64;
        for (i, &view) in chunk.iter().enumerate() {
            let slot = slot_of::<VIEW_SLOTS>(view);
            let hit =
                if table.seen[slot] == view { table.hit[slot] } else { table.miss(values, first + i, slot, needle) };
            word |= u64::from(hit) << i;
        }
        words.push(word);
    }
    let matched = BooleanBuffer::new(Buffer::from_vec(words), 0, views.len());
    // A null row whose view equals a remembered one was answered from the table.
    let matched = match values.nulls() {
        Some(nulls) => &matched & nulls.inner(),
        None => matched,
    };
    BooleanArray::new(matched, None)
}

/// The views [`match_views`] saw last in each slot, and whether each matched.
struct ViewTable {
    seen: Box<[u128; VIEW_SLOTS]>,
    hit: Box<[bool; VIEW_SLOTS]>,
}

impl ViewTable {
    /// Matches a row whose view is not in its `slot` of the table, and remembers it.
    #[cold]
    #[inline(never)]
    fn miss(&mut self, values: &StringViewArray, row: usize, slot: usize, needle: &Needle) -> bool {
        if values.is_null(row) {
            return false;
        }
        let view = values.views()[row];
        let hit = needle.matches(values.value(row).as_bytes());
        (self.seen[slot], self.hit[slot]) = (view, hit);
        hit
    }
}

/// A view's slot in a table of `SLOTS` (a power of two): its two halves mixed (views are
/// already well spread: length, prefix, buffer and offset).
pub(crate) fn slot_of<const SLOTS: usize>(view: u128) -> usize {
    let (low, high) = (view as u64, (view >> 64) as u64);
    let mixed = (low ^ high.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> (64 - SLOTS.trailing_zeros())) as usize
}

/// Which rows of a dictionary array match, nulls never: its values are matched once each,
/// and each row takes its key's answer.
fn match_dictionary(dictionary: &dyn AnyDictionaryArray, needle: &Needle) -> Result<BooleanArray> {
    let values = dictionary.values();
    let hits: Vec<bool> = match values.as_string_view_opt() {
        Some(views) => match_views(views, needle).values().iter().collect(),
        None => {
            let mut hits = Vec::new();
            match_strings(&strings(values)?, needle, &mut hits);
            hits
        }
    };
    let matched = match dictionary.keys().as_primitive_opt::<Int32Type>() {
        // As Parquet files are read: no key to widen.
        Some(keys) => {
            let keys = keys.values();
            BooleanBuffer::collect_bool(keys.len(), |i| hits.get(keys[i] as usize).copied().unwrap_or(false))
        }
        None => {
            let keys = dictionary.normalized_keys();
            BooleanBuffer::collect_bool(keys.len(), |i| hits.get(keys[i]).copied().unwrap_or(false))
        }
    };
    let matched = match dictionary.keys().nulls() {
        Some(nulls) => &matched & nulls.inner(),
        None => matched,
    };
    Ok(BooleanArray::new(matched, None))
}

/// Match results as a boolean array, 64 rows at a time.
fn bits(hits: &[bool]) -> BooleanArray {
    BooleanArray::new(BooleanBuffer::collect_bool(hits.len(), |i| hits[i]), None)
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
                if let Some(views) = column.as_string_view_opt() {
                    let matched = match_views(views, &needle);
                    any.iter_mut().zip(matched.values()).for_each(|(a, h)| *a |= h);
                    continue;
                }
                match_strings(&strings(column)?, &needle, &mut hits);
                any.iter_mut().zip(&hits).for_each(|(a, h)| *a |= *h);
            }
            if let Some(nulls) = columns.nulls() {
                any.iter_mut().enumerate().for_each(|(i, a)| *a &= nulls.is_valid(i));
            }
            bits(&any)
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
        } else if let Some(views) = array.as_string_view_opt() {
            match_views(views, &needle)
        } else if let Some(dictionary) = array.as_any_dictionary_opt() {
            match_dictionary(dictionary, &needle)?
        } else {
            match_strings(&strings(&array)?, &needle, &mut hits);
            bits(&hits)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// More distinct values than the table has slots, repeated and interleaved with
    /// nulls: slots are overwritten and answered again, and every row still agrees.
    #[test]
    fn views_past_the_table_agree_with_rows() {
        let values: Vec<Option<String>> = (0..6 * VIEW_SLOTS)
            .map(|i| {
                (i % 7 != 3).then(|| {
                    format!("user {} of {}", i % (3 * VIEW_SLOTS), if i % 2 == 0 { "a" } else { "a long tail" })
                })
            })
            .collect();
        let views: StringViewArray = values.iter().map(|v| v.as_deref()).collect();
        for needle in [Needle::word("tail"), Needle::word("12"), Needle::pattern("us*")] {
            let out: Vec<bool> = match_views(&views, &needle).values().iter().collect();
            let expected: Vec<bool> =
                values.iter().map(|v| v.as_ref().is_some_and(|v| needle.matches(v.as_bytes()))).collect();
            assert_eq!(out, expected);
        }
    }

    proptest! {
        /// Matching string views once per distinct value, and dictionaries once per
        /// value, agrees with matching each row, whether the views share their bytes (as
        /// read from a dictionary) or not.
        #[test]
        fn views_agree_with_rows(
            values in proptest::collection::vec(proptest::option::of("[a-cA-C ]{0,20}"), 0..40),
            term in "[a-c]{1,3}",
            kind in 0u8..3,
            shared in any::<bool>(),
        ) {
            let needle = match kind { 0 => Needle::word(&term), 1 => Needle::pattern(&format!("{term}*")), _ => Needle::equal(&term) };
            // As Parquet decodes a dictionary page: each row a key into the page's values.
            let mut values_once: Vec<String> = values.iter().flatten().cloned().collect();
            values_once.sort();
            values_once.dedup();
            let keys: Vec<Option<i32>> = values
                .iter()
                .map(|v| v.as_ref().map(|v| values_once.binary_search(v).unwrap() as i32))
                .collect();
            let dictionary = datafusion::arrow::array::DictionaryArray::new(
                datafusion::arrow::array::Int32Array::from(keys),
                Arc::new(StringArray::from(values_once)),
            );
            let views: StringViewArray = if shared {
                // Each row a view into one buffer.
                cast(&dictionary, &DataType::Utf8View).unwrap().as_string_view().clone()
            } else {
                values.iter().map(|v| v.as_deref()).collect()
            };
            let expected: Vec<bool> =
                values.iter().map(|v| v.as_ref().is_some_and(|v| needle.matches(v.as_bytes()))).collect();
            let by_key: Vec<bool> = match_dictionary(&dictionary, &needle).unwrap().values().iter().collect();
            prop_assert_eq!(&by_key, &expected);
            let out: Vec<bool> = match_views(&views, &needle).values().iter().collect();
            prop_assert_eq!(out, expected);
            let args = ScalarFunctionArgs {
                args: vec![ColumnarValue::Array(Arc::new(dictionary))],
                arg_fields: vec![],
                number_rows: values.len(),
                return_field: Arc::new(datafusion::arrow::datatypes::Field::new("v", DataType::Utf8View, true)),
                config_options: Arc::new(Default::default()),
            };
            let ColumnarValue::Array(read) = super::views().invoke_with_args(args).unwrap() else { panic!("an array") };
            let read: Vec<Option<&str>> = read.as_string_view().iter().collect();
            prop_assert_eq!(read, values.iter().map(|v| v.as_deref()).collect::<Vec<_>>());
        }
    }
}
