//! Proliferate's log search (`GET /api/v1/projects/{project_id}/logs`) and trace
//! correlation (`GET /api/v1/events/{event_id}/logs`): parameters, the API key
//! (`sluice_ingest::auth::proliferate`), the query ([`crate::query::proliferate`]), and
//! the answer as Proliferate renders it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use datafusion::arrow::array::RecordBatch;
use serde_json::{Map, Value, json};
use sluice_ingest::time::format_rfc3339_millis;
use sluice_ingest::{IngestError, Product, Target};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::jobs::Outcome;
use super::{AppState, SCANNED_HEADER, headers_of, now_ns, open, respond, scanned, to_http, to_ingest, unfinished};
use crate::lake::rows::{field_entries, int_at, json_keys, text_at};
use crate::lake::schema::*;
use crate::query::QueryError;
use crate::query::proliferate::{self, SearchParams};
use crate::query::source::Reading;

fn proliferate_error(error: &IngestError) -> Response {
    to_http(sluice_ingest::refuse(Product::Proliferate, error, ""))
}

fn invalid(name: &'static str, reason: impl Into<String>) -> IngestError {
    IngestError::InvalidParameter { name, reason: reason.into() }
}

/// The logstore a query's API key may read, and the credential it counts against.
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    query: &[(String, String)],
    project: Option<&str>,
) -> Result<(Target, String), IngestError> {
    let headers = headers_of(headers);
    let presented = sluice_ingest::auth::proliferate::presented(&headers, query);
    let (target, key) = sluice_ingest::auth::proliferate::authorize(&state.config, presented, project)?;
    Ok((target, format!("proliferate:{}/{}", key.project, key.logstore)))
}

/// The request's query parameters.
fn pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

/// How long a Proliferate request waits for its query: Proliferate has no "incomplete",
/// so the whole budget.
fn wait(state: &AppState) -> Duration {
    state.query_budget + Duration::from_secs(1)
}

/// `GET /api/v1/projects/{project_id}/logs`.
pub async fn search(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let now_ns = now_ns();
    let Ok(_permit) = state.inflight.try_acquire() else {
        return proliferate_error(&IngestError::ServerBusy);
    };
    let pairs = pairs(&uri);
    let (target, credential) = match authorize(&state, &headers, &pairs, Some(&project)) {
        Ok(t) => t,
        Err(e) => return proliferate_error(&e),
    };
    let query: HashMap<String, String> = pairs.into_iter().collect();
    let params = match search_params(&query, state.queries.limits.max_query_bytes) {
        Ok(p) => p,
        Err(e) => return proliferate_error(&e),
    };
    let key = format!("{}\u{0}{}\u{0}{:?}", target.project, target.logstore, params);
    let job = {
        let (state, target) = (state.clone(), target.clone());
        move || async move {
            let (from_ns, to_ns) =
                (params.start_ns.unwrap_or(i64::MIN / 2), params.end_ns.map_or(i64::MAX / 2, |e| e.saturating_add(1)));
            let reading = Reading::of(&target, from_ns, to_ns, now_ns);
            let source = open(&state, reading).await?;
            let page = proliferate::search(&source, &params).await?;
            Ok::<_, QueryError>((page, scanned(&source, &target, "search")))
        }
    };
    let done = state.searches.run(key, &credential, wait(&state), job).await;
    if let Some(error) = unfinished(&done) {
        return proliferate_error(&error);
    }
    match &done {
        Outcome::Done(result) => match result.as_ref() {
            Ok((page, stats)) => respond(
                200,
                vec![("content-type", "application/json".into()), (SCANNED_HEADER, stats.to_string())],
                serde_json::to_vec(
                    &json!({"logs": render_all(&page.batches), "total": page.total, "has_more": page.has_more}),
                )
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
pub async fn event(
    State(state): State<Arc<AppState>>,
    Path(event): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let now_ns = now_ns();
    let Ok(_permit) = state.inflight.try_acquire() else {
        return proliferate_error(&IngestError::ServerBusy);
    };
    let (target, credential) = match authorize(&state, &headers, &pairs(&uri), None) {
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
    let key = format!("{}\u{0}{}\u{0}{event}", target.project, target.logstore);
    let job = {
        let (state, target) = (state.clone(), target.clone());
        move || async move {
            let reading = Reading::of(&target, from_ns, to_ns, now_ns);
            let source = open(&state, reading).await?;
            let logs = proliferate::event_logs(&source, &event).await?;
            Ok::<_, QueryError>((logs, scanned(&source, &target, "event")))
        }
    };
    let done = state.events.run(key, &credential, wait(&state), job).await;
    if let Some(error) = unfinished(&done) {
        return proliferate_error(&error);
    }
    match &done {
        Outcome::Done(result) => match result.as_ref() {
            Ok((Some(batches), stats)) => respond(
                200,
                vec![("content-type", "application/json".into()), (SCANNED_HEADER, stats.to_string())],
                serde_json::to_vec(&json!({"logs": render_all(batches)})).unwrap_or_default(),
            ),
            Ok((None, _)) => proliferate_error(&IngestError::NotFound("event".into())),
            Err(e) => proliferate_error(&to_ingest(e)),
        },
        _ => proliferate_error(&IngestError::QueryBusy("the query is still running: retry".into())),
    }
}

fn render_all(batches: &[RecordBatch]) -> Vec<Value> {
    batches.iter().flat_map(|b| (0..b.num_rows()).map(move |row| render(b, row))).collect()
}

/// One row as Proliferate shows a log; `attributes` gets back its JSON values.
pub fn render(batch: &RecordBatch, row: usize) -> Value {
    let string = |name: &str| {
        batch.column_by_name(name).and_then(|c| text_at(c.as_ref(), row)).map_or(Value::Null, Value::String)
    };
    let time_ns = int_at(batch, TIME_NS, row).unwrap_or_default();
    let json_keys = json_keys(batch, row);
    let mut attributes = Map::new();
    for (key, value) in field_entries(batch, row) {
        let value = if json_keys.contains(&key) {
            serde_json::from_str(&value).unwrap_or(Value::String(value))
        } else {
            Value::String(value)
        };
        attributes.insert(key, value);
    }
    let id = match (string(BATCH_ID), int_at(batch, POSITION, row)) {
        (Value::String(b), Some(p)) => Value::String(format!("{b}-{p}-{time_ns}")),
        _ => Value::Null,
    };
    json!({
        "id": id,
        "timestamp": format_rfc3339_millis(time_ns),
        "level": string(LEVEL),
        "message": string(MESSAGE),
        "template": string(TEMPLATE),
        "attributes": attributes,
        "trace_id": string(TRACE_ID),
        "span_id": string(SPAN_ID),
        "user_id": string(USER_ID),
        "account_id": string(ACCOUNT_ID),
        "logger_name": string(LOGGER_NAME),
        "file_path": string(FILE_PATH),
        "line_number": int_at(batch, LINE_NUMBER, row),
        "function_name": string(FUNCTION_NAME),
        "environment": string(ENVIRONMENT),
        "release": string(RELEASE),
    })
}
