//! A request as the edges hand it to the core: method, path, query, headers, body.

/// Request headers with lowercase names, in arrival order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header; the name is lowercased, the value kept as sent.
    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        self.entries.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Replaces every value of a header with one.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.insert(name, value);
    }

    /// Removes every value of a header.
    pub fn remove(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.entries.retain(|(n, _)| *n != name);
    }

    /// The first value of a header, by lowercase name.
    pub fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All headers, lowercase names.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl<N: AsRef<str>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.insert(name.as_ref(), value);
        }
        headers
    }
}

/// One HTTP request, borrowed from the edge that received it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent, without the query.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a Headers,
    pub body: &'a [u8],
}

impl Request<'_> {
    /// Decoded query parameters (`+` is a space), in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes()).into_owned().collect()
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// What the core needs from the outside world for one request: the time and an id.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The edge's clock, nanoseconds since the epoch.
    pub now_ns: i64,
    /// A unique id the edge chose for this request (SLS answers it in `x-log-requestid`).
    pub request_id: &'a str,
}
