//! Query APIs: SLS GetHistograms and GetLogs (V1 `GET`, V2 `POST .../logs`), signed like
//! every SLS request; Proliferate log search and trace correlation, with an API key.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use sluice_ingest::endpoint::sls_project_from_host;
use sluice_ingest::{Headers, IngestError, Product, Request, Target};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::jobs::Outcome;
use super::{AppState, now_ns, read_body, to_http};
use crate::query::QueryError;
use crate::query::proliferate::{self, SearchParams};
use crate::query::scan::ScanStats;
use crate::query::sls::{self, Page, Range};
use crate::query::source::Source;
use crate::query::syntax::{self, Query};

/// What a query read (files, row groups, bytes, rows), on every query answer.
pub const SCANNED_HEADER: &str = "x-sluice-scanned";

/// Logs what a query read, and returns it.
fn scanned(source: &Source, target: &Target, kind: &str) -> ScanStats {
    let stats = source.scanned.get();
    tracing::info!(
        project = %target.project, logstore = %target.logstore, kind, files = stats.files,
        row_groups = stats.row_groups, row_groups_read = stats.row_groups_read,
        bloom_pruned = stats.row_groups_pruned_by_bloom, bytes = stats.bytes, rows = stats.rows,
        raw_batches = source.raw_batches, raw_rows = source.raw_rows, "query scanned"
    );
    stats
}

/// Most logs a non-SQL GetLogs returns.
const MAX_LINES: usize = 100;
/// Largest GetLogs V2 body: its parameters and a query.
const MAX_QUERY_BODY_BYTES: usize = 1 << 20;

fn headers_of(map: &HeaderMap) -> Headers {
    map.iter().map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

fn sls_error(error: &IngestError, request_id: &str) -> Response {
    to_http(sluice_ingest::refuse(Product::Sls, error, request_id))
}

fn invalid(name: &'static str, reason: impl Into<String>) -> IngestError {
    IngestError::InvalidParameter { name, reason: reason.into() }
}

/// Checks an SLS request's signature and where it reads: the logstore, and the
/// credential its queries count against.
fn authorize_sls(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &Headers,
    body: &[u8],
    logstore: &str,
) -> Result<(Target, String), IngestError> {
    let req = Request { method: method.as_str(), path: uri.path(), query: uri.query().unwrap_or(""), headers, body };
    let key = sluice_ingest::auth::sls::verify(&state.config, &req, now_ns())?;
    let host = headers.get("host").unwrap_or("");
    let project = sls_project_from_host(host).ok_or_else(|| IngestError::ProjectNotExist(host.to_owned()))?;
    if !key.projects.is_empty() && !key.projects.iter().any(|p| p == project) {
        return Err(IngestError::AccessDenied { key_id: key.id.clone(), project: project.to_owned() });
    }
    Ok((state.config.target(project, logstore)?, format!("sls:{}", key.id)))
}

async fn open(state: &AppState, target: &Target, range: Range) -> Result<Source, QueryError> {
    let mut attempt = 0;
    loop {
        let opened = Source::open(
            &state.storage,
            &target.project,
            &target.logstore,
            range.from_ns,
            range.to_ns,
            state.lookback,
            &state.query_cache,
            &state.limits,
        )
        .await;
        match opened {
            Err(QueryError::Retry) if attempt < 3 => attempt += 1,
            other => return other,
        }
    }
}

/// A failed query as the product error it answers.
fn to_ingest(e: &QueryError) -> IngestError {
    match e {
        QueryError::InvalidQuery(m) | QueryError::TooExpensive(m) => IngestError::InvalidQueryString(m.clone()),
        other => {
            tracing::warn!(error = %other, "query failed");
            IngestError::QueryFailed(other.to_string())
        }
    }
}

/// A query that did not finish, or could not start, as the product error it answers
/// (`None` while it is still running).
fn unfinished<T>(outcome: &Outcome<T>) -> Option<IngestError> {
    match outcome {
        Outcome::Busy(why) => Some(IngestError::QueryBusy(why.clone())),
        Outcome::Cancelled(budget) => Some(IngestError::InvalidQueryString(format!(
            "the query was cancelled after {} s, its budget ([query] timeout_secs): narrow the time range or simplify the query",
            budget.as_secs().saturating_sub(1)
        ))),
        Outcome::Done(_) | Outcome::Running => None,
    }
}

/// The parameters SLS GetHistograms and GetLogs share.
#[derive(Clone, Debug)]
struct SlsParams {
    from: i64,
    to: i64,
    from_ns: i64,
    to_ns: i64,
    topic: String,
    query_text: String,
    query: Query,
    page: Page,
}

impl SlsParams {
    fn range(&self) -> Range {
        // Checked when the parameters were read.
        Range::new(self.from, self.from_ns, self.to, self.to_ns).unwrap_or(Range { from_ns: 0, to_ns: 0 })
    }

    fn key(&self, kind: &str, target: &Target) -> String {
        format!(
            "{kind}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            target.project,
            target.logstore,
            self.from,
            self.from_ns,
            self.to,
            self.to_ns,
            self.topic,
            self.query_text,
            self.page.line,
            self.page.offset,
            self.page.reverse
        )
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
fn sls_params(
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
    if Range::new(from, from_ns, to, to_ns).is_none() {
        return Err(invalid("from", format!("the range [{from}, {to}) is beyond the times logs can have")));
    }
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
        from_ns,
        to_ns,
        topic: values.get("topic").and_then(Value::as_str).unwrap_or("").to_owned(),
        query_text,
        query,
        page: Page { line: line.max(0) as usize, offset: offset as usize, reverse: boolean(values.get("reverse")) },
    })
}

fn respond(status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Response {
    to_http(sluice_ingest::Response { status, headers, body })
}

/// `GET /logstores/{logstore}?type=histogram|log`.
pub async fn sls_get(
    State(state): State<Arc<AppState>>,
    Path(logstore): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let request_id = state.request_ids.next();
    let Ok(_permit) = state.inflight.try_acquire() else {
        return sls_error(&IngestError::ServerBusy, &request_id);
    };
    let headers = headers_of(&headers);
    let (target, credential) = match authorize_sls(&state, &method, &uri, &headers, &[], &logstore) {
        Ok(t) => t,
        Err(e) => return sls_error(&e, &request_id),
    };
    let values: serde_json::Map<String, Value> = form_pairs(uri.query().unwrap_or(""));
    match values.get("type").and_then(Value::as_str) {
        Some("histogram") => histogram(&state, &target, &credential, &values, &request_id).await,
        Some("log") => logs(&state, &target, &credential, &values, &request_id, false).await,
        other => sls_error(&invalid("type", format!("{other:?} is not histogram or log")), &request_id),
    }
}

/// `POST /logstores/{logstore}/logs`: GetLogs V2.
pub async fn sls_logs_v2(
    State(state): State<Arc<AppState>>,
    Path(logstore): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = state.request_ids.next();
    let body = match read_body(&state, body, MAX_QUERY_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => return sls_error(&e, &request_id),
    };
    let Ok(_permit) = state.inflight.try_acquire() else {
        return sls_error(&IngestError::ServerBusy, &request_id);
    };
    let headers = headers_of(&headers);
    let (target, credential) = match authorize_sls(&state, &method, &uri, &headers, &body, &logstore) {
        Ok(t) => t,
        Err(e) => return sls_error(&e, &request_id),
    };
    let values: serde_json::Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return sls_error(&IngestError::InvalidBody(format!("not valid json: {e}")), &request_id),
    };
    let mut response = logs(&state, &target, &credential, &values, &request_id, true).await;
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

fn form_pairs(query: &str) -> serde_json::Map<String, Value> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect()
}

async fn histogram(
    state: &Arc<AppState>,
    target: &Target,
    credential: &str,
    values: &serde_json::Map<String, Value>,
    request_id: &str,
) -> Response {
    let params = match sls_params(values, false, state.limits.max_query_bytes) {
        Ok(p) => p,
        Err(e) => return sls_error(&e, request_id),
    };
    let search_only = Query { search: params.query.search.clone(), sql: None };
    let job = {
        let (state, target, params) = (state.clone(), target.clone(), params.clone());
        move || async move {
            let source = open(&state, &target, params.range()).await?;
            let buckets = sls::histogram(
                &source,
                params.range(),
                params.from,
                params.to,
                Some(params.topic.as_str()),
                &search_only,
            )
            .await?;
            Ok::<_, QueryError>((buckets, scanned(&source, &target, "histogram")))
        }
    };
    let done = state.histograms.run(params.key("h", target), credential, state.query_deadline, job).await;
    if let Some(error) = unfinished(&done) {
        return sls_error(&error, request_id);
    }
    let done = match &done {
        Outcome::Done(result) => Some(result.as_ref()),
        _ => None,
    };
    let (complete, buckets, stats) = match done {
        Some(Ok((buckets, stats))) => (true, buckets.clone(), *stats),
        Some(Err(e)) => return sls_error(&to_ingest(e), request_id),
        None => (
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

async fn logs(
    state: &Arc<AppState>,
    target: &Target,
    credential: &str,
    values: &serde_json::Map<String, Value>,
    request_id: &str,
    v2: bool,
) -> Response {
    let params = match sls_params(values, true, state.limits.max_query_bytes) {
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
            let source = open(&state, &target, params.range()).await?;
            let logs = sls::logs(
                &source,
                params.range(),
                Some(params.topic.as_str()),
                &params.query,
                &params.page,
                &field_types,
            )
            .await?;
            Ok::<_, QueryError>((logs, scanned(&source, &target, "logs")))
        }
    };
    let done = state.logs.run(params.key("l", target), credential, state.query_deadline, job).await;
    if let Some(error) = unfinished(&done) {
        return sls_error(&error, request_id);
    }
    let done = match &done {
        Outcome::Done(result) => Some(result.as_ref()),
        _ => None,
    };
    let (complete, logs, stats) = match done {
        Some(Ok((logs, stats))) => (true, logs.clone(), *stats),
        Some(Err(e)) => return sls_error(&to_ingest(e), request_id),
        None => (false, sls::Logs { has_sql: params.query.sql.is_some(), ..Default::default() }, ScanStats::default()),
    };
    let progress = if complete { "Complete" } else { "Incomplete" };
    let elapsed = started.elapsed().as_millis() as u64;
    let where_query = params.query_text.split('|').next().unwrap_or("").trim().to_owned();
    let agg_query = params.query.sql.clone().unwrap_or_default();
    let count = logs.rows.len();
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
        let body = json!({"meta": meta, "data": logs.rows});
        return respond(200, headers, serde_json::to_vec(&body).unwrap_or_default());
    }
    headers.push(("x-log-where-query", where_query));
    respond(200, headers, serde_json::to_vec(&logs.rows).unwrap_or_default())
}

fn proliferate_error(error: &IngestError) -> Response {
    to_http(sluice_ingest::refuse(Product::Proliferate, error, ""))
}

/// The API key a Proliferate query carries: `Authorization: Bearer`, `X-API-Key` or
/// `?api_key=`, and the logstore it may read.
fn authorize_proliferate(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    project: Option<&str>,
) -> Result<(Target, String), IngestError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let presented = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| header("x-api-key"))
        .or_else(|| query.get("api_key").map(String::as_str))
        .ok_or(IngestError::InvalidApiKey)?;
    let key = state.config.proliferate_key(presented.trim()).ok_or(IngestError::InvalidApiKey)?;
    if let Some(project) = project
        && project != key.project
    {
        return Err(IngestError::Forbidden(project.to_owned()));
    }
    let credential = format!("proliferate:{}/{}", key.project, key.logstore);
    Ok((state.config.target(&key.project, &key.logstore)?, credential))
}

/// `GET /api/v1/projects/{project_id}/logs`.
pub async fn proliferate_search(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Ok(_permit) = state.inflight.try_acquire() else {
        return proliferate_error(&IngestError::ServerBusy);
    };
    let query: HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let (target, credential) = match authorize_proliferate(&state, &headers, &query, Some(&project)) {
        Ok(t) => t,
        Err(e) => return proliferate_error(&e),
    };
    let params = match search_params(&query, state.limits.max_query_bytes) {
        Ok(p) => p,
        Err(e) => return proliferate_error(&e),
    };
    let range = Range {
        from_ns: params.start_ns.unwrap_or(i64::MIN / 2),
        to_ns: params.end_ns.map_or(i64::MAX / 2, |e| e.saturating_add(1)),
    };
    let key = format!("{}\u{0}{}\u{0}{:?}", target.project, target.logstore, params);
    let job = {
        let (state, target) = (state.clone(), target.clone());
        move || async move {
            let source = open(&state, &target, range).await?;
            let page = proliferate::search(&source, &params).await?;
            Ok::<_, QueryError>((page, scanned(&source, &target, "search")))
        }
    };
    // Proliferate has no "incomplete": the request waits for the whole budget.
    let done = state.searches.run(key, &credential, state.query_budget + Duration::from_secs(1), job).await;
    if let Some(error) = unfinished(&done) {
        return proliferate_error(&error);
    }
    match &done {
        Outcome::Done(result) => match result.as_ref() {
            Ok((page, stats)) => respond(
                200,
                vec![("content-type", "application/json".into()), (SCANNED_HEADER, stats.to_string())],
                serde_json::to_vec(&json!({"logs": page.logs, "total": page.total, "has_more": page.has_more}))
                    .unwrap_or_default(),
            ),
            Err(e) => proliferate_error(&to_ingest(e)),
        },
        _ => proliferate_error(&IngestError::QueryBusy("the query is still running: retry".into())),
    }
}

fn search_params(query: &HashMap<String, String>, max_query_bytes: usize) -> Result<SearchParams, IngestError> {
    if let Some(search) = query.get("search").filter(|s| s.len() > max_query_bytes) {
        return Err(invalid("search", format!("is {} bytes, more than the {max_query_bytes} allowed", search.len())));
    }
    let time = |name: &'static str| -> Result<Option<i64>, IngestError> {
        match query.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => sluice_ingest::time::parse_rfc3339_nanos(s)
                .map(Some)
                .ok_or_else(|| invalid(name, format!("{s:?} is not an ISO 8601 time"))),
        }
    };
    let number =
        |name: &'static str, default: usize, range: std::ops::RangeInclusive<usize>| -> Result<usize, IngestError> {
            match query.get(name) {
                None => Ok(default),
                Some(s) => s.trim().parse::<usize>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                    invalid(name, format!("{s:?} must be an integer in {}..={}", range.start(), range.end()))
                }),
            }
        };
    let mut levels = Vec::new();
    for level in
        query.get("levels").map(String::as_str).unwrap_or("").split(',').map(str::trim).filter(|l| !l.is_empty())
    {
        let known = sluice_ingest::format::proliferate::parse_level(level)
            .ok_or_else(|| invalid("levels", format!("{level:?} is not a level")))?;
        levels.push(known.to_owned());
    }
    Ok(SearchParams {
        levels,
        search: query.get("search").cloned(),
        trace_id: query.get("trace_id").cloned(),
        start_ns: time("start_time")?,
        end_ns: time("end_time")?,
        limit: number("limit", 100, 1..=1000)?,
        offset: number("offset", 0, 0..=usize::MAX)?,
    })
}

/// `GET /api/v1/events/{event_id}/logs`.
pub async fn proliferate_event(
    State(state): State<Arc<AppState>>,
    Path(event): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Ok(_permit) = state.inflight.try_acquire() else {
        return proliferate_error(&IngestError::ServerBusy);
    };
    let query: HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let (target, credential) = match authorize_proliferate(&state, &headers, &query, None) {
        Ok(t) => t,
        Err(e) => return proliferate_error(&e),
    };
    let Ok(event) = event.parse::<sluice_ingest::batch::EventId>() else {
        return proliferate_error(&IngestError::NotFound("event".into()));
    };
    let window = proliferate::CORRELATION_WINDOW_NS;
    // An id whose time is too close to the ends of time to have a window is no event.
    let (Some(from_ns), Some(to_ns)) =
        (event.time_ns.checked_sub(window), event.time_ns.checked_add(window).and_then(|t| t.checked_add(1)))
    else {
        return proliferate_error(&IngestError::NotFound("event".into()));
    };
    let range = Range { from_ns, to_ns };
    let key = format!("{}\u{0}{}\u{0}{event}", target.project, target.logstore);
    let job = {
        let (state, target) = (state.clone(), target.clone());
        move || async move {
            let source = open(&state, &target, range).await?;
            let logs = proliferate::event_logs(&source, &event).await?;
            Ok::<_, QueryError>((logs, scanned(&source, &target, "event")))
        }
    };
    let done = state.events.run(key, &credential, state.query_budget + Duration::from_secs(1), job).await;
    if let Some(error) = unfinished(&done) {
        return proliferate_error(&error);
    }
    match &done {
        Outcome::Done(result) => match result.as_ref() {
            Ok((Some(logs), stats)) => respond(
                200,
                vec![("content-type", "application/json".into()), (SCANNED_HEADER, stats.to_string())],
                serde_json::to_vec(&json!({"logs": logs})).unwrap_or_default(),
            ),
            Ok((None, _)) => proliferate_error(&IngestError::NotFound("event".into())),
            Err(e) => proliferate_error(&to_ingest(e)),
        },
        _ => proliferate_error(&IngestError::QueryBusy("the query is still running: retry".into())),
    }
}
