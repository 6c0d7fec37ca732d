//! Any body to the LTS (both shapes) and Proliferate endpoints with valid credentials:
//! never a panic, and an accepted request's batch reads back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_ingest::config::DEMO_LTS_TOKEN;
use sluice_ingest::quota::Unlimited;
use sluice_ingest::{Config, Context, Endpoint, Headers, Request, batch};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let config = Config::development();
    let headers: Headers = [("x-auth-token", DEMO_LTS_TOKEN.to_owned())].into_iter().collect();
    let (path, endpoint) = match selector % 3 {
        0 => (
            "/v2/p/lts/groups/g/streams/s/tenant/contents",
            Endpoint::LtsContents { project_id: "p", group_id: "g", stream_id: "s", high_accuracy: false },
        ),
        1 => (
            "/v2/p/lts/groups/g/streams/s/tenant/contents/high-accuracy",
            Endpoint::LtsContents { project_id: "p", group_id: "g", stream_id: "s", high_accuracy: true },
        ),
        _ => ("/api/v1/logs/batch", Endpoint::ProliferateBatch),
    };
    let req = Request { method: "POST", path, query: "", headers: &headers, body };
    let ctx = Context { now_ns: 1_700_000_000_000_000_000, request_id: "fuzz" };
    if let Ok(accepted) = sluice_ingest::handle(&config, endpoint, &req, &ctx, &Unlimited) {
        if let Some(stored) = accepted.batch {
            let decoded = batch::decode(&stored.bytes, 1 << 30).expect("stored batches decode");
            assert_eq!(decoded.body.records.len(), accepted.records as usize);
        }
    }
});
