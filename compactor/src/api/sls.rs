//! SLS GetHistograms and GetLogs (V1 `GET /logstores/{ls}?type=...`, V2
//! `POST /logstores/{ls}/logs`): parameters, the signature (`sluice_ingest::auth::sls`),
//! the query ([`crate::query::sls`]), and the answer as SLS renders it.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value, json};
use sluice_ingest::batch::EventId;
use sluice_ingest::endpoint::Unserved;
use sluice_ingest::{IngestError, Product, Request, Target};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::jobs::Outcome;
use super::{
    AppState, SCANNED_HEADER, headers_of, now_ns, open, read_body, respond, scanned, to_http, to_ingest, unfinished,
};
use crate::lake::rows::{field_entries, int_at, map_entries, text_at};
use crate::lake::schema::{self, BATCH_ID, POSITION, SOURCE, TAGS, TIME_NS, TOPIC};
use crate::query::QueryError;
use crate::query::scan::ScanStats;
use crate::query::sls::{self, LogId, Logs, Page, Range};
use crate::query::source::Reading;
use crate::query::syntax::{self, Query};

/// The tag GetContextLogs' `pack_id` comes from.
const PACK_ID_KEY: &str = "__tag__:__pack_id__";
/// Most logs a non-SQL GetLogs returns.
const MAX_LINES: usize = 100;
/// Largest GetLogs V2 body: its parameters and a query.
const MAX_QUERY_BODY_BYTES: usize = 1 << 20;

fn sls_error(error: &IngestError, request_id: &str) -> Response {
    to_http(sluice_ingest::refuse(Product::Sls, error, request_id))
}

fn invalid(name: &'static str, reason: impl Into<String>) -> IngestError {
    IngestError::InvalidParameter { name, reason: reason.into() }
}

/// Checks an SLS request's signature and where it reads: the logstore, and the
/// credential its queries count against.
fn authorize(
    state: &AppState,
    request: &Request<'_>,
    logstore: &str,
    now_ns: i64,
) -> Result<(Target, String), IngestError> {
    let (target, key) = sluice_ingest::auth::sls::authorize(&state.config, request, logstore, now_ns)?;
    Ok((target, format!("sls:{}", key.id)))
}

/// The parameters SLS GetHistograms and GetLogs share.
#[derive(Clone, Debug)]
pub(super) struct SlsParams {
    pub(super) from: i64,
    pub(super) to: i64,
    pub(super) range: Range,
    pub(super) topic: String,
    pub(super) query_text: String,
    pub(super) query: Query,
    pub(super) page: Page,
}

impl SlsParams {
    pub(super) fn key(&self, kind: &str, target: &Target) -> String {
        format!(
            "{kind}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            target.project,
            target.logstore,
            self.range.from_ns,
            self.range.to_ns,
            self.topic,
            self.query_text,
            self.page.line,
            self.page.offset,
            self.page.reverse
        )
    }

    pub(super) fn reading<'a>(&self, target: &'a Target, now_ns: i64) -> Reading<'a> {
        Reading::of(target, self.range.from_ns, self.range.to_ns, now_ns)
    }
}

fn int(value: Option<&Value>, name: &'static str, default: Option<i64>) -> Result<i64, IngestError> {
    match value {
        None | Some(Value::Null) => default.ok_or_else(|| invalid(name, "is required")),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| invalid(name, "is not an integer")),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| invalid(name, format!("{s:?} is not an integer"))),
        Some(other) => Err(invalid(name, format!("{other} is not an integer"))),
    }
}

fn boolean(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Reads SLS query parameters from a V1 query string or a V2 body (both as JSON values).
pub(super) fn sls_params(
    values: &serde_json::Map<String, Value>,
    for_logs: bool,
    max_query_bytes: usize,
) -> Result<SlsParams, IngestError> {
    let from = int(values.get("from"), "from", None)?;
    let to = int(values.get("to"), "to", None)?;
    let from_ns = int(values.get("fromNs"), "fromNs", Some(0))?;
    let to_ns = int(values.get("toNs"), "toNs", Some(0))?;
    if (to, to_ns) <= (from, from_ns) {
        return Err(IngestError::InvalidTimeRange { from, to });
    }
    let range = Range::new(from, from_ns, to, to_ns)
        .ok_or_else(|| invalid("from", format!("the range [{from}, {to}) is beyond the times logs can have")))?;
    let query_text = values.get("query").and_then(Value::as_str).unwrap_or("").to_owned();
    if query_text.len() > max_query_bytes {
        return Err(IngestError::InvalidQueryString(format!(
            "the query is {} bytes, more than the {max_query_bytes} allowed ([query] max_query_bytes)",
            query_text.len()
        )));
    }
    let query = syntax::parse(&query_text).map_err(|e| IngestError::InvalidQueryString(e.to_string()))?;
    let line = int(values.get("line"), "line", Some(MAX_LINES as i64))?;
    let offset = int(values.get("offset"), "offset", Some(0))?;
    if for_logs && query.sql.is_none() && !(0..=MAX_LINES as i64).contains(&line) {
        return Err(invalid("line", format!("must be between 0 and {MAX_LINES}")));
    }
    if offset < 0 {
        return Err(invalid("offset", "must not be negative"));
    }
    Ok(SlsParams {
        from,
        to,
        range,
        topic: values.get("topic").and_then(Value::as_str).unwrap_or("").to_owned(),
        query_text,
        query,
        page: Page { line: line.max(0) as usize, offset: offset as usize, reverse: boolean(values.get("reverse")) },
    })
}

/// The SLS read APIs of one logstore:
///
/// - `GET /logstores/{logstore}`: GetHistograms (`type=histogram`), GetLogs (`type=log`),
///   GetContextLogs (`type=context_log`), and without a `type`, GetLogStore;
/// - `GET /logstores/{logstore}/index?type=histogram|log`: GetHistograms and GetLogs at the
///   path the Java and OpenAPI SDKs use;
/// - `GET /logstores/{logstore}/shards`: ListShards.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(logstore): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (request_id, now_ns) = (state.request_ids.next(), now_ns());
    let query = uri.query().unwrap_or("");
    let values = query_values(query);
    let under = uri.path().strip_prefix("/logstores/").and_then(|p| p.strip_prefix(logstore.as_str())).unwrap_or("");
    let api = match (under, values.get("type").and_then(Value::as_str)) {
        ("/shards", _) => ReadApi::Shards,
        ("" | "/index", Some("histogram")) => ReadApi::Histograms,
        ("" | "/index", Some("log")) => ReadApi::Logs,
        ("", Some("context_log")) => ReadApi::ContextLogs,
        ("", None) => ReadApi::LogStore,
        (_, kind) => {
            let error = match sluice_ingest::endpoint::unserved(method.as_str(), uri.path(), query) {
                Unserved::Api(api) => IngestError::NotImplemented { api },
                _ => invalid("type", format!("{:?} is not histogram, log or context_log", kind.unwrap_or(""))),
            };
            return sls_error(&error, &request_id);
        }
    };
    let Ok(_permit) = state.inflight.try_acquire() else {
        return sls_error(&IngestError::ServerBusy, &request_id);
    };
    let headers = headers_of(&headers);
    let request = Request { method: method.as_str(), path: uri.path(), query, headers: &headers, body: &[] };
    let (target, credential) = match authorize(&state, &request, &logstore, now_ns) {
        Ok(t) => t,
        Err(e) => return sls_error(&e, &request_id),
    };
    let asked = Asked { target: &target, credential: &credential, request_id: &request_id, now_ns };
    match api {
        ReadApi::Histograms => histogram(&state, asked, &values).await,
        ReadApi::Logs => logs(&state, asked, &values, false).await,
        ReadApi::ContextLogs => context_logs(&state, asked, &values).await,
        ReadApi::LogStore => get_logstore(&state, &target, &request_id),
        ReadApi::Shards => json_answer(
            &request_id,
            &json!([{
                "shardID": 0,
                "status": "readwrite",
                "inclusiveBeginKey": "00000000000000000000000000000000",
                "exclusiveEndKey": "ffffffffffffffffffffffffffffffff",
                "createTime": 0,
            }]),
        ),
    }
}

/// The SLS read APIs of one logstore.
#[derive(Clone, Copy)]
enum ReadApi {
    Histograms,
    Logs,
    ContextLogs,
    LogStore,
    Shards,
}

/// Query parameters as JSON values (what V2 bodies hold).
pub(super) fn query_values(query: &str) -> serde_json::Map<String, Value> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect()
}

fn json_answer(request_id: &str, body: &Value) -> Response {
    respond(
        200,
        vec![("content-type", "application/json".into()), ("x-log-requestid", request_id.into())],
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

/// GetLogStore: what the SDKs read of a logstore. One shard; `ttl` is the retention in
/// days (3650, SLS's "kept forever", when there is none).
fn get_logstore(state: &AppState, target: &Target, request_id: &str) -> Response {
    let ttl = state.config.logstore(&target.project, &target.logstore).and_then(|l| l.retention_days).unwrap_or(3650);
    json_answer(
        request_id,
        &json!({
            "logstoreName": target.logstore,
            "ttl": ttl,
            "hot_ttl": ttl,
            "shardCount": 1,
            "enable_tracking": false,
            "autoSplit": false,
            "maxSplitShard": 1,
            "appendMeta": false,
            "telemetryType": "None",
            "mode": "standard",
            "createTime": 0,
            "lastModifyTime": 0,
        }),
    )
}

/// `GET /logstores`: ListLogStores. A closed configuration lists the project's
/// logstores; in development mode (any logstore accepted) the logstores that have data.
pub async fn list_logstores(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (request_id, now_ns) = (state.request_ids.next(), now_ns());
    let Ok(_permit) = state.inflight.try_acquire() else {
        return sls_error(&IngestError::ServerBusy, &request_id);
    };
    let headers = headers_of(&headers);
    let query = uri.query().unwrap_or("");
    let request = Request { method: method.as_str(), path: uri.path(), query, headers: &headers, body: &[] };
    let project = match sluice_ingest::auth::sls::authorize_project(&state.config, &request, now_ns) {
        Ok((project, _)) => project,
        Err(e) => return sls_error(&e, &request_id),
    };
    let values = query_values(query);
    let (offset, size) =
        match (int(values.get("offset"), "offset", Some(0)), int(values.get("size"), "size", Some(500))) {
            (Ok(offset), Ok(size)) if offset >= 0 && (1..=500).contains(&size) => (offset as usize, size as usize),
            (Err(e), _) | (_, Err(e)) => return sls_error(&e, &request_id),
            (Ok(offset), _) if offset < 0 => return sls_error(&invalid("offset", "must not be negative"), &request_id),
            _ => return sls_error(&invalid("size", "must be between 1 and 500"), &request_id),
        };
    let mut names: BTreeSet<String> = state
        .config
        .projects
        .iter()
        .filter(|p| p.name == project)
        .flat_map(|p| p.logstores.iter().map(|l| l.name.clone()))
        .collect();
    if state.config.open {
        match with_data(&state.storage).await {
            Ok(found) => names.extend(found.into_iter().filter(|(p, _)| p == project).map(|(_, l)| l)),
            Err(e) => return sls_error(&IngestError::QueryFailed(e.to_string()), &request_id),
        }
    }
    let pattern = values.get("logstoreName").and_then(Value::as_str).unwrap_or("");
    let matching: Vec<String> = names.into_iter().filter(|n| n.contains(pattern)).collect();
    let page: Vec<&String> = matching.iter().skip(offset).take(size).collect();
    json_answer(&request_id, &json!({"count": page.len(), "total": matching.len(), "logstores": page}))
}

/// Every logstore with raw batches or a table, as (project, logstore).
pub(super) async fn with_data(storage: &crate::lake::Storage) -> Result<Vec<(String, String)>, String> {
    let mut found = crate::lake::raw::logstores(storage.store.as_ref()).await.map_err(|e| e.to_string())?;
    found.extend(crate::lake::table::logstores_with_tables(storage).await.map_err(|e| e.to_string())?);
    Ok(found)
}

/// How far from a log GetContextLogs looks, in event time.
const CONTEXT_WINDOW_NS: i64 = 3600 * 1_000_000_000;
/// Most logs GetContextLogs returns on either side.
const MAX_CONTEXT_LINES: i64 = 100;

/// GetContextLogs: the logs received before and after one that GetLogs returned, named
/// by the `__tag__:__pack_id__` and `__pack_meta__` it returned with it.
pub(super) async fn context_logs(
    state: &Arc<AppState>,
    asked: Asked<'_>,
    values: &serde_json::Map<String, Value>,
) -> Response {
    let Asked { target, credential, request_id, now_ns } = asked;
    let lines = |name: &'static str| match int(values.get(name), name, None) {
        Ok(n) if (0..=MAX_CONTEXT_LINES).contains(&n) => Ok(n as usize),
        Ok(_) => Err(invalid(name, format!("must be between 0 and {MAX_CONTEXT_LINES}"))),
        Err(e) => Err(e),
    };
    let (back, forward) = match (lines("back_lines"), lines("forward_lines")) {
        (Ok(b), Ok(f)) => (b, f),
        (Err(e), _) | (_, Err(e)) => return sls_error(&e, request_id),
    };
    if values.get("pack_id").and_then(Value::as_str).is_none_or(str::is_empty) {
        return sls_error(&invalid("pack_id", "is required"), request_id);
    }
    let meta = values.get("pack_meta").and_then(Value::as_str).unwrap_or("");
    let Some(event) = pack_meta_event(meta) else {
        return sls_error(
            &invalid("pack_meta", format!("{meta:?} is not a pack_meta that GetLogs returned")),
            request_id,
        );
    };
    let range = Range {
        from_ns: event.time_ns.saturating_sub(CONTEXT_WINDOW_NS),
        to_ns: event.time_ns.saturating_add(CONTEXT_WINDOW_NS),
    };
    let id = LogId { batch_id: event.batch.to_string(), position: i32::try_from(event.position).unwrap_or(i32::MAX) };
    let key = format!("c\u{0}{}\u{0}{}\u{0}{meta}\u{0}{back}\u{0}{forward}", target.project, target.logstore);
    let job = {
        let (state, target) = (state.clone(), target.clone());
        move || async move {
            let source = open(&state, Reading::of(&target, range.from_ns, range.to_ns, now_ns)).await?;
            let found = sls::context(&source, range, &id, back, forward).await?;
            Ok::<_, QueryError>((found, scanned(&source, &target, "context")))
        }
    };
    let done = state.contexts.run(key, credential, state.query_deadline, job).await;
    if let Some(error) = unfinished(&done) {
        return sls_error(&error, request_id);
    }
    let (progress, context) = match &done {
        Outcome::Done(result) => match result.as_ref() {
            Ok((Some(context), _)) => ("Complete", context.clone()),
            Ok((None, _)) => {
                return sls_error(&invalid("pack_meta", "no log of this logstore has it"), request_id);
            }
            Err(e) => return sls_error(&to_ingest(e), request_id),
        },
        _ => ("Incomplete", sls::Context::default()),
    };
    let rows = |batches: &[RecordBatch]| -> Vec<Map<String, Value>> {
        batches.iter().flat_map(|b| (0..b.num_rows()).map(move |row| sls_log(b, row))).collect()
    };
    let mut before = rows(&context.before);
    before.reverse();
    let anchor = rows(&context.anchor);
    let after = rows(&context.after);
    let (back_found, forward_found) = (before.len(), after.len());
    let numbered = |(n, mut log): (i64, Map<String, Value>)| {
        log.insert("__index_number__".into(), Value::String(n.to_string()));
        log
    };
    let logs: Vec<Map<String, Value>> =
        (-(back_found as i64)..).zip(before.into_iter().chain(anchor).chain(after)).map(numbered).collect();
    json_answer(
        request_id,
        &json!({
            "total_lines": logs.len(),
            "back_lines": back_found,
            "forward_lines": forward_found,
            "progress": progress,
            "logs": logs,
        }),
    )
}

/// The `__pack_meta__` of a log: `0|{event id}|0|0` (SLS's shard, cursor and offsets,
/// opaque to clients), which names its batch, position and time.
fn pack_meta(event: &EventId) -> String {
    format!("0|{event}|0|0")
}

fn pack_meta_event(meta: &str) -> Option<EventId> {
    let mut parts = meta.split('|');
    let (Some("0"), Some(event), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    event.parse().ok()
}

/// `POST /logstores/{logstore}/logs`: GetLogs V2.
pub async fn logs_v2(
    State(state): State<Arc<AppState>>,
    Path(logstore): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (request_id, now_ns) = (state.request_ids.next(), now_ns());
    let body = match read_body(&state, body, MAX_QUERY_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => return sls_error(&e, &request_id),
    };
    let Ok(_permit) = state.inflight.try_acquire() else {
        return sls_error(&IngestError::ServerBusy, &request_id);
    };
    let headers = headers_of(&headers);
    let request = Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let (target, credential) = match authorize(&state, &request, &logstore, now_ns) {
        Ok(t) => t,
        Err(e) => return sls_error(&e, &request_id),
    };
    let values: serde_json::Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return sls_error(&IngestError::InvalidBody(format!("not valid json: {e}")), &request_id),
    };
    let asked = Asked { target: &target, credential: &credential, request_id: &request_id, now_ns };
    let mut response = logs(&state, asked, &values, true).await;
    let wants_lz4 =
        headers.get("accept-encoding").is_some_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("lz4")));
    if wants_lz4 && response.status().is_success() {
        let raw = axum::body::to_bytes(std::mem::take(response.body_mut()), usize::MAX).await.unwrap_or_default();
        let compressed = lz4_flex::block::compress(&raw);
        *response.body_mut() = Body::from(compressed);
        let h = response.headers_mut();
        h.insert("x-log-compresstype", axum::http::HeaderValue::from_static("lz4"));
        if let Ok(v) = axum::http::HeaderValue::from_str(&raw.len().to_string()) {
            h.insert("x-log-bodyrawsize", v);
        }
    }
    response
}

/// Who asked what, for one query request.
#[derive(Clone, Copy)]
pub(super) struct Asked<'a> {
    pub(super) target: &'a Target,
    pub(super) credential: &'a str,
    pub(super) request_id: &'a str,
    pub(super) now_ns: i64,
}

pub(super) async fn histogram(
    state: &Arc<AppState>,
    asked: Asked<'_>,
    values: &serde_json::Map<String, Value>,
) -> Response {
    let Asked { target, credential, request_id, now_ns } = asked;
    let params = match sls_params(values, false, state.queries.limits.max_query_bytes) {
        Ok(p) => p,
        Err(e) => return sls_error(&e, request_id),
    };
    let search_only = Query { search: params.query.search.clone(), sql: None };
    let job = {
        let (state, target, params) = (state.clone(), target.clone(), params.clone());
        move || async move {
            let source = open(&state, params.reading(&target, now_ns)).await?;
            let topic = Some(params.topic.as_str());
            let buckets = sls::histogram(&source, params.range, params.from, params.to, topic, &search_only).await?;
            Ok::<_, QueryError>((buckets, scanned(&source, &target, "histogram")))
        }
    };
    let done = state.histograms.run(params.key("h", target), credential, state.query_deadline, job).await;
    if let Some(error) = unfinished(&done) {
        return sls_error(&error, request_id);
    }
    let (complete, buckets, stats) = match &done {
        Outcome::Done(result) => match result.as_ref() {
            Ok((buckets, stats)) => (true, buckets.clone(), *stats),
            Err(e) => return sls_error(&to_ingest(e), request_id),
        },
        _ => (
            false,
            sls::subintervals(params.from, params.to).into_iter().map(|(a, b)| (a, b, 0)).collect(),
            ScanStats::default(),
        ),
    };
    let progress = if complete { "Complete" } else { "Incomplete" };
    let total: u64 = buckets.iter().map(|b| b.2).sum();
    let body: Vec<Value> = buckets
        .iter()
        .map(|(from, to, count)| json!({"from": from, "to": to, "count": count, "progress": progress}))
        .collect();
    respond(
        200,
        vec![
            ("content-type", "application/json".into()),
            ("x-log-requestid", request_id.into()),
            ("x-log-progress", progress.into()),
            ("x-log-count", total.to_string()),
            ("x-log-processed-rows", stats.rows.to_string()),
            (SCANNED_HEADER, stats.to_string()),
        ],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

pub(super) async fn logs(
    state: &Arc<AppState>,
    asked: Asked<'_>,
    values: &serde_json::Map<String, Value>,
    v2: bool,
) -> Response {
    let Asked { target, credential, request_id, now_ns } = asked;
    let params = match sls_params(values, true, state.queries.limits.max_query_bytes) {
        Ok(p) => p,
        Err(e) => return sls_error(&e, request_id),
    };
    let started = Instant::now();
    let field_types = state
        .config
        .logstore(&target.project, &target.logstore)
        .map(|l| l.field_types.clone().into_iter().collect::<HashMap<_, _>>())
        .unwrap_or_default();
    let job = {
        let (state, target, params) = (state.clone(), target.clone(), params.clone());
        move || async move {
            let source = open(&state, params.reading(&target, now_ns)).await?;
            let topic = Some(params.topic.as_str());
            let logs = sls::logs(&source, params.range, topic, &params.query, &params.page, &field_types).await?;
            Ok::<_, QueryError>((logs, scanned(&source, &target, "logs")))
        }
    };
    let done = state.logs.run(params.key("l", target), credential, state.query_deadline, job).await;
    if let Some(error) = unfinished(&done) {
        return sls_error(&error, request_id);
    }
    let waiting = Logs { has_sql: params.query.sql.is_some(), ..Logs::default() };
    let (complete, logs, stats) = match &done {
        Outcome::Done(result) => match result.as_ref() {
            Ok((logs, stats)) => (true, logs, *stats),
            Err(e) => return sls_error(&to_ingest(e), request_id),
        },
        _ => (false, &waiting, ScanStats::default()),
    };
    let rows = render(logs);
    let progress = if complete { "Complete" } else { "Incomplete" };
    let elapsed = started.elapsed().as_millis() as u64;
    let where_query = params.query_text.split('|').next().unwrap_or("").trim().to_owned();
    let agg_query = params.query.sql.clone().unwrap_or_default();
    let count = rows.len();
    let mode = if logs.has_sql { 1 } else { 0 };
    let mut headers = vec![
        ("content-type", "application/json".into()),
        ("x-log-requestid", request_id.to_owned()),
        ("x-log-progress", progress.into()),
        ("x-log-count", count.to_string()),
        ("x-log-processed-rows", stats.rows.to_string()),
        ("x-log-elapsed-millisecond", elapsed.to_string()),
        (SCANNED_HEADER, stats.to_string()),
        ("x-log-has-sql", logs.has_sql.to_string()),
        ("x-log-query-info", json!({"mode": mode}).to_string()),
    ];
    if v2 {
        let meta = json!({
            "progress": progress,
            "count": count,
            "processedRows": stats.rows,
            "elapsedMillisecond": elapsed,
            "hasSQL": logs.has_sql,
            "whereQuery": where_query,
            "aggQuery": agg_query,
            "cpuSec": 0.0,
            "cpuCores": 0,
            "mode": mode,
            "keys": logs.keys,
        });
        let body = json!({"meta": meta, "data": rows});
        return respond(200, headers, serde_json::to_vec(&body).unwrap_or_default());
    }
    headers.push(("x-log-where-query", where_query));
    respond(200, headers, serde_json::to_vec(&rows).unwrap_or_default())
}

/// GetLogs' rows as SLS answers them: logs as [`sls_log`], SQL results as strings by
/// column name (nulls as `null`).
fn render(logs: &Logs) -> Vec<Map<String, Value>> {
    let mut rows = Vec::with_capacity(logs.rows());
    if !logs.has_sql {
        for batch in &logs.batches {
            rows.extend((0..batch.num_rows()).map(|row| sls_log(batch, row)));
        }
        return rows;
    }
    let options = FormatOptions::default().with_null("null");
    for batch in &logs.batches {
        let Ok(formatters) = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<ArrayFormatter<'_>>, _>>()
        else {
            continue;
        };
        for row in 0..batch.num_rows() {
            let mut out = Map::new();
            for (key, formatter) in logs.keys.iter().zip(&formatters) {
                out.insert(key.clone(), Value::String(formatter.value(row).to_string()));
            }
            rows.push(out);
        }
    }
    rows
}

/// One row as SLS shows a log: its fields and columns by name, `__time__`,
/// `__time_ns_part__`, `__topic__`, `__source__` and `__tag__:{key}`.
pub fn sls_log(batch: &RecordBatch, row: usize) -> Map<String, Value> {
    let column = |name: &str| batch.column_by_name(name);
    let mut out = Map::new();
    for (k, v) in field_entries(batch, row) {
        out.entry(k).or_insert(Value::String(v));
    }
    for name in schema::shown() {
        if let Some(value) = column(name).and_then(|c| text_at(c.as_ref(), row)) {
            out.entry(name.to_owned()).or_insert(Value::String(value));
        }
    }
    let time_ns = int_at(batch, TIME_NS, row).unwrap_or_default();
    // Where the log is, for GetContextLogs: the client's own pack id when it sent one.
    let batch_id = column(BATCH_ID).and_then(|c| text_at(c.as_ref(), row)).unwrap_or_default();
    if let (Ok(batch), Some(position)) = (batch_id.parse(), int_at(batch, POSITION, row)) {
        let event = EventId { batch, position: u32::try_from(position).unwrap_or(0), time_ns };
        out.insert("__pack_meta__".into(), Value::String(pack_meta(&event)));
        out.insert(PACK_ID_KEY.into(), Value::String(format!("{}-0", event.batch).to_uppercase()));
    }
    out.insert("__time__".into(), Value::String(time_ns.div_euclid(1_000_000_000).to_string()));
    out.insert("__time_ns_part__".into(), Value::String(time_ns.rem_euclid(1_000_000_000).to_string()));
    let text = |name: &str| Value::String(column(name).and_then(|c| text_at(c.as_ref(), row)).unwrap_or_default());
    out.insert("__topic__".into(), text(TOPIC));
    out.insert("__source__".into(), text(SOURCE));
    if let Some(tags) = column(TAGS) {
        for (k, v) in map_entries(tags.as_ref(), row) {
            // A pack id the client sent wins over the one made up above.
            out.insert(format!("__tag__:{k}"), Value::String(v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_meta_names_the_log_it_came_with() {
        let event = EventId { batch: "0123456789abcdef0123456789abcdef".parse().unwrap(), position: 7, time_ns: 42 };
        let meta = pack_meta(&event);
        assert_eq!(meta, "0|0123456789abcdef0123456789abcdef-7-42|0|0");
        assert_eq!(pack_meta_event(&meta), Some(event));
        for other in [
            "",
            "0|MTU1OTI4NTExMjg3NTQ2MjQ3MQ==|2|1",
            "1|0123456789abcdef0123456789abcdef-7-42|0|0",
            &format!("{meta}|0"),
        ] {
            assert_eq!(pack_meta_event(other), None, "{other}");
        }
    }
}
