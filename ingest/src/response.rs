//! Each product's answers: success bodies and the status, code and body of every error.
//! Both edges send exactly these bytes.

use sluice_proto::batch::Product;

use crate::error::{ErrorCode, IngestError};

/// An HTTP response, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: serde_json::to_vec(&body).expect("json values serialize"),
        }
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// A header's value, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// SLS's HTTP status and error code.
pub fn sls_status(code: ErrorCode) -> (u16, &'static str) {
    use ErrorCode as C;
    match code {
        C::MissingContentLength => (411, "MissingContentLength"),
        C::InvalidContentType => (415, "InvalidContentType"),
        C::MissingBodyRawSize => (400, "MissingBodyRawSize"),
        C::InvalidBodyRawSize => (400, "InvalidBodyRawSize"),
        C::InvalidCompressType => (400, "InvalidCompressType"),
        C::MissingDate => (400, "MissingDate"),
        C::InvalidDateFormat => (400, "InvalidDateFormat"),
        C::MissingApiVersion => (400, "MissingAPIVersion"),
        C::InvalidApiVersion => (400, "InvalidAPIVersion"),
        C::InvalidSignatureMethod => (400, "InvalidSignatureMethod"),
        C::PostBodyInvalid | C::TooManyLogs => (400, "PostBodyInvalid"),
        C::PostBodyTooLarge => (400, "PostBodyTooLarge"),
        C::PostBodyUncompressError => (400, "PostBodyUncompressError"),
        C::InvalidTimestamp => (400, "InvalidTimestamp"),
        C::InvalidEncoding => (400, "InvalidEncoding"),
        C::InvalidKey => (400, "InvalidKey"),
        C::RequestTimeExpired => (400, "RequestTimeExpired"),
        C::Unauthorized => (401, "Unauthorized"),
        C::SignatureNotMatch => (401, "SignatureNotMatch"),
        C::MissAccessKeyId => (401, "MissAccessKeyId"),
        C::WriteQuotaExceed => (403, "WriteQuotaExceed"),
        C::ProjectNotExist => (404, "ProjectNotExist"),
        C::LogStoreNotExist => (404, "LogStoreNotExist"),
        C::InternalServerError | C::QueryFailed | C::Misconfigured => (500, "InternalServerError"),
        C::ServerBusy => (503, "ServerBusy"),
        C::InvalidTimeRange => (400, "InvalidTimeRange"),
        C::InvalidQueryString => (400, "InvalidQueryString"),
        C::InvalidParameter => (400, "ParameterInvalid"),
        C::Forbidden => (403, "Unauthorized"),
        C::NotFound => (404, "NotFound"),
        C::RequestTimeout => (408, "RequestTimeout"),
        C::ExceedQuota => (403, "ExceedQuota"),
        // Not 501: the SDKs retry every 5xx, and asking again will not help.
        C::NotImplemented => (400, "NotImplemented"),
        C::InvalidMethod => (405, "InvalidMethod"),
    }
}

/// LTS's HTTP status and error code.
pub fn lts_status(code: ErrorCode) -> (u16, &'static str) {
    use ErrorCode as C;
    match code {
        C::Unauthorized | C::SignatureNotMatch | C::MissAccessKeyId | C::ProjectNotExist => (401, "SVCSTG.ALS.403.105"),
        C::WriteQuotaExceed => (400, "SVCSTG.ALS.200.210"),
        C::LogStoreNotExist | C::NotFound => (404, "LTS.0201"),
        C::InternalServerError | C::QueryFailed | C::Misconfigured => (500, "LTS.0010"),
        C::ServerBusy => (503, "LTS.0010"),
        C::RequestTimeout => (408, "SVCSTG.ALS.200.201"),
        C::InvalidMethod => (405, "SVCSTG.ALS.200.201"),
        _ => (400, "SVCSTG.ALS.200.201"),
    }
}

/// Proliferate's HTTP status.
pub fn proliferate_status(code: ErrorCode) -> u16 {
    use ErrorCode as C;
    match code {
        C::Unauthorized | C::SignatureNotMatch | C::MissAccessKeyId => 401,
        C::ProjectNotExist | C::LogStoreNotExist | C::NotFound | C::NotImplemented => 404,
        C::InvalidMethod => 405,
        C::Forbidden => 403,
        C::PostBodyTooLarge => 413,
        C::InvalidCompressType | C::InvalidContentType => 415,
        C::MissingContentLength => 411,
        C::WriteQuotaExceed | C::ExceedQuota => 429,
        C::RequestTimeout => 408,
        C::InternalServerError | C::ServerBusy | C::Misconfigured => 503,
        C::QueryFailed => 500,
        _ => 422,
    }
}

/// The error response of a product.
pub fn error(product: Product, err: &IngestError, request_id: &str) -> Response {
    let code = err.code();
    let message = err.to_string();
    match product {
        Product::Sls | Product::Unspecified => {
            let (status, code) = sls_status(code);
            Response::json(status, serde_json::json!({"errorCode": code, "errorMessage": message}))
                .with_header("x-log-requestid", request_id)
        }
        Product::Lts => {
            let (status, code) = lts_status(code);
            Response::json(status, serde_json::json!({"errorCode": code, "errorMessage": message, "result": null}))
                .with_header("x-request-id", request_id)
        }
        Product::Proliferate => {
            let status = proliferate_status(code);
            let detail = match status {
                401 => serde_json::json!("Invalid API key"),
                405 => serde_json::json!("Method Not Allowed"),
                503 if code == ErrorCode::InternalServerError => {
                    serde_json::json!("Log storage temporarily unavailable")
                }
                422 => serde_json::json!([{"type": "value_error", "loc": ["body"], "msg": message}]),
                _ => serde_json::json!(message),
            };
            Response::json(status, serde_json::json!({"detail": detail})).with_header("x-request-id", request_id)
        }
    }
}

/// SLS PutLogs success: 200, empty body.
pub fn sls_ok(request_id: &str) -> Response {
    Response { status: 200, headers: vec![("x-log-requestid", request_id.to_owned())], body: Vec::new() }
}

/// LTS reporting success.
pub fn lts_ok() -> Response {
    Response::json(
        200,
        serde_json::json!({"errorCode": "SVCSTG.ALS.200.200", "errorMessage": "Report success.", "result": null}),
    )
}

/// Proliferate batch success: `202 {"accepted": n, "dropped": m}`.
pub fn proliferate_accepted(accepted: usize, dropped: usize) -> Response {
    Response::json(202, serde_json::json!({"accepted": accepted, "dropped": dropped}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sls_errors_carry_code_message_and_request_id() {
        let r = error(Product::Sls, &IngestError::LogStoreNotExist("app".into()), "RID");
        assert_eq!(r.status, 404);
        assert_eq!(r.header("x-log-requestid"), Some("RID"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["errorCode"], "LogStoreNotExist");
        assert_eq!(body["errorMessage"], "logstore \"app\" does not exist");
    }

    #[test]
    fn proliferate_answers_as_documented() {
        let r = error(Product::Proliferate, &IngestError::InvalidApiKey, "x");
        assert_eq!((r.status, &r.body[..]), (401, &br#"{"detail":"Invalid API key"}"#[..]));
        let r = error(Product::Proliferate, &IngestError::StorageUnavailable, "x");
        assert_eq!((r.status, &r.body[..]), (503, &br#"{"detail":"Log storage temporarily unavailable"}"#[..]));
        assert_eq!(proliferate_accepted(2, 1).body, br#"{"accepted":2,"dropped":1}"#);
    }

    #[test]
    fn lts_answers_as_documented() {
        let r = lts_ok();
        assert_eq!(r.body, br#"{"errorCode":"SVCSTG.ALS.200.200","errorMessage":"Report success.","result":null}"#);
        let r = error(Product::Lts, &IngestError::InvalidBody("x".into()), "x");
        assert_eq!(r.status, 400);
        assert!(String::from_utf8(r.body).unwrap().contains("SVCSTG.ALS.200.201"));
    }
}
