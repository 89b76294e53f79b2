//! The cluster transport's frame payloads: whatever a certified peer sends decodes to a
//! Request or Reply, or fails with an error; never a panic or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_cluster::transport::wire::{Reply, Request};

fuzz_target!(|data: &[u8]| {
    let _ = postcard::from_bytes::<Request>(data);
    let _ = postcard::from_bytes::<Reply>(data);
});
