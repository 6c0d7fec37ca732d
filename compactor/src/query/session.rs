//! The DataFusion sessions a query runs in, built for that query and nothing else.
//!
//! Every query gets its own [`RuntimeEnv`]: a memory pool of [`QueryLimits::memory_bytes`]
//! (a query over it fails with `ResourcesExhausted`), no disk manager (nothing spills,
//! nothing is written), and an object store registry holding only the stores that the
//! query's own table registers (no `file://` default): nothing in a query can reach a
//! file or a bucket beyond the logstore it reads.
//!
//! - [`scan`]: the session that reads the logstore (the Delta table and the fresh raw
//!   batches) and evaluates the search. No table is registered in it.
//! - [`analytic`]: the session the `| SQL` part runs in: `log` and `logs` are the
//!   selected logs and are its only tables; every scalar function is [`Bounded`];
//!   `count(*)` grouped by one text value is counted per distinct value ([`CountBy`]).

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use object_store::ObjectStore;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use url::Url;

use super::QueryLimits;
use super::bounded::Bounded;
use super::count::CountBy;
use super::deadline::Deadline;
use super::sql::LOG_TABLES;
use super::udf;

/// Object stores registered by name only: `get_store` knows nothing it was not given.
#[derive(Debug, Default)]
pub struct OwnStores(RwLock<HashMap<String, Arc<dyn ObjectStore>>>);

fn store_key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), &url[url::Position::BeforeHost..url::Position::AfterPort])
}

impl ObjectStoreRegistry for OwnStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(store_key(url), store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&store_key(url))
            .ok_or_else(|| DataFusionError::Execution(format!("no object store for {url}")))
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&store_key(url))
            .cloned()
            .ok_or_else(|| DataFusionError::Execution(format!("no object store for {url}")))
    }
}

/// One query's runtime: its memory pool, no disk, only its own stores.
pub fn runtime(limits: &QueryLimits) -> Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .with_object_store_registry(Arc::new(OwnStores::default()))
        .build_arc()
}

/// Pushdown, page indexes and bloom filters on; identifiers kept as written (SLS field
/// names are case-sensitive); no `information_schema`.
fn config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .with_information_schema(false);
    let options = config.options_mut();
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    options.execution.parquet.enable_page_index = true;
    options.execution.parquet.bloom_filter_on_read = true;
    options.execution.parquet.schema_force_view_types = false;
    options.sql_parser.enable_ident_normalization = false;
    config
}

/// The session that reads a logstore, with the SLS query functions; its plans stop at
/// `deadline`.
pub fn scan(runtime: Arc<RuntimeEnv>, deadline: Deadline) -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_config(config())
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(deadline))
        .build();
    let ctx = SessionContext::new_with_state(state);
    udf::register(&ctx);
    ctx
}

/// The session of the `| SQL` part: `log` and `logs` are `selected`, nothing else is a
/// table, every scalar function is bounded, and its plans stop at `deadline`.
pub fn analytic(
    runtime: Arc<RuntimeEnv>,
    selected: DataFrame,
    limits: &QueryLimits,
    deadline: Deadline,
) -> Result<SessionContext> {
    let function_limit = limits.max_function_bytes();
    let mut builder = SessionStateBuilder::new()
        .with_config(config())
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(CountBy))
        .with_physical_optimizer_rule(Arc::new(deadline));
    if let Some(functions) = builder.scalar_functions() {
        let bounded: Vec<Arc<ScalarUDF>> =
            functions.iter().map(|f| Arc::new(Bounded::wrap(f, function_limit))).collect();
        *functions = bounded;
    }
    let ctx = SessionContext::new_with_state(builder.build());
    let view = selected.into_view();
    for name in LOG_TABLES {
        ctx.register_table(name, view.clone())?;
    }
    Ok(ctx)
}
