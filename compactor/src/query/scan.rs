//! What a query read: files, row groups and bytes, from the Parquet scans' metrics after
//! it ran. Pruning happens in layers: the `date` partition and the files' Delta
//! statistics remove files before the scan is planned, then row group statistics and
//! bloom filters remove row groups, and the page index pages.

use datafusion::arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::StreamExt;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Totals over every scan of a query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Parquet files opened.
    pub files: usize,
    /// Row groups in the files opened, and those read after pruning.
    pub row_groups: usize,
    pub row_groups_read: usize,
    /// Row groups pruned by the bloom filter (trace id lookups).
    pub row_groups_pruned_by_bloom: usize,
    /// Row groups skipped by the token index, before their files were opened.
    pub row_groups_pruned_by_index: usize,
    /// Slices (quarters) of the row groups read that the token index skipped.
    pub slices_pruned_by_index: usize,
    /// Row groups counted from their time rollups instead of read (histograms).
    pub row_groups_rolled_up: usize,
    pub bytes: usize,
    /// Rows the scans produced, after pushed-down filters.
    pub rows: usize,
}

impl fmt::Display for ScanStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "files={} row_groups={}/{} bloom_pruned={} index_pruned={} slices_pruned={} rolled_up={} bytes={} rows={}",
            self.files,
            self.row_groups_read,
            self.row_groups,
            self.row_groups_pruned_by_bloom,
            self.row_groups_pruned_by_index,
            self.slices_pruned_by_index,
            self.row_groups_rolled_up,
            self.bytes,
            self.rows
        )
    }
}

impl ScanStats {
    /// Adds the metrics of every Parquet scan in an executed plan.
    pub fn add_plan(&mut self, plan: &dyn ExecutionPlan) {
        if let Some(metrics) = plan.metrics() {
            let mut files = HashSet::new();
            let mut is_scan = false;
            let (mut matched, mut pruned_later) = (0, 0);
            for metric in metrics.iter() {
                let file = metric.labels().iter().find(|l| l.name() == "filename").map(|l| l.value().to_owned());
                match metric.value() {
                    MetricValue::Count { name, count } if name == "bytes_scanned" => {
                        is_scan = true;
                        self.bytes += count.value();
                        if count.value() > 0 {
                            files.extend(file);
                        }
                    }
                    MetricValue::PruningMetrics { name, pruning_metrics } => match name.as_ref() {
                        "row_groups_pruned_statistics" => {
                            self.row_groups += pruning_metrics.pruned() + pruning_metrics.matched();
                            matched += pruning_metrics.matched();
                        }
                        "row_groups_pruned_bloom_filter" => {
                            self.row_groups_pruned_by_bloom += pruning_metrics.pruned();
                            pruned_later += pruning_metrics.pruned();
                        }
                        "limit_pruned_row_groups" => pruned_later += pruning_metrics.pruned(),
                        _ => {}
                    },
                    _ => {}
                }
            }
            self.row_groups_read += matched - pruned_later.min(matched);
            if is_scan {
                self.files += files.len();
                self.rows += metrics.output_rows().unwrap_or(0);
            }
        }
        for child in plan.children() {
            self.add_plan(child.as_ref());
        }
    }
}

/// Scan statistics shared by the steps of one query.
#[derive(Clone, Debug, Default)]
pub struct Scanned(Arc<Mutex<ScanStats>>);

impl Scanned {
    /// Runs a DataFrame and adds what its scans read. An answer of more than
    /// `max_bytes` (Arrow memory) stops the query with `ResourcesExhausted`.
    pub async fn collect(&self, df: DataFrame, max_bytes: usize) -> datafusion::error::Result<Vec<RecordBatch>> {
        let task = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await?;
        let mut stream = execute_stream(plan.clone(), task)?;
        let (mut batches, mut bytes) = (Vec::new(), 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            bytes += batch.get_array_memory_size();
            if bytes > max_bytes {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "the answer is larger than {} MB ([query] max_result_mb): select fewer rows or columns",
                    max_bytes >> 20
                )));
            }
            batches.push(batch);
        }
        drop(stream);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).add_plan(plan.as_ref());
        Ok(batches)
    }

    /// Row groups the token index skipped, and those counted from time rollups.
    pub fn add_skipped(&self, by_index: usize, slices_by_index: usize, rolled_up: usize) {
        let mut stats = self.0.lock().unwrap_or_else(|e| e.into_inner());
        stats.row_groups_pruned_by_index += by_index;
        stats.slices_pruned_by_index += slices_by_index;
        stats.row_groups_rolled_up += rolled_up;
    }

    pub fn get(&self) -> ScanStats {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
