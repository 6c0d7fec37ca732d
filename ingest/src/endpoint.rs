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

/// What a request no handler of an edge serves is: an API of its product (by the
/// product's own name) that this edge does not serve, a path of an API asked with another
/// method, or a path of no API at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unserved {
    Api(&'static str),
    WrongMethod,
    Unknown,
}

/// Names the API of a method, path and query (its `type` or `action` parameter), among the
/// APIs of the product the path belongs to.
pub fn unserved(method: &str, path: &str, query: &str) -> Unserved {
    let Some(rest) = path.strip_prefix('/') else { return Unserved::Unknown };
    let segments: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
    if segments.iter().any(|s| s.is_empty()) {
        return Unserved::Unknown;
    }
    let param =
        |name: &str| form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    // Each path's APIs: (method, the `type` or `action` it needs, if any, name).
    let apis: &[(&str, Option<&str>, &'static str)] = match segments.as_slice() {
        [] => &[("GET", None, "GetProject"), ("PUT", None, "UpdateProject"), ("DELETE", None, "DeleteProject")],
        ["logstores"] => &[("GET", None, "ListLogStores"), ("POST", None, "CreateLogStore")],
        ["logstores", _] => &[
            ("GET", Some("histogram"), "GetHistograms"),
            ("GET", Some("log"), "GetLogs"),
            ("GET", Some("context_log"), "GetContextLogs"),
            ("GET", Some("topic"), "ListTopics"),
            ("GET", None, "GetLogStore"),
            ("POST", None, "PutLogs"),
            ("PUT", None, "UpdateLogStore"),
            ("DELETE", None, "DeleteLogStore"),
        ],
        ["logstores", _, "logs"] => &[("POST", None, "GetLogsV2")],
        ["logstores", _, "index"] => &[
            ("GET", Some("histogram"), "GetHistograms"),
            ("GET", Some("log"), "GetLogs"),
            ("GET", None, "GetIndex"),
            ("POST", None, "CreateIndex"),
            ("PUT", None, "UpdateIndex"),
            ("DELETE", None, "DeleteIndex"),
        ],
        ["logstores", _, "shards"] => &[("GET", None, "ListShards")],
        ["logstores", _, "shards", "lb" | "route"] => &[("POST", None, "PutLogs")],
        ["logstores", _, "shards", _] => &[
            ("GET", Some("cursor"), "GetCursor"),
            ("GET", Some("cursor_time"), "GetCursorTime"),
            ("GET", Some("logs"), "PullLogs"),
            ("POST", Some("split"), "SplitShard"),
            ("POST", Some("merge"), "MergeShards"),
        ],
        ["logstores", _, "consumergroups", ..] => &[
            ("GET", None, "ListConsumerGroup"),
            ("POST", None, "CreateConsumerGroup"),
            ("PUT", None, "UpdateConsumerGroup"),
            ("DELETE", None, "DeleteConsumerGroup"),
        ],
        ["logs"] => &[("GET", None, "GetProjectLogs")],
        ["configs", ..] => &[
            ("GET", None, "ListConfig"),
            ("POST", None, "CreateConfig"),
            ("PUT", None, "UpdateConfig"),
            ("DELETE", None, "DeleteConfig"),
        ],
        ["machinegroups", ..] => &[
            ("GET", None, "ListMachineGroup"),
            ("POST", None, "CreateMachineGroup"),
            ("PUT", None, "UpdateMachineGroup"),
            ("DELETE", None, "DeleteMachineGroup"),
        ],
        ["dashboards", ..] => &[
            ("GET", None, "ListDashboard"),
            ("POST", None, "CreateDashboard"),
            ("PUT", None, "UpdateDashboard"),
            ("DELETE", None, "DeleteDashboard"),
        ],
        ["savedsearches", ..] => &[
            ("GET", None, "ListSavedSearch"),
            ("POST", None, "CreateSavedSearch"),
            ("PUT", None, "UpdateSavedSearch"),
            ("DELETE", None, "DeleteSavedSearch"),
        ],
        ["v2", _, "lts", "groups", _, "streams", _, "tenant", "contents", ..] => &[("POST", None, "ReportLogs")],
        ["api", "v1", "logs", "batch"] => &[("POST", None, "IngestLogBatch")],
        ["api", "v1", "projects", _, "logs"] => &[("GET", None, "SearchProjectLogs")],
        ["api", "v1", "events", _, "logs"] => &[("GET", None, "GetEventLogs")],
        _ => &[],
    };
    if apis.is_empty() {
        return Unserved::Unknown;
    }
    if !apis.iter().any(|(m, _, _)| *m == method) {
        return Unserved::WrongMethod;
    }
    // An API without a `type` is asked without one; an unknown `type` names no API.
    let kind = param("type").or_else(|| param("action"));
    apis.iter()
        .filter(|(m, _, _)| *m == method)
        .find(|(_, needs, _)| *needs == kind.as_deref())
        .map_or(Unserved::Unknown, |(_, _, name)| Unserved::Api(name))
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
    fn names_the_apis_no_handler_serves() {
        assert_eq!(unserved("GET", "/logstores/app", "type=topic&line=10"), Unserved::Api("ListTopics"));
        assert_eq!(unserved("GET", "/logstores/app", ""), Unserved::Api("GetLogStore"));
        assert_eq!(unserved("GET", "/logstores/app/index", "type=log"), Unserved::Api("GetLogs"));
        assert_eq!(unserved("GET", "/logstores/app/shards/0", "type=cursor&from=begin"), Unserved::Api("GetCursor"));
        assert_eq!(unserved("POST", "/logstores/app/shards/0", "action=split"), Unserved::Api("SplitShard"));
        assert_eq!(unserved("DELETE", "/configs/nginx", ""), Unserved::Api("DeleteConfig"));
        assert_eq!(unserved("GET", "/", ""), Unserved::Api("GetProject"));
        assert_eq!(unserved("PATCH", "/logstores/app", ""), Unserved::WrongMethod);
        assert_eq!(unserved("GET", "/v2/p/lts/groups/g/streams/s/tenant/contents", ""), Unserved::WrongMethod);
        assert_eq!(unserved("GET", "/api/v1/logs/batch", ""), Unserved::WrongMethod);
        assert_eq!(unserved("GET", "/api/v1/projects/p/logs", ""), Unserved::Api("SearchProjectLogs"));
        assert_eq!(unserved("GET", "/nothing/here", ""), Unserved::Unknown);
        assert_eq!(unserved("GET", "/logstores/app", "type=nonsense"), Unserved::Unknown);
        assert_eq!(unserved("GET", "/logstores//x", ""), Unserved::Unknown);
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
