//! A realistic log generator, deterministic by seed, for tests and benchmarks.
//!
//! Two kinds of logs:
//! - **nginx access logs**: client address, method, path, status, sizes, latency, user
//!   agent, with the skew real traffic has (a few hot paths, mostly 200s);
//! - **application logs**: templated messages with their variables as attributes,
//!   weighted levels, trace ids shared by the few logs of one request, span ids, users,
//!   accounts, logger names and source locations.
//!
//! Each can be rendered as an SLS `LogGroup` (and its lz4 PutLogs body), an LTS body or
//! a Proliferate batch. The same seed always gives the same logs.

use serde_json::{Value, json};
use sluice_proto::sls::{Content, Log, LogGroup, LogTag};

/// SplitMix64: small, fast, and good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Picks by weight.
    pub fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.below(u64::from(total)) as u32;
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        &items[items.len() - 1].0
    }

    /// Zipf-like: small indexes far more often than large ones.
    pub fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) - 1.0).floor() as usize % n
    }

    pub fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(digits);
        s
    }
}

/// One generated log line, format-neutral.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub time_ns: i64,
    pub level: &'static str,
    pub message: String,
    pub template: &'static str,
    pub trace_id: String,
    pub span_id: String,
    pub user_id: String,
    pub user_email: String,
    pub account_id: String,
    pub account_name: String,
    pub logger_name: &'static str,
    pub file_path: &'static str,
    pub line_number: u32,
    pub function_name: &'static str,
    /// Key/value pairs: every field of an access log; an app log's template variables.
    pub attributes: Vec<(&'static str, Value)>,
}

/// Which kind of logs to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    App,
}

const PATHS: [&str; 12] = [
    "/",
    "/api/v1/products",
    "/api/v1/cart",
    "/api/v1/orders",
    "/static/app.js",
    "/static/app.css",
    "/api/v1/users/me",
    "/login",
    "/api/v1/search",
    "/healthz",
    "/api/v1/payments",
    "/favicon.ico",
];
const METHODS: [(&str, u32); 5] = [("GET", 80), ("POST", 14), ("PUT", 3), ("DELETE", 2), ("PATCH", 1)];
const STATUSES: [(u16, u32); 9] =
    [(200, 820), (201, 30), (204, 20), (301, 15), (304, 40), (400, 20), (401, 15), (404, 40), (500, 8)];
const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
];
const HOSTS: [&str; 3] = ["shop.example.com", "api.example.com", "static.example.com"];
const LEVELS: [(&str, u32); 6] = [("trace", 2), ("debug", 15), ("info", 70), ("warn", 8), ("error", 5), ("fatal", 0)];
const ERRORS: [&str; 5] =
    ["timeout after 5000ms", "connection refused", "deadlock detected", "too many connections", "ssl handshake failed"];

struct Template {
    text: &'static str,
    level: Option<&'static str>,
    logger: &'static str,
    file: &'static str,
    function: &'static str,
    line: u32,
}

const TEMPLATES: [Template; 10] = [
    Template {
        text: "User {user_id} logged in successfully",
        level: None,
        logger: "auth.service",
        file: "src/auth/login.py",
        function: "handle_login",
        line: 42,
    },
    Template {
        text: "Processing order {order_id} for {amount} {currency}",
        level: None,
        logger: "orders.worker",
        file: "src/orders/process.py",
        function: "process_order",
        line: 118,
    },
    Template {
        text: "Cache miss for key {cache_key}",
        level: Some("debug"),
        logger: "cache.redis",
        file: "src/cache/client.py",
        function: "get",
        line: 77,
    },
    Template {
        text: "Database connection failed: {error}",
        level: Some("error"),
        logger: "db.pool",
        file: "src/db/pool.py",
        function: "connect",
        line: 203,
    },
    Template {
        text: "Request {method} {path} took {duration_ms}ms",
        level: None,
        logger: "http.access",
        file: "src/http/middleware.py",
        function: "log_request",
        line: 31,
    },
    Template {
        text: "Payment {payment_id} declined: {reason}",
        level: Some("warn"),
        logger: "payments.gateway",
        file: "src/payments/gateway.py",
        function: "charge",
        line: 266,
    },
    Template {
        text: "Sent {count} emails in batch {batch_id}",
        level: None,
        logger: "mail.sender",
        file: "src/mail/sender.py",
        function: "send_batch",
        line: 58,
    },
    Template {
        text: "Retrying {operation} (attempt {retry_count})",
        level: Some("warn"),
        logger: "jobs.retry",
        file: "src/jobs/retry.py",
        function: "retry",
        line: 12,
    },
    Template {
        text: "Slow query on {table}: {duration_ms}ms",
        level: Some("warn"),
        logger: "db.query",
        file: "src/db/query.py",
        function: "execute",
        line: 149,
    },
    Template {
        text: "Feature flag {flag} evaluated to {enabled}",
        level: Some("trace"),
        logger: "flags.client",
        file: "src/flags/client.py",
        function: "evaluate",
        line: 88,
    },
];

/// Makes logs. Time starts at `start_ns` and moves forward by about `step_ns` per log,
/// with some jitter and a few late arrivals.
#[derive(Clone, Debug)]
pub struct Generator {
    rng: Rng,
    time_ns: i64,
    step_ns: i64,
    trace: (String, u32),
    users: Vec<(String, String, String, String)>,
}

impl Generator {
    pub fn new(seed: u64, start_ns: i64, step_ns: i64) -> Self {
        let mut rng = Rng::new(seed);
        let users = (0..200)
            .map(|i| {
                let account = i / 10;
                (
                    format!("user_{:05}", i * 7919 % 100_000),
                    format!("user{i}@example.com"),
                    format!("acct_{account:04}"),
                    format!("Account {account}"),
                )
            })
            .collect();
        let trace = (rng.hex(32), 0);
        Self { rng, time_ns: start_ns, step_ns: step_ns.max(1), trace, users }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    fn tick(&mut self) -> i64 {
        self.time_ns += self.rng.below(2 * self.step_ns as u64) as i64;
        if self.rng.chance(0.02) {
            // A late log, up to a minute behind.
            self.time_ns - self.rng.below(60_000_000_000) as i64
        } else {
            self.time_ns
        }
    }

    fn ip(&mut self) -> String {
        let n = self.rng.skewed(5000) as u32;
        format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255)
    }

    /// One log of the given kind.
    pub fn line(&mut self, kind: Kind) -> Line {
        match kind {
            Kind::Nginx => self.nginx(),
            Kind::App => self.app(),
        }
    }

    /// `count` logs of the given kind.
    pub fn lines(&mut self, kind: Kind, count: usize) -> Vec<Line> {
        (0..count).map(|_| self.line(kind)).collect()
    }

    fn nginx(&mut self) -> Line {
        let time_ns = self.tick();
        let method = *self.rng.weighted(&METHODS);
        let mut path = PATHS[self.rng.skewed(PATHS.len())].to_owned();
        if path.ends_with("products") && self.rng.chance(0.5) {
            path.push_str(&format!("/{}", self.rng.below(10_000)));
        }
        let status = *self.rng.weighted(&STATUSES);
        let bytes = if status == 204 || status == 304 { 0 } else { 200 + self.rng.below(50_000) };
        let request_time = (self.rng.below(2000) as f64 + 1.0) / 1000.0;
        let remote = self.ip();
        let agent = *self.rng.pick(&AGENTS);
        let host = *self.rng.pick(&HOSTS);
        let request_id = self.rng.hex(32);
        let message = format!("{remote} - - \"{method} {path} HTTP/1.1\" {status} {bytes} \"-\" \"{agent}\"");
        Line {
            time_ns,
            level: if status >= 500 {
                "error"
            } else if status >= 400 {
                "warn"
            } else {
                "info"
            },
            message,
            template: "",
            trace_id: String::new(),
            span_id: String::new(),
            user_id: String::new(),
            user_email: String::new(),
            account_id: String::new(),
            account_name: String::new(),
            logger_name: "nginx",
            file_path: "",
            line_number: 0,
            function_name: "",
            attributes: vec![
                ("remote_addr", json!(remote)),
                ("host", json!(host)),
                ("method", json!(method)),
                ("request_uri", json!(path)),
                ("status", json!(status)),
                ("body_bytes_sent", json!(bytes)),
                ("request_time", json!(request_time)),
                ("http_referer", json!("-")),
                ("http_user_agent", json!(agent)),
                ("request_id", json!(request_id)),
            ],
        }
    }

    fn app(&mut self) -> Line {
        let time_ns = self.tick();
        if self.trace.1 == 0 {
            self.trace = (self.rng.hex(32), 2 + self.rng.below(8) as u32);
        }
        self.trace.1 -= 1;
        let t = &TEMPLATES[self.rng.skewed(TEMPLATES.len())];
        let level = t.level.unwrap_or_else(|| *self.rng.weighted(&LEVELS));
        let (user_id, user_email, account_id, account_name) = self.users[self.rng.skewed(self.users.len())].clone();
        let mut attributes: Vec<(&'static str, Value)> = Vec::new();
        let mut message = String::with_capacity(t.text.len() + 32);
        let mut rest = t.text;
        while let Some(open) = rest.find('{') {
            message.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').unwrap_or(0);
            let name: &'static str = &rest[open + 1..close];
            let value = self.variable(name, &user_id);
            match &value {
                Value::String(s) => message.push_str(s),
                other => message.push_str(&other.to_string()),
            }
            attributes.push((name, value));
            rest = &rest[close + 1..];
        }
        message.push_str(rest);
        Line {
            time_ns,
            level,
            message,
            template: t.text,
            trace_id: self.trace.0.clone(),
            span_id: self.rng.hex(16),
            user_id,
            user_email,
            account_id,
            account_name,
            logger_name: t.logger,
            file_path: t.file,
            line_number: t.line,
            function_name: t.function,
            attributes,
        }
    }

    fn variable(&mut self, name: &str, user_id: &str) -> Value {
        match name {
            "user_id" => json!(user_id),
            "order_id" => json!(format!("ord_{}", self.rng.hex(10))),
            "amount" => json!((self.rng.below(100_000) as f64) / 100.0),
            "currency" => json!(*self.rng.pick(&["USD", "EUR", "CNY", "JPY"])),
            "cache_key" => json!(format!("product:{}", self.rng.below(10_000))),
            "error" => json!(*self.rng.pick(&ERRORS)),
            "method" => json!(*self.rng.weighted(&METHODS)),
            "path" => json!(PATHS[self.rng.skewed(PATHS.len())]),
            "duration_ms" => json!(self.rng.skewed(5000) + 1),
            "payment_id" => json!(format!("pay_{}", self.rng.hex(12))),
            "reason" => json!(*self.rng.pick(&["insufficient_funds", "card_expired", "fraud_suspected"])),
            "count" => json!(self.rng.below(500)),
            "batch_id" => json!(self.rng.hex(8)),
            "operation" => json!(*self.rng.pick(&["sync_inventory", "send_webhook", "refresh_token"])),
            "retry_count" => json!(1 + self.rng.below(5)),
            "table" => json!(*self.rng.pick(&["orders", "users", "products", "payments"])),
            "flag" => json!(*self.rng.pick(&["new_checkout", "dark_mode", "fast_search"])),
            "enabled" => json!(self.rng.chance(0.5)),
            _ => json!(self.rng.hex(8)),
        }
    }

    /// An SLS `LogGroup` of `count` logs.
    pub fn log_group(&mut self, kind: Kind, count: usize) -> LogGroup {
        let lines = self.lines(kind, count);
        let source = self.ip();
        log_group(&lines, kind, &source)
    }

    /// An SLS `LogGroup` whose protobuf encoding is about `bytes` long.
    pub fn log_group_of_size(&mut self, kind: Kind, bytes: usize) -> LogGroup {
        let source = self.ip();
        let mut group = log_group(&[], kind, &source);
        let mut size = 0;
        while size < bytes {
            let line = self.line(kind);
            let log = sls_log(&line, kind);
            size += prost::Message::encoded_len(&log) + 3;
            group.logs.push(log);
        }
        group
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A line as an SLS log: every attribute as a content; app logs also carry their level,
/// message, trace and source location as contents.
pub fn sls_log(line: &Line, kind: Kind) -> Log {
    let mut contents: Vec<Content> = Vec::with_capacity(line.attributes.len() + 8);
    let mut push = |k: &str, v: String| contents.push(Content { key: k.to_owned(), value: v.into_bytes() });
    if kind == Kind::App {
        push("level", line.level.to_owned());
        push("message", line.message.clone());
        push("trace_id", line.trace_id.clone());
        push("span_id", line.span_id.clone());
        push("user_id", line.user_id.clone());
        push("logger", line.logger_name.to_owned());
        push("file", format!("{}:{}", line.file_path, line.line_number));
    }
    for (k, v) in &line.attributes {
        push(k, text(v));
    }
    Log {
        time: (line.time_ns / 1_000_000_000) as u32,
        contents,
        time_ns: Some((line.time_ns % 1_000_000_000) as u32),
        values: vec![],
    }
}

/// Lines as one SLS `LogGroup`, with a topic, source and tags.
pub fn log_group(lines: &[Line], kind: Kind, source: &str) -> LogGroup {
    LogGroup {
        logs: lines.iter().map(|l| sls_log(l, kind)).collect(),
        topic: Some(match kind {
            Kind::Nginx => "nginx".to_owned(),
            Kind::App => "app".to_owned(),
        }),
        source: Some(source.to_owned()),
        log_tags: vec![
            LogTag { key: "__hostname__".into(), value: "web-01".into() },
            LogTag { key: "env".into(), value: "production".into() },
        ],
        ..Default::default()
    }
}

/// The raw protobuf bytes and lz4 block of a PutLogs body.
pub fn putlogs_body(group: &LogGroup) -> (Vec<u8>, Vec<u8>) {
    let raw = prost::Message::encode_to_vec(group);
    let compressed = lz4_flex::block::compress(&raw);
    (raw, compressed)
}

/// Lines as an LTS `tenant/contents` body (one base time, `+ i` per log) or a
/// `high-accuracy` body (a time per log).
pub fn lts_body(lines: &[Line], high_accuracy: bool) -> String {
    let labels = json!({"service": "shop", "cluster": "prod-1"});
    let body = if high_accuracy {
        json!({
            "contents": lines.iter().map(|l| json!({"log_time_ns": l.time_ns.to_string(), "log": l.message})).collect::<Vec<_>>(),
            "labels": labels,
        })
    } else {
        json!({
            "log_time_ns": lines.first().map_or(0, |l| l.time_ns),
            "contents": lines.iter().map(|l| l.message.clone()).collect::<Vec<_>>(),
            "labels": labels,
        })
    };
    body.to_string()
}

/// Lines as a Proliferate batch.
pub fn proliferate_batch(lines: &[Line], api_key: &str) -> String {
    let logs: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut entry = json!({
                "timestamp": format!("{}.{:09}", l.time_ns / 1_000_000_000, l.time_ns % 1_000_000_000).parse::<f64>().unwrap_or(0.0),
                "level": l.level,
                "message": l.message,
                "attributes": l.attributes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<serde_json::Map<_, _>>(),
                "logger_name": l.logger_name,
            });
            let obj = entry.as_object_mut().expect("an object");
            if !l.template.is_empty() {
                obj.insert("template".into(), json!(l.template));
                obj.insert("trace_id".into(), json!(l.trace_id));
                obj.insert("span_id".into(), json!(l.span_id));
                obj.insert("user".into(), json!({"id": l.user_id, "email": l.user_email}));
                obj.insert("account".into(), json!({"id": l.account_id, "name": l.account_name}));
                obj.insert("file_path".into(), json!(l.file_path));
                obj.insert("line_number".into(), json!(l.line_number));
                obj.insert("function_name".into(), json!(l.function_name));
            }
            entry
        })
        .collect();
    json!({"api_key": api_key, "environment": "production", "release": "v1.2.3", "logs": logs}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic() {
        let a = Generator::new(7, 1_700_000_000_000_000_000, 1_000_000).lines(Kind::App, 50);
        let b = Generator::new(7, 1_700_000_000_000_000_000, 1_000_000).lines(Kind::App, 50);
        let c = Generator::new(8, 1_700_000_000_000_000_000, 1_000_000).lines(Kind::App, 50);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn renders_every_format() {
        let mut generator = Generator::new(1, 1_700_000_000_000_000_000, 1_000_000);
        let group = generator.log_group_of_size(Kind::Nginx, 100_000);
        let (raw, lz4) = putlogs_body(&group);
        assert!(raw.len() >= 100_000 && raw.len() < 110_000, "{}", raw.len());
        assert!(lz4.len() < raw.len() / 2);
        let lines = generator.lines(Kind::App, 10);
        assert!(lines.iter().all(|l| !l.trace_id.is_empty() && l.message.len() > 10 && !l.message.contains('{')));
        let _: Value = serde_json::from_str(&lts_body(&lines, true)).unwrap();
        let batch: Value = serde_json::from_str(&proliferate_batch(&lines, "pk")).unwrap();
        assert_eq!(batch["logs"].as_array().unwrap().len(), 10);
    }
}
