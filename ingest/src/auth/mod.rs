//! Authentication: SLS request signatures (V1 and V4). LTS tokens and Proliferate API
//! keys are plain lookups in [`crate::config::Config`].

pub mod sls;
