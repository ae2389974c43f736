//! One TLS set-up for every outbound HTTPS client a function builds (AWS, Twilio, the
//! Collections Monitor): rustls on ring, the system's root certificates.
//!
//! `parley` takes reqwest without a crypto provider, so what ships links ring (small, mostly
//! Rust) and not aws-lc-rs (a large static C library, reqwest's and the AWS SDK's default).
//!
//! The roots are the system's CA bundle, read here once per process. reqwest's default
//! (rustls-platform-verifier, which on Linux loads the same bundle through
//! rustls-native-certs) reads it again for every client and parses its PEM slowly: that
//! parse was a quarter of a function's init CPU (docs/benchmarks.md, "Issue 13, session 13").
//! Certificates are then checked the same way either way: rustls's WebPKI verifier on these
//! roots. With no bundle found, reqwest's default is kept.

use std::sync::OnceLock;

use base64::Engine;

/// Where distributions keep the bundle: Debian and Ubuntu, Amazon Linux (Lambda's
/// `provided.al2023`), Fedora and RHEL, openSUSE, Alpine. `SSL_CERT_FILE` comes first, as for
/// OpenSSL and rustls-native-certs.
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A reqwest builder whose TLS runs on ring and trusts the system's roots. In the tests and
/// tools, where the workspace's reqwest also brings aws-lc-rs, ring is installed as the process
/// default all the same.
pub fn client_builder() -> reqwest::ClientBuilder {
    // Fails only when a provider is installed already, which is then used: nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder();
    match roots() {
        Some(roots) => builder.tls_certs_only(roots.iter().cloned()),
        None => builder,
    }
}

/// The system bundle's certificates, read on the first call; none when no bundle is found, none
/// of it reads, or `SSL_CERT_DIR` alone names the roots.
fn roots() -> Option<&'static [reqwest::Certificate]> {
    static ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        // Roots named by directory only: reqwest's default reads directories.
        if std::env::var_os("SSL_CERT_FILE").is_none() && std::env::var_os("SSL_CERT_DIR").is_some()
        {
            return Vec::new();
        }
        bundle().map_or_else(Vec::new, |pem| {
            // reqwest refuses a whole list for one root rustls cannot take, where
            // rustls-native-certs skips it: only those rustls takes are kept.
            let mut usable = rustls::RootCertStore::empty();
            certificates(&pem)
                .filter(|der| usable.add(der.clone().into()).is_ok())
                .filter_map(|der| reqwest::Certificate::from_der(&der).ok())
                .collect()
        })
    });
    (!roots.is_empty()).then_some(roots.as_slice())
}

/// The first bundle that reads: `SSL_CERT_FILE`'s, else the first of [`BUNDLES`].
fn bundle() -> Option<Vec<u8>> {
    std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(BUNDLES.iter().map(std::path::PathBuf::from))
        .find_map(|path| std::fs::read(path).ok())
}

/// The DER of each `CERTIFICATE` block in a PEM bundle (other blocks, and blocks that do not
/// decode, are skipped, as rustls-native-certs skips them).
fn certificates(pem: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut rest = pem;
    let mut base64 = Vec::new();
    std::iter::from_fn(move || loop {
        let start = find(rest, BEGIN)? + BEGIN.len();
        let length = find(&rest[start..], END)?;
        let block = &rest[start..start + length];
        rest = &rest[start + length + END.len()..];
        base64.clear();
        base64.extend(block.iter().filter(|b| !b.is_ascii_whitespace()));
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&base64) {
            return Some(der);
        }
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_reads_as_rustls_native_certs_reads_it() {
        let pem = bundle().expect("a CA bundle on this machine");
        let ours: Vec<Vec<u8>> = certificates(&pem).collect();
        let theirs: Vec<Vec<u8>> = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
            .map(|c: Result<rustls_pki_types::CertificateDer<'static>, _>| c.unwrap().to_vec())
            .collect();
        assert!(ours.len() > 50, "{} certificates", ours.len());
        assert_eq!(ours, theirs);
    }

    #[test]
    fn the_system_roots_make_a_client() {
        let roots = roots().expect("this machine's CA bundle");
        assert!(roots.len() > 50, "{} roots", roots.len());
        assert!(client_builder().build().is_ok());
    }

    #[test]
    fn blocks_that_are_not_certificates_or_do_not_decode_are_skipped() {
        let pem = b"junk\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
            -----BEGIN CERTIFICATE-----\n!!notbase64\n-----END CERTIFICATE-----\n\
            -----BEGIN CERTIFICATE-----\nAAEC\r\nAw==\n-----END CERTIFICATE-----\n\
            -----BEGIN CERTIFICATE-----\nAAEC";
        let found: Vec<Vec<u8>> = certificates(pem).collect();
        assert_eq!(found, vec![vec![0, 1, 2, 3]]);
    }
}
