//! Any bytes as a PutLogs LogGroup: never a panic, and whatever is accepted reads back
//! with prost with one record per log.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use sluice_ingest::config::Limits;
use sluice_ingest::format::sls::encode_log_group;
use sluice_proto::batch::BatchBody;
use sluice_proto::sls::LogGroup;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = encode_log_group(data, &Limits::default()) {
        let decoded = BatchBody::decode(&body.bytes[..]).expect("accepted bodies decode");
        assert_eq!(decoded.records.len(), body.record_count as usize);
        if let Ok(group) = LogGroup::decode(data) {
            assert_eq!(group.logs.len(), decoded.records.len());
        }
    }
});
