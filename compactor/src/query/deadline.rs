//! A query stops at its budget, whatever it is doing.
//!
//! Dropping a query's future cancels it only when its tasks yield, and operators that
//! produce many batches from data they already hold (a cross join, an unnest) can run
//! for minutes without yielding. [`Deadline`], the last physical optimizer rule of every
//! query session, puts a [`DeadlineExec`] above every operator: each batch that passes
//! checks the clock, and past the deadline the query fails with `ResourcesExhausted`,
//! within one batch of any operator.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// When a query must be done, and its budget (for the message).
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    pub at: Instant,
    pub budget: Duration,
}

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self { at: Instant::now() + budget, budget }
    }

    fn check(&self) -> Result<()> {
        if Instant::now() < self.at {
            return Ok(());
        }
        Err(DataFusionError::ResourcesExhausted(format!(
            "the query was cancelled after {} s, its budget ([query] timeout_secs): narrow the time range or simplify the query",
            self.budget.as_secs()
        )))
    }
}

impl PhysicalOptimizerRule for Deadline {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let deadline = *self;
        plan.transform_up(|node| {
            let wrapped: Arc<dyn ExecutionPlan> = Arc::new(DeadlineExec { input: node, deadline });
            Ok(Transformed::yes(wrapped))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sluice_deadline"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// An operator's output, checked against the deadline batch by batch.
#[derive(Debug)]
pub struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    deadline: Deadline,
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeadlineExec")
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }

    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.input.as_ref())
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self { input, deadline: self.deadline })),
            _ => Err(DataFusionError::Internal("DeadlineExec has one child".into())),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.deadline.check()?;
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(DeadlineStream { input, deadline: self.deadline }))
    }
}

struct DeadlineStream {
    input: SendableRecordBatchStream,
    deadline: Deadline,
}

impl Stream for DeadlineStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Err(e) = self.deadline.check() {
            return Poll::Ready(Some(Err(e)));
        }
        self.input.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for DeadlineStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}
