//! The ingest handler: the request goes through `sluice_ingest::handle`, the raw batch
//! goes to the object store, and the product's answer goes back. Nothing is answered
//! with success before the batch is stored. The body is read first (at the server's
//! minimum rate, see [`super::read_body`]); a slot of `max_concurrent_requests` is
//! taken only then.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, PutResult};
use sluice_ingest::{Context, Endpoint, Headers, IngestError, Request};
use std::sync::Arc;

use super::{AppState, headers_of, now_ns, read_body, to_http, unrouted};
use crate::lake::raw::Pending;

pub async fn ingest(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(endpoint) = Endpoint::recognize(method.as_str(), uri.path()) else {
        return unrouted(&state, &method, &uri);
    };
    let product = endpoint.product();
    let request_id = state.request_ids.next();
    let refuse = |error: IngestError| to_http(sluice_ingest::refuse(product, &error, &request_id));
    let limit = state.config.limits.max_body_bytes();
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(actual) = declared.filter(|len| *len > limit) {
        return refuse(IngestError::BodyTooLarge { limit, actual });
    }
    let bytes = match read_body(&state, body, limit).await {
        Ok(bytes) => bytes,
        Err(error) => return refuse(error),
    };
    let Ok(_permit) = state.inflight.try_acquire() else {
        return refuse(IngestError::ServerBusy);
    };
    let headers: Headers = headers_of(&headers);
    let req = Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &bytes,
    };
    let ctx = Context { now_ns: now_ns(), request_id: &request_id };
    let accepted = match sluice_ingest::handle(&state.config, endpoint, &req, &ctx, &state.quotas) {
        Ok(accepted) => accepted,
        Err(response) => {
            tracing::info!(request_id, status = response.status, path = uri.path(), "refused");
            return to_http(response);
        }
    };
    if let Some(batch) = accepted.batch.as_ref() {
        let key = batch.key.to_string();
        let size = batch.bytes.len() as u64;
        match put(&state, &key, batch.bytes.clone()).await {
            Ok(_) => {
                tracing::debug!(request_id, key, records = accepted.records, "stored");
                let stored = Pending { key: batch.key.clone(), size, received_ns: now_ns() };
                state.queries.cache.note_stored(stored);
            }
            Err(error) => {
                tracing::warn!(request_id, key, %error, "storing the raw batch failed");
                return to_http(accepted.storage_failed(&request_id));
            }
        }
    }
    to_http(accepted.response)
}

async fn put(state: &AppState, key: &str, bytes: Vec<u8>) -> object_store::Result<PutResult> {
    let path = Path::parse(key)?;
    state.storage.store.put(&path, PutPayload::from(bytes)).await
}
