//! The edge worker: Sluice's ingest APIs on Cloudflare Workers (wasm, workers-rs).
//!
//! It stays thin: request in, [`sluice_ingest::handle`] in the middle (the same core
//! `sluice serve` runs), the raw batch to storage, the product's answer out. Nothing is
//! answered with success before the batch is stored; when storage keeps failing within
//! the retry budget, the client gets its product's retryable error.
//!
//! - [`settings`]: configuration from `wrangler.toml` vars and secrets.
//! - [`storage`]: an R2 binding, or any S3 API signed with SigV4 (rusty-s3) and sent
//!   with `fetch`, with retries.

pub mod settings;
pub mod storage;

use sluice_ingest::{Context, Endpoint, Headers, IngestError, Request};
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Env, Method, Response, event};

use settings::Edge;

thread_local! {
    /// The parsed settings of this isolate: vars and secrets only change with a new
    /// deployment, which starts new isolates.
    static EDGE: RefCell<Option<Rc<Edge>>> = const { RefCell::new(None) };
}

fn edge(env: &Env) -> Result<Rc<Edge>, settings::SettingsError> {
    if let Some(edge) = EDGE.with(|e| e.borrow().clone()) {
        return Ok(edge);
    }
    let edge = Rc::new(Edge::from_env(env)?);
    EDGE.with(|e| *e.borrow_mut() = Some(edge.clone()));
    Ok(edge)
}

#[event(fetch)]
async fn fetch(mut req: worker::Request, env: Env, _ctx: worker::Context) -> worker::Result<Response> {
    let url = req.url()?;
    let path = url.path().to_owned();
    let method = req.method();
    if method == Method::Get && path == "/health" {
        return Response::from_json(&serde_json::json!({"status": "ok"}));
    }
    let request_id = request_id();
    let Some(endpoint) = Endpoint::recognize(method.as_ref(), &path) else {
        let query = url.query().unwrap_or("");
        return to_response(sluice_ingest::unrouted(method.as_ref(), &path, query, &request_id));
    };
    let product = endpoint.product();
    let edge = match edge(&env) {
        Ok(edge) => edge,
        Err(error) => {
            worker::console_error!("sluice: configuration error: {error}");
            let error = IngestError::Misconfigured(error.to_string());
            return to_response(sluice_ingest::refuse(product, &error, &request_id));
        }
    };
    let limit = edge.config.limits.max_body_bytes();
    let declared = req.headers().get("content-length")?.and_then(|v| v.parse::<usize>().ok());
    if let Some(actual) = declared.filter(|len| *len > limit) {
        return to_response(sluice_ingest::refuse(product, &IngestError::BodyTooLarge { limit, actual }, &request_id));
    }
    let body = req.bytes().await?;
    if body.len() > limit {
        let error = IngestError::BodyTooLarge { limit, actual: body.len() };
        return to_response(sluice_ingest::refuse(product, &error, &request_id));
    }
    let headers: Headers = req.headers().entries().collect();
    let query = url.query().unwrap_or("");
    let request = Request { method: method.as_ref(), path: &path, query, headers: &headers, body: &body };
    let ctx = Context { now_ns: now_ns(), request_id: &request_id };
    let accepted = match sluice_ingest::handle(&edge.config, endpoint, &request, &ctx, &edge.quotas) {
        Ok(accepted) => accepted,
        Err(response) => return to_response(response),
    };
    if let Some(batch) = accepted.batch.as_ref()
        && let Err(error) = edge.storage.put(&env, &batch.key.to_string(), &batch.bytes).await
    {
        worker::console_error!("sluice: storing {} failed: {error}", batch.key);
        if error.throttled() {
            return to_response(sluice_ingest::refuse(product, &IngestError::ServerBusy, &request_id));
        }
        return to_response(accepted.storage_failed(&request_id));
    }
    to_response(accepted.response)
}

fn to_response(response: sluice_ingest::Response) -> worker::Result<Response> {
    let headers = worker::Headers::new();
    for (name, value) in &response.headers {
        headers.set(name, value)?;
    }
    Ok(Response::from_bytes(response.body)?.with_status(response.status).with_headers(headers))
}

/// Milliseconds from the Workers clock, as nanoseconds.
fn now_ns() -> i64 {
    worker::Date::now().as_millis() as i64 * 1_000_000
}

/// An SLS-style request id: 24 uppercase hex digits.
fn request_id() -> String {
    let random = (worker::js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    let more = (worker::js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    format!("{:08X}{:08X}{:08X}", (now_ns() / 1_000_000) as u32, random, more)
}
