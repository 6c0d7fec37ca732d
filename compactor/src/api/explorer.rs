//! The log explorer: the page at `/` and its assets, built into the binary (`ui/`,
//! bundled by `build.rs`), sign-in, and the calls the page makes. Every call under
//! `/ui/api/` needs the session's cookie and its CSRF token in [`CSRF_HEADER`], and reads
//! only logstores the session's credential may read ([`Grant::read`]):
//!
//! - `POST /ui/session` `{"kind": "sls", "id", "secret"}` (or `"lts"` with `"token"`,
//!   `"proliferate"` with `"key"`): signs in, sets the cookie, answers the session;
//! - `GET /ui/session`: the session (who, its CSRF token, its logstores);
//!   `DELETE /ui/session`: signs out;
//! - `GET /ui/api/{project}/{logstore}?type=histogram|log|context_log&...`: SLS
//!   GetHistograms, GetLogs (its V2 answer, `{"meta", "data"}`) and GetContextLogs, their
//!   parameters and answers as SLS has them; a query that does not parse answers where
//!   (`position`);
//! - `GET /ui/api/{project}/{logstore}/facets?from&to&query`: the fields of the newest
//!   [`FACET_SAMPLE`] matching logs, each with its most frequent values.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_ingest::auth::grant::{self, Grant, Presented};
use sluice_ingest::config::{DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};
use sluice_ingest::{IngestError, Product, Target};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::jobs::Outcome;
use super::session::{self, CSRF_HEADER, Refused, Session};
use super::sls::{self as sls_api, Asked};
use super::{AppState, now_ns, open, read_body, respond, scanned, to_http, to_ingest, unfinished, unrouted};
use crate::query::QueryError;
use crate::query::sls::{self, Logs, Page};
use crate::query::syntax::{self, Query};

/// Logs the field sidebar counts values over: the newest that match.
pub const FACET_SAMPLE: usize = 1000;
/// Values per field in the sidebar.
const FACET_VALUES: usize = 10;
/// Values longer than this are not counted (messages, stack traces).
const FACET_VALUE_CHARS: usize = 200;
/// Largest sign-in body.
const MAX_SIGN_IN_BYTES: usize = 16 * 1024;

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.js"));
const APP_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.css"));

/// What the page may load and connect to: itself, nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page_headers(content_type: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", content_type.into()),
        ("content-security-policy", CSP.into()),
        ("x-content-type-options", "nosniff".into()),
        ("referrer-policy", "no-referrer".into()),
        ("cache-control", "no-cache".into()),
    ]
}

/// `GET /`: the page. A request that signs itself is an API call (SLS ListProject and
/// the like), answered as the APIs answer paths they do not serve.
pub async fn page(State(state): State<Arc<AppState>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if headers.contains_key("authorization") || headers.contains_key("x-log-apiversion") {
        return unrouted(&state, &method, &uri);
    }
    respond(200, page_headers("text/html; charset=utf-8"), INDEX_HTML.as_bytes().to_vec())
}

/// `GET /ui/{asset}`: the bundled script and style sheet, gzipped for a browser that
/// takes it (each is compressed once, on first use).
pub async fn asset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    static GZIPPED: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
    let (index, content_type, raw) = match name.as_str() {
        "app.js" => (0, "text/javascript; charset=utf-8", APP_JS),
        "app.css" => (1, "text/css; charset=utf-8", APP_CSS),
        _ => return unrouted(&state, &method, &uri),
    };
    let mut out = page_headers(content_type);
    out.push(("vary", "accept-encoding".into()));
    let takes_gzip = headers
        .get_all("accept-encoding")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.split(';').next().is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip")));
    if !takes_gzip {
        return respond(200, out, raw.to_vec());
    }
    out.push(("content-encoding", "gzip".into()));
    respond(200, out, GZIPPED[index].get_or_init(|| gzip(raw)).clone())
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(raw);
    encoder.finish().unwrap_or_default()
}

/// The explorer's own errors, where no product API speaks: sessions and sign-in's form.
/// (A credential a product refuses gets that product's error.)
#[derive(Debug, thiserror::Error)]
enum ExplorerError {
    #[error("sign in first: the session is missing or expired")]
    SignedOut,
    #[error("the call must carry the session's {CSRF_HEADER} header")]
    Csrf,
    #[error("sign in with a JSON body (content-type: application/json)")]
    NotJson,
    #[error("sign-in from another origin is refused")]
    OtherOrigin,
    #[error("not a sign-in: {0}")]
    InvalidSignIn(String),
    #[error("cannot start a session: {0}")]
    NoSession(String),
}

impl ExplorerError {
    /// The one table of statuses and codes.
    fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Self::SignedOut => (401, "Unauthorized"),
            Self::Csrf | Self::OtherOrigin => (403, "Forbidden"),
            Self::NotJson => (415, "UnsupportedMediaType"),
            Self::InvalidSignIn(_) => (400, "InvalidBody"),
            Self::NoSession(_) => (500, "InternalServerError"),
        }
    }

    /// `{"errorCode", "errorMessage"}`, with `extra` members.
    fn respond_with(&self, extra: Map<String, Value>) -> Response {
        let (status, code) = self.status_and_code();
        let mut body = Map::from_iter([
            ("errorCode".to_owned(), json!(code)),
            ("errorMessage".to_owned(), json!(self.to_string())),
        ]);
        body.extend(extra);
        json_response(status, vec![], &Value::Object(body))
    }

    fn respond(&self) -> Response {
        self.respond_with(Map::new())
    }
}

impl From<Refused> for ExplorerError {
    fn from(why: Refused) -> Self {
        match why {
            Refused::SignedOut => Self::SignedOut,
            Refused::Csrf => Self::Csrf,
        }
    }
}

fn json_response(status: u16, mut headers: Vec<(&'static str, String)>, body: &Value) -> Response {
    headers.push(("content-type", "application/json".into()));
    headers.push(("cache-control", "no-store".into()));
    respond(status, headers, serde_json::to_vec(body).unwrap_or_default())
}

/// A product's error for what a credential may not do, in that product's words.
fn product_error(grant: Option<&Grant>, error: &IngestError, request_id: &str) -> Response {
    let product = match grant {
        Some(Grant::Lts { .. }) => Product::Lts,
        Some(Grant::Proliferate { .. }) => Product::Proliferate,
        _ => Product::Sls,
    };
    to_http(sluice_ingest::refuse(product, error, request_id))
}

fn refused(why: Refused) -> Response {
    ExplorerError::from(why).respond()
}

/// The session of a call. `csrf` says whether the call must carry the CSRF token.
fn session_of(state: &AppState, headers: &HeaderMap, csrf: bool) -> Result<(String, Session), Refused> {
    let id = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::cookie_value)
        .map(str::to_owned);
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    let session = state.sessions.check(id.as_deref(), csrf.then_some(token), Instant::now())?;
    Ok((id.unwrap_or_default(), session))
}

/// A credential as the sign-in form sends it.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum SignIn {
    Sls {
        id: String,
        secret: String,
        #[serde(default)]
        security_token: Option<String>,
    },
    Lts {
        token: String,
    },
    Proliferate {
        key: String,
    },
}

/// `POST /ui/session`: signs in. The body must be JSON (a cross-site form cannot send
/// that), and a request from another origin is refused.
pub async fn sign_in(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let request_id = state.request_ids.next();
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return ExplorerError::NotJson.respond();
    }
    if !same_origin(&headers) {
        return ExplorerError::OtherOrigin.respond();
    }
    let body = match read_body(&state, body, MAX_SIGN_IN_BYTES).await {
        Ok(body) => body,
        Err(e) => return product_error(None, &e, &request_id),
    };
    let form: SignIn = match serde_json::from_slice(&body) {
        Ok(form) => form,
        Err(e) => return ExplorerError::InvalidSignIn(e.to_string()).respond(),
    };
    let presented = match &form {
        SignIn::Sls { id, secret, security_token } => {
            Presented::Sls { id, secret, security_token: security_token.as_deref() }
        }
        SignIn::Lts { token } => Presented::Lts { token },
        SignIn::Proliferate { key } => Presented::Proliferate { key },
    };
    let grant = match grant::sign_in(&state.config, presented) {
        Ok(grant) => grant,
        Err(e) => {
            let product = match form {
                SignIn::Sls { .. } => Product::Sls,
                SignIn::Lts { .. } => Product::Lts,
                SignIn::Proliferate { .. } => Product::Proliferate,
            };
            tracing::info!(error = %e, "explorer sign-in refused");
            return to_http(sluice_ingest::refuse(product, &e, &request_id));
        }
    };
    let (id, session) = match state.sessions.start(grant, Instant::now()) {
        Ok(started) => started,
        Err(e) => return ExplorerError::NoSession(e.to_string()).respond(),
    };
    let secure = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = session::set_cookie(&id, state.sessions.lifetime(), secure);
    match describe(&state, &session).await {
        Ok(body) => json_response(200, vec![("set-cookie", cookie)], &body),
        Err(e) => product_error(Some(&session.grant), &e, &request_id),
    }
}

/// Whether a request's `Origin` (when a browser sends one) is the host it was sent to:
/// `Host`, or behind a proxy that rewrites it, `X-Forwarded-Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else { return true };
    let Some((_, authority)) = origin.split_once("://") else { return false };
    ["host", "x-forwarded-host"]
        .iter()
        .filter_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .any(|host| authority.eq_ignore_ascii_case(host.trim()))
}

/// `GET /ui/session`: the session, its CSRF token included (only the page itself can
/// read the answer: no other origin is allowed to).
pub async fn current(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let request_id = state.request_ids.next();
    let (_, session) = match session_of(&state, &headers, false) {
        Ok(found) => found,
        Err(why) => return signed_out(&state, why),
    };
    match describe(&state, &session).await {
        Ok(body) => json_response(200, vec![], &body),
        Err(e) => product_error(Some(&session.grant), &e, &request_id),
    }
}

/// No session: in the development setup, with the demo credentials to pre-fill (they
/// are public, and a server holding them listens only on loopback).
fn signed_out(state: &AppState, why: Refused) -> Response {
    let config = &state.config;
    let demo =
        config.sls_access_key(DEMO_SLS_ACCESS_KEY_ID).is_some_and(|k| k.secret.matches(DEMO_SLS_ACCESS_KEY_SECRET));
    let mut extra = Map::new();
    if demo {
        extra.insert(
            "demo".into(),
            json!({"kind": "sls", "id": DEMO_SLS_ACCESS_KEY_ID, "secret": DEMO_SLS_ACCESS_KEY_SECRET}),
        );
    }
    ExplorerError::from(why).respond_with(extra)
}

/// `DELETE /ui/session`: signs out.
pub async fn sign_out(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match session_of(&state, &headers, true) {
        Ok((id, _)) => {
            state.sessions.end(&id);
            json_response(200, vec![("set-cookie", session::clear_cookie())], &json!({}))
        }
        Err(why) => refused(why),
    }
}

/// A session as the page sees it: who, the CSRF token, until when, and the logstores.
async fn describe(state: &AppState, session: &Session) -> Result<Value, IngestError> {
    let config = &state.config;
    let mut logstores: BTreeSet<(String, String)> =
        session.grant.configured(config).into_iter().map(|t| (t.project, t.logstore)).collect();
    if config.open {
        let found = super::sls::with_data(&state.storage).await.map_err(IngestError::QueryFailed)?;
        logstores.extend(found.into_iter().filter(|(p, l)| session.grant.sees(config, p, l)));
    }
    let expires = SystemTime::now() + session.expires.saturating_duration_since(Instant::now());
    let expires = expires.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let logstores: Vec<Value> = logstores
        .into_iter()
        .map(|(project, logstore)| {
            let fields = config.logstore(&project, &logstore).map(|l| l.field_types.clone()).unwrap_or_default();
            json!({"project": project, "logstore": logstore, "fieldTypes": fields})
        })
        .collect();
    Ok(json!({
        "signedInAs": session.grant.label(),
        "csrf": session.csrf,
        "expires": expires,
        "logstores": logstores,
    }))
}

/// A call under `/ui/api/` that passed its checks: a session with its CSRF token, a
/// logstore the session may read, and a query that parses.
struct Admitted {
    request_id: String,
    now_ns: i64,
    session: Session,
    target: Target,
    values: Map<String, Value>,
}

/// Checks a call under `/ui/api/`; the answer to give when it fails them.
fn admit(
    state: &AppState,
    (project, logstore): &(String, String),
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Admitted, Box<Response>> {
    let (request_id, now_ns) = (state.request_ids.next(), now_ns());
    let (_, session) = session_of(state, headers, true).map_err(|why| Box::new(refused(why)))?;
    let target = session
        .grant
        .read(&state.config, project, logstore)
        .map_err(|e| Box::new(product_error(Some(&session.grant), &e, &request_id)))?;
    let values = sls_api::query_values(uri.query().unwrap_or(""));
    if let Some(response) = query_error(&values, &request_id) {
        return Err(Box::new(response));
    }
    Ok(Admitted { request_id, now_ns, session, target, values })
}

/// `GET /ui/api/{project}/{logstore}`: GetHistograms, GetLogs or GetContextLogs.
pub async fn read(
    State(state): State<Arc<AppState>>,
    Path(names): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Admitted { request_id, now_ns, session, target, values } = match admit(&state, &names, &uri, &headers) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let Ok(_permit) = state.inflight.try_acquire() else {
        return product_error(None, &IngestError::ServerBusy, &request_id);
    };
    let credential = session.grant.credential();
    let asked = Asked { target: &target, credential: &credential, request_id: &request_id, now_ns };
    match values.get("type").and_then(Value::as_str) {
        Some("histogram") => sls_api::histogram(&state, asked, &values).await,
        // In GetLogs V2's form: the SQL's columns come in order (`meta.keys`).
        Some("log") => sls_api::logs(&state, asked, &values, true).await,
        Some("context_log") => sls_api::context_logs(&state, asked, &values).await,
        other => product_error(
            None,
            &IngestError::InvalidParameter {
                name: "type",
                reason: format!("{:?} is not histogram, log or context_log", other.unwrap_or("")),
            },
            &request_id,
        ),
    }
}

/// A query that does not parse: SLS's `InvalidQueryString`, plus where (`position`, in
/// characters) and why (`reason`), so that the page can point at it.
fn query_error(values: &Map<String, Value>, request_id: &str) -> Option<Response> {
    let text = values.get("query").and_then(Value::as_str)?;
    let e = syntax::parse(text).err()?;
    let refused = sluice_ingest::refuse(Product::Sls, &IngestError::InvalidQueryString(e.to_string()), request_id);
    let mut body: Map<String, Value> = serde_json::from_slice(&refused.body).unwrap_or_default();
    body.insert("position".into(), json!(e.position));
    body.insert("reason".into(), json!(e.message));
    Some(json_response(refused.status, refused.headers, &Value::Object(body)))
}

/// `GET /ui/api/{project}/{logstore}/facets`: the fields of the newest [`FACET_SAMPLE`]
/// logs that match, with their most frequent values.
pub async fn facets(
    State(state): State<Arc<AppState>>,
    Path(names): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Admitted { request_id, now_ns, session, target, values } = match admit(&state, &names, &uri, &headers) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let params = match sls_api::sls_params(&values, false, state.queries.limits.max_query_bytes) {
        Ok(p) => p,
        Err(e) => return product_error(None, &e, &request_id),
    };
    let Ok(_permit) = state.inflight.try_acquire() else {
        return product_error(None, &IngestError::ServerBusy, &request_id);
    };
    let search = Query { search: params.query.search.clone(), sql: None };
    let page = Page { line: FACET_SAMPLE, offset: 0, reverse: true };
    let job = {
        let (state, target, params) = (state.clone(), target.clone(), params.clone());
        move || async move {
            let source = open(&state, params.reading(&target, now_ns)).await?;
            let topic = Some(params.topic.as_str());
            let logs = sls::logs(&source, params.range, topic, &search, &page, &HashMap::new()).await?;
            Ok::<_, QueryError>((logs, scanned(&source, &target, "facets")))
        }
    };
    let done = state.logs.run(params.key("f", &target), &session.grant.credential(), state.query_deadline, job).await;
    if let Some(error) = unfinished(&done) {
        return product_error(None, &error, &request_id);
    }
    let (progress, logs) = match &done {
        Outcome::Done(result) => match result.as_ref() {
            Ok((logs, _)) => ("Complete", logs.clone()),
            Err(e) => return product_error(None, &to_ingest(e), &request_id),
        },
        _ => ("Incomplete", Logs::default()),
    };
    let rows: Vec<Map<String, Value>> =
        logs.batches.iter().flat_map(|b| (0..b.num_rows()).map(move |row| sls_api::sls_log(b, row))).collect();
    let fields = count_facets(rows.iter().map(|row| row.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))));
    json_response(200, vec![("x-log-progress", progress.into())], &json!({"sampled": rows.len(), "fields": fields}))
}

/// Keys that describe where a log sits rather than what it says.
fn is_facet(key: &str) -> bool {
    !matches!(key, "__time__" | "__time_ns_part__" | "__pack_meta__" | "__tag__:__pack_id__")
}

/// Counts each field's values over some logs: fields by how many logs have them, then
/// name; each with its [`FACET_VALUES`] most frequent values (ties by value), and how
/// many distinct values it has. Empty values are not counted at all (an SLS log's
/// `__topic__` is "" when it has none); values longer than [`FACET_VALUE_CHARS`] are
/// counted as present but not as values.
pub fn count_facets<'a, L, F>(logs: L) -> Vec<Value>
where
    L: IntoIterator<Item = F>,
    F: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut fields: HashMap<&str, (usize, HashMap<&str, usize>)> = HashMap::new();
    for log in logs {
        for (key, value) in log {
            if value.is_empty() || !is_facet(key) {
                continue;
            }
            let (present, values) = fields.entry(key).or_default();
            *present += 1;
            if value.chars().count() <= FACET_VALUE_CHARS {
                *values.entry(value).or_default() += 1;
            }
        }
    }
    let mut fields: Vec<(&str, usize, HashMap<&str, usize>)> =
        fields.into_iter().map(|(k, (present, values))| (k, present, values)).collect();
    fields.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    fields
        .into_iter()
        .map(|(name, present, values)| {
            let distinct = values.len();
            let mut top: Vec<(&str, usize)> = values.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            top.truncate(FACET_VALUES);
            let top: Vec<Value> =
                top.into_iter().map(|(value, count)| json!({"value": value, "count": count})).collect();
            json!({"name": name, "present": present, "distinct": distinct, "top": top})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facets_count_values_per_field() {
        let long = "x".repeat(FACET_VALUE_CHARS + 1);
        let logs: Vec<Vec<(&str, &str)>> = vec![
            vec![("level", "error"), ("user", "b"), ("__time__", "1"), ("message", &long)],
            vec![("level", "info"), ("user", "a"), ("__topic__", "")],
            vec![("level", "error")],
        ];
        let fields = count_facets(logs.iter().map(|l| l.iter().copied()));
        assert_eq!(
            Value::Array(fields),
            json!([
                {"name": "level", "present": 3, "distinct": 2,
                 "top": [{"value": "error", "count": 2}, {"value": "info", "count": 1}]},
                {"name": "user", "present": 2, "distinct": 2,
                 "top": [{"value": "a", "count": 1}, {"value": "b", "count": 1}]},
                {"name": "message", "present": 1, "distinct": 0, "top": []},
            ])
        );
    }

    #[test]
    fn assets_gzip_to_themselves() {
        use std::io::Read;
        for asset in [APP_JS, APP_CSS] {
            let packed = gzip(asset);
            assert!(packed.len() < asset.len() / 2, "{} of {}", packed.len(), asset.len());
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut unpacked).unwrap();
            assert!(unpacked == asset);
        }
    }

    #[test]
    fn sign_in_from_another_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert("origin", "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert("origin", "https://evil.example".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert("origin", "null".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert("origin", "https://logs.example.com".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert("x-forwarded-host", "logs.example.com".parse().unwrap());
        assert!(same_origin(&headers), "behind a proxy");
    }
}
