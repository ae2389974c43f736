//! One TLS set-up for every outbound HTTPS client a function builds (AWS, Twilio, the
//! Collections Monitor): rustls on ring, the system's root certificates.
//!
//! `parley` takes reqwest without a crypto provider, so what ships links ring (small, mostly
//! Rust) and not aws-lc-rs (a large static C library, reqwest's and the AWS SDK's default).

/// A reqwest builder whose TLS runs on ring. In the tests and tools, where the workspace's
/// reqwest also brings aws-lc-rs, ring is installed as the process default all the same.
pub fn client_builder() -> reqwest::ClientBuilder {
    // Fails only when a provider is installed already, which is then used: nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
