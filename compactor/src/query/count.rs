//! `count(*)` grouped by one text value, the commonest `| SQL` (`select level, count(*)
//! ... group by level`, the top users of an error), counted per distinct view rather
//! than per row.
//!
//! A row of a string view array holds a short value whole and a longer one's place in
//! the array's buffers, which the rows read from one Parquet dictionary entry share: equal
//! views are equal values. [`CountBy`] (a physical optimizer rule of the `| SQL` session)
//! replaces each partial aggregation of that shape with a [`CountByExec`], which counts a
//! batch's views in a small open-addressing table keyed by the view itself (no hashing of
//! the text, no comparison of bytes), and turns each distinct view of the batch into its
//! value once. DataFusion's grouping hashes and compares every row's text.
//!
//! Its output is the partial aggregation's (the value, then each count's state), so the
//! final aggregation above it is unchanged; like any partial aggregation it may emit a
//! value more than once (past [`MAX_GROUPS`] values or [`MAX_GROUP_BYTES`] of them, it
//! emits what it has and starts over), and the final one adds them up.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringViewArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;

use super::udf::slot_of;

/// Distinct values held before they are emitted.
pub const MAX_GROUPS: usize = 1 << 16;
/// Bytes of distinct values held before they are emitted.
pub const MAX_GROUP_BYTES: usize = 16 << 20;
/// Slots of a batch's table of views (a power of two); half full, it is emptied into the
/// values.
const SLOTS: usize = 1024;
/// A slot that holds no view: no array has a string of 2^32 - 1 bytes.
const NO_VIEW: u128 = u128::MAX;

/// The rule: a partial `count(*)` (or `count(1)`, any number of them) grouped by one
/// string view value (a column, or an expression of the input's columns) becomes a
/// [`CountByExec`].
#[derive(Debug, Default)]
pub struct CountBy;

impl PhysicalOptimizerRule for CountBy {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let replaced = node.downcast_ref::<AggregateExec>().and_then(CountByExec::of);
            Ok(match replaced {
                Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sluice_count_by"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether an aggregate argument is a literal that is not null (`count(*)` is `count(1)`).
fn counts_rows(arg: &Arc<dyn PhysicalExpr>) -> bool {
    arg.downcast_ref::<Literal>().is_some_and(|l| !l.value().is_null())
}

/// A partial `count(*)` grouped by one string view value, counted per distinct view.
#[derive(Debug)]
pub struct CountByExec {
    input: Arc<dyn ExecutionPlan>,
    /// The grouped value, of the input's rows.
    value: Arc<dyn PhysicalExpr>,
    /// How many counts the output carries (each the same number).
    counts: usize,
    /// The partial aggregation's output schema and properties, which this one has.
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl CountByExec {
    /// The operator that replaces `agg`, if it has the shape this one counts.
    pub fn of(agg: &AggregateExec) -> Option<Self> {
        let group = agg.group_expr();
        if *agg.mode() != AggregateMode::Partial
            || group.has_grouping_set()
            || group.expr().len() != 1
            || agg.limit_options().is_some()
            || agg.filter_expr().iter().any(Option::is_some)
            || agg.aggr_expr().is_empty()
        {
            return None;
        }
        let counts_all = agg.aggr_expr().iter().all(|a| {
            a.fun().name() == "count"
                && !a.is_distinct()
                && a.order_bys().is_empty()
                && a.expressions().iter().all(counts_rows)
                && a.state_fields().is_ok_and(|f| f.len() == 1 && f[0].data_type() == &DataType::Int64)
        });
        let value = group.expr()[0].0.clone();
        let output = agg.schema();
        let is_view = |t: &DataType| t == &DataType::Utf8View;
        if !counts_all
            || !value.data_type(&agg.input().schema()).is_ok_and(|t| is_view(&t))
            || output.fields().len() != 1 + agg.aggr_expr().len()
            || !is_view(output.field(0).data_type())
        {
            return None;
        }
        Some(Self {
            input: agg.input().clone(),
            value,
            counts: agg.aggr_expr().len(),
            schema: output,
            properties: agg.properties().clone(),
        })
    }
}

impl DisplayAs for CountByExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CountByExec: value={}, counts={}", self.value, self.counts)
    }
}

impl ExecutionPlan for CountByExec {
    fn name(&self) -> &str {
        "CountByExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.value)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self {
                input,
                value: self.value.clone(),
                counts: self.counts,
                schema: self.schema.clone(),
                properties: self.properties.clone(),
            })),
            _ => Err(DataFusionError::Internal("CountByExec has one child".into())),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (value, counts, schema) = (self.value.clone(), self.counts, self.schema.clone());
        let state = (input, Counter::default(), false);
        let stream = futures::stream::try_unfold(state, move |(mut input, mut counter, done)| {
            let (schema, value) = (schema.clone(), value.clone());
            async move {
                if done {
                    return Ok(None);
                }
                while let Some(batch) = input.next().await {
                    let batch = batch?;
                    let values = value.evaluate(&batch)?.into_array(batch.num_rows())?;
                    let values = values.as_string_view_opt().ok_or_else(|| {
                        DataFusionError::Internal(format!(
                            "CountByExec counts string views, not {}",
                            values.data_type()
                        ))
                    })?;
                    counter.add(values);
                    if counter.full() {
                        let out = counter.emit(&schema, counts)?;
                        return Ok(Some((out, (input, counter, false))));
                    }
                }
                let out = counter.emit(&schema, counts)?;
                Ok(Some((out, (input, counter, true))))
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

/// Rows counted by value.
struct Counter {
    /// The current batch's views, the count of each, and a row where each is.
    views: Box<[u128; SLOTS]>,
    counts: Box<[u64; SLOTS]>,
    rows: Box<[u32; SLOTS]>,
    used: Vec<usize>,
    /// Counts by value, and of null rows.
    values: HashMap<String, u64>,
    value_bytes: usize,
    nulls: u64,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            views: Box::new([NO_VIEW; SLOTS]),
            counts: Box::new([0; SLOTS]),
            rows: Box::new([0; SLOTS]),
            used: Vec::with_capacity(SLOTS / 2),
            values: HashMap::new(),
            value_bytes: 0,
            nulls: 0,
        }
    }
}

impl Counter {
    /// Counts a batch's rows by value.
    fn add(&mut self, array: &StringViewArray) {
        let views = array.views();
        match array.nulls().filter(|n| n.null_count() > 0) {
            None => {
                for (row, &view) in views.iter().enumerate() {
                    self.count(array, row, view);
                }
            }
            Some(nulls) => {
                for (row, &view) in views.iter().enumerate() {
                    if nulls.is_valid(row) {
                        self.count(array, row, view);
                    } else {
                        self.nulls += 1;
                    }
                }
            }
        }
        self.drain(array);
    }

    #[inline]
    fn count(&mut self, array: &StringViewArray, row: usize, view: u128) {
        let mut slot = slot_of::<SLOTS>(view);
        loop {
            if self.views[slot] == view {
                self.counts[slot] += 1;
                return;
            }
            if self.views[slot] == NO_VIEW {
                break;
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
        self.insert(array, row, view, slot);
    }

    /// A view the batch's table does not have yet; half full, the table is emptied first.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, array: &StringViewArray, row: usize, view: u128, slot: usize) {
        if self.used.len() >= SLOTS / 2 {
            self.drain(array);
            return self.count(array, row, view);
        }
        (self.views[slot], self.counts[slot], self.rows[slot]) = (view, 1, row as u32);
        self.used.push(slot);
    }

    /// Moves the batch's table into the counts by value.
    fn drain(&mut self, array: &StringViewArray) {
        for slot in self.used.drain(..) {
            let value = array.value(self.rows[slot] as usize);
            match self.values.get_mut(value) {
                Some(n) => *n += self.counts[slot],
                None => {
                    self.value_bytes += value.len();
                    self.values.insert(value.to_owned(), self.counts[slot]);
                }
            }
            self.views[slot] = NO_VIEW;
        }
    }

    fn full(&self) -> bool {
        self.values.len() >= MAX_GROUPS || self.value_bytes >= MAX_GROUP_BYTES
    }

    /// The counts so far as the partial aggregation's rows, and a fresh start.
    fn emit(&mut self, schema: &SchemaRef, counts: usize) -> Result<RecordBatch> {
        let values = std::mem::take(&mut self.values);
        let nulls = std::mem::take(&mut self.nulls);
        self.value_bytes = 0;
        let mut keys: Vec<Option<String>> = Vec::with_capacity(values.len() + 1);
        let mut ns: Vec<i64> = Vec::with_capacity(values.len() + 1);
        for (value, n) in values {
            keys.push(Some(value));
            ns.push(n as i64);
        }
        if nulls > 0 {
            keys.push(None);
            ns.push(nulls as i64);
        }
        let keys: ArrayRef = Arc::new(StringViewArray::from_iter(keys));
        let ns: ArrayRef = Arc::new(Int64Array::from(ns));
        let columns: Vec<ArrayRef> = std::iter::once(keys).chain(std::iter::repeat_n(ns, counts)).collect();
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use proptest::prelude::*;

    /// `rows` as batches of `batch_rows`, in a table `t` of one string view column `v`.
    fn session(rows: &[Option<String>], batch_rows: usize, rule: bool) -> SessionContext {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8View, true)]));
        let batches: Vec<RecordBatch> = rows
            .chunks(batch_rows.max(1))
            .map(|chunk| {
                let column: ArrayRef = Arc::new(StringViewArray::from_iter(chunk.iter().cloned()));
                RecordBatch::try_new(schema.clone(), vec![column]).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        // Two partitions, so that the aggregation is partial, then final.
        let (a, b) = batches.split_at(batches.len() / 2);
        let table = MemTable::try_new(schema, vec![a.to_vec(), b.to_vec()]).unwrap_or_else(|e| panic!("{e}"));
        let mut builder = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features();
        if rule {
            builder = builder.with_physical_optimizer_rule(Arc::new(CountBy));
        }
        let ctx = SessionContext::new_with_state(builder.build());
        ctx.register_table("t", Arc::new(table)).unwrap_or_else(|e| panic!("{e}"));
        ctx
    }

    /// A query's rows as text, sorted, and its plan.
    async fn run(ctx: &SessionContext, sql: &str) -> (Vec<String>, String) {
        let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{e}"));
        let plan = df.clone().create_physical_plan().await.unwrap_or_else(|e| panic!("{e}"));
        let plan = displayable(plan.as_ref()).indent(true).to_string();
        let batches = df.collect().await.unwrap_or_else(|e| panic!("{e}"));
        let mut rows: Vec<String> = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string()
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(1)
            .map(str::to_owned)
            .collect();
        rows.sort();
        (rows, plan)
    }

    const COUNT: &str = "select v, count(*) as c, count(1) as d from t group by v";

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn counts_by_value_as_datafusion_does() {
        let long = "a value longer than twelve bytes";
        let rows: Vec<Option<String>> = (0..5000)
            .map(|i| match i % 7 {
                0 => None,
                1 | 2 => Some(format!("{long} {}", i % 3)),
                _ => Some(format!("v{}", i % 5)),
            })
            .collect();
        runtime().block_on(async {
            let (with, plan) = run(&session(&rows, 300, true), COUNT).await;
            let (without, plain) = run(&session(&rows, 300, false), COUNT).await;
            assert!(plan.contains("CountByExec"), "{plan}");
            assert!(!plain.contains("CountByExec"), "{plain}");
            assert_eq!(with, without);
            assert!(with.iter().any(|r| r.contains(long)) && with.len() == 9, "{with:?}");
        });
    }

    #[test]
    fn other_aggregations_are_left_alone() {
        let rows: Vec<Option<String>> = (0..100).map(|i| Some(format!("v{}", i % 3))).collect();
        runtime().block_on(async {
            let ctx = session(&rows, 10, true);
            for sql in [
                "select v, count(v) from t group by v",
                "select v, count(distinct v) from t group by v",
                "select v, count(*), min(v) from t group by v",
                "select v, count(*) filter (where v = 'v1') from t group by v",
                "select v, count(*) from t group by rollup(v)",
                "select count(*) from t",
            ] {
                let (_, plan) = run(&ctx, sql).await;
                assert!(!plan.contains("CountByExec"), "{sql}: {plan}");
            }
            let (_, plan) = run(&ctx, "select upper(v) as u, count(*) from t group by u").await;
            assert!(plan.contains("CountByExec"), "a computed value is grouped by too: {plan}");
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the values (short, long, many, null) and batch sizes, the counts are
        /// DataFusion's: also past a batch table's half and past the values held at once.
        #[test]
        fn counts_agree_with_datafusion(
            rows in prop::collection::vec(prop::option::weighted(0.9, "[a-c]{0,3}|[a-c]{13,15}|x[0-9]{1,4}"), 0..3000),
            batch_rows in 1usize..2000,
        ) {
            runtime().block_on(async {
                let (with, _) = run(&session(&rows, batch_rows, true), COUNT).await;
                let (without, _) = run(&session(&rows, batch_rows, false), COUNT).await;
                prop_assert_eq!(with, without);
                Ok(())
            })?;
        }
    }

    #[test]
    fn a_full_counter_emits_and_starts_over() {
        let mut counter = Counter::default();
        let values: Vec<String> = (0..MAX_GROUPS + 10).map(|i| format!("value {i}")).collect();
        for chunk in values.chunks(4096) {
            counter.add(&StringViewArray::from_iter_values(chunk));
        }
        assert!(counter.full());
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Utf8View, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = counter.emit(&schema, 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(batch.num_rows(), MAX_GROUPS + 10);
        assert!(!counter.full() && counter.values.is_empty());
    }
}
