//! Which ingest API a request is for.

/// An ingest endpoint, with the names its path carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// SLS PutLogs: `POST /logstores/{logstore}`, `.../shards/lb` or `.../shards/route?key=`.
    /// The project comes from the `Host` header.
    SlsPutLogs { logstore: &'a str },
    /// LTS `POST /v2/{project_id}/lts/groups/{group}/streams/{stream}/tenant/contents`,
    /// and its `/high-accuracy` variant.
    LtsContents { project_id: &'a str, group_id: &'a str, stream_id: &'a str, high_accuracy: bool },
    /// Proliferate `POST /api/v1/logs/batch`.
    ProliferateBatch,
}

impl<'a> Endpoint<'a> {
    /// The ingest endpoint for a method and path, or `None` when it is not an ingest API.
    pub fn recognize(method: &str, path: &'a str) -> Option<Self> {
        if method != "POST" {
            return None;
        }
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        match segments.as_slice() {
            ["logstores", logstore] | ["logstores", logstore, "shards", "lb" | "route"] if !logstore.is_empty() => {
                Some(Self::SlsPutLogs { logstore })
            }
            ["v2", project_id, "lts", "groups", group_id, "streams", stream_id, "tenant", "contents", rest @ ..]
                if !project_id.is_empty() && !group_id.is_empty() && !stream_id.is_empty() =>
            {
                let high_accuracy = match rest {
                    [] => false,
                    ["high-accuracy"] => true,
                    _ => return None,
                };
                Some(Self::LtsContents { project_id, group_id, stream_id, high_accuracy })
            }
            ["api", "v1", "logs", "batch"] => Some(Self::ProliferateBatch),
            _ => None,
        }
    }

    /// The product whose conventions answer this endpoint.
    pub fn product(&self) -> sluice_proto::batch::Product {
        use sluice_proto::batch::Product;
        match self {
            Self::SlsPutLogs { .. } => Product::Sls,
            Self::LtsContents { .. } => Product::Lts,
            Self::ProliferateBatch => Product::Proliferate,
        }
    }
}

/// The product whose conventions answer a path, even one no API serves: LTS under
/// `/v2/`, Proliferate under `/api/`, SLS otherwise (its clients parse JSON errors).
pub fn product_of_path(path: &str) -> sluice_proto::batch::Product {
    use sluice_proto::batch::Product;
    if path.starts_with("/v2/") {
        Product::Lts
    } else if path.starts_with("/api/") {
        Product::Proliferate
    } else {
        Product::Sls
    }
}

/// The SLS project a request addresses: the first label of `Host`
/// (`myproject.cn-hangzhou.log.aliyuncs.com`, or `myproject.127.0.0.1` from the SDKs).
pub fn sls_project_from_host(host: &str) -> Option<&str> {
    let host = host.trim();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_every_ingest_path() {
        assert_eq!(Endpoint::recognize("POST", "/logstores/app"), Some(Endpoint::SlsPutLogs { logstore: "app" }));
        assert_eq!(
            Endpoint::recognize("POST", "/logstores/app/shards/lb"),
            Some(Endpoint::SlsPutLogs { logstore: "app" })
        );
        assert_eq!(
            Endpoint::recognize("POST", "/logstores/app/shards/route"),
            Some(Endpoint::SlsPutLogs { logstore: "app" })
        );
        assert_eq!(
            Endpoint::recognize("POST", "/v2/p1/lts/groups/g1/streams/s1/tenant/contents"),
            Some(Endpoint::LtsContents { project_id: "p1", group_id: "g1", stream_id: "s1", high_accuracy: false })
        );
        assert_eq!(
            Endpoint::recognize("POST", "/v2/p1/lts/groups/g1/streams/s1/tenant/contents/high-accuracy"),
            Some(Endpoint::LtsContents { project_id: "p1", group_id: "g1", stream_id: "s1", high_accuracy: true })
        );
        assert_eq!(Endpoint::recognize("POST", "/api/v1/logs/batch"), Some(Endpoint::ProliferateBatch));
    }

    #[test]
    fn ignores_everything_else() {
        assert_eq!(Endpoint::recognize("GET", "/logstores/app"), None);
        assert_eq!(Endpoint::recognize("POST", "/logstores/"), None);
        assert_eq!(Endpoint::recognize("POST", "/logstores/app/logs"), None);
        assert_eq!(Endpoint::recognize("POST", "/logstores/app/shards/3"), None);
        assert_eq!(Endpoint::recognize("POST", "/v2/p1/lts/groups/g1/streams/s1/tenant/contents/x"), None);
        assert_eq!(Endpoint::recognize("POST", "/api/v1/logs"), None);
        assert_eq!(Endpoint::recognize("POST", "relative"), None);
    }

    #[test]
    fn project_is_the_first_host_label() {
        assert_eq!(sls_project_from_host("myproject.127.0.0.1"), Some("myproject"));
        assert_eq!(sls_project_from_host("myproject.cn-hangzhou.log.aliyuncs.com"), Some("myproject"));
        assert_eq!(sls_project_from_host("localhost"), None);
        assert_eq!(sls_project_from_host(".localhost"), None);
        assert_eq!(sls_project_from_host("127.0.0.1"), None);
        assert_eq!(sls_project_from_host("127.0.0.1:8080"), None);
        assert_eq!(sls_project_from_host("demo.localhost:8080"), Some("demo"));
    }
}
