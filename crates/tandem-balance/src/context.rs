//! Per-request input to `Pool::pick`.

/// What the caller knows about the request being balanced.
#[derive(Default, Clone, Copy, Debug)]
pub struct PickContext<'a> {
    /// Affinity key for hash algorithms (client IP bytes, header/cookie/URI
    /// value). Ignored by the other algorithms.
    pub key: Option<&'a [u8]>,
    /// Backend indices already tried for this request: never returned, so
    /// retries go somewhere else.
    pub exclude: &'a [usize],
}
