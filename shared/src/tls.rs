//! One TLS set-up for every outbound HTTPS client a function builds (AWS, Twilio, the
//! Collections Monitor): rustls on ring, the system's root certificates.
//!
//! `parley` takes reqwest without a crypto provider, so what ships links ring (small, mostly
//! Rust) and not aws-lc-rs (a large static C library, reqwest's and the AWS SDK's default).
//!
//! The roots are the system's CA bundle, read and parsed here once per process into one rustls
//! configuration that every client shares. reqwest's default (rustls-platform-verifier, which
//! on Linux loads the same bundle through rustls-native-certs) reads it again for every client
//! and parses its PEM slowly: that parse was a quarter of a function's init CPU
//! (docs/benchmarks.md, "Issue 13, session 13"); and handing reqwest the certificates instead
//! (`tls_certs_only`) still had every client parse each of them again. Certificates are checked
//! the same way either way: rustls's WebPKI verifier on these roots, with the protocol versions
//! and ALPN reqwest itself would set (TLS 1.2 and 1.3, `http/1.1`: Parley's reqwest has no
//! HTTP/2). With no bundle found, reqwest's default is kept.

use std::sync::{Arc, OnceLock};

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
    let builder = reqwest::Client::builder();
    match system() {
        Some(tls) => builder.tls_backend_preconfigured(tls.clone()),
        None => builder,
    }
}

/// The configuration on the system bundle, built on the first call; none when no bundle is
/// found, none of its certificates is a root rustls takes, or `SSL_CERT_DIR` alone names the
/// roots (reqwest's default reads directories).
fn system() -> Option<&'static rustls::ClientConfig> {
    static SYSTEM: OnceLock<Option<rustls::ClientConfig>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            // Fails only when a provider is installed already, which is then used.
            let _ = rustls::crypto::ring::default_provider().install_default();
            if std::env::var_os("SSL_CERT_FILE").is_none()
                && std::env::var_os("SSL_CERT_DIR").is_some()
            {
                return None;
            }
            config(&bundle()?)
        })
        .as_ref()
}

/// A client configuration trusting the roots of a PEM bundle: the one reqwest builds for
/// `tls_certs_only` on the process's default provider. A certificate rustls cannot take as a
/// root is skipped, as rustls-native-certs skips it.
fn config(pem: &[u8]) -> Option<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(certificates(pem).map(Into::into));
    if roots.is_empty() {
        return None;
    }
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(config)
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
/// decode, are skipped, as rustls-native-certs skips them). Whitespace anywhere in a block is
/// ignored; the text between it is copied a run at a time, not a byte at a time.
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
        for run in block.split(u8::is_ascii_whitespace) {
            base64.extend_from_slice(run);
        }
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&base64) {
            return Some(der);
        }
    })
}

/// Where `needle` first starts in `haystack`: candidates are the places its first byte occurs.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut from = 0;
    while let Some(at) = haystack[from..].iter().position(|&b| b == first) {
        let at = from + at;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
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
    fn the_system_bundle_makes_one_configuration_for_every_client() {
        let tls = system().expect("this machine's CA bundle");
        assert_eq!(tls.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(std::ptr::eq(tls, system().unwrap()), "built once");
        assert!(client_builder().build().is_ok());
    }

    /// A server certificate for `localhost`, issued by a CA made for the test.
    struct Issued {
        ca_pem: String,
        server: rustls::ServerConfig,
    }

    fn issued() -> Issued {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Issued {
            ca_pem: ca.pem(),
            server,
        }
    }

    /// Serves one HTTPS request on 127.0.0.1 with `ok`; answers the ALPN protocol the
    /// handshake agreed, or the handshake's error.
    async fn serve_once(
        server: rustls::ServerConfig,
    ) -> (
        u16,
        tokio::task::JoinHandle<Result<Option<Vec<u8>>, String>>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let served = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = tls.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&chunk[..n]);
            }
            tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await
                .map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok(alpn)
        });
        (port, served)
    }

    /// `GET https://localhost:{port}/` from a client on `tls`.
    async fn get_on(tls: rustls::ClientConfig, port: u16) -> reqwest::Result<reqwest::Response> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()?;
        client
            .get(format!("https://localhost:{port}/"))
            .send()
            .await
    }

    #[tokio::test]
    async fn a_client_on_a_bundles_configuration_trusts_its_roots_and_speaks_http_1_1() {
        let issued = issued();
        // The test CA among other roots, as in a system bundle.
        let system = bundle().expect("a CA bundle on this machine");
        let pem = [system.as_slice(), issued.ca_pem.as_bytes()].concat();
        let tls = config(&pem).expect("a configuration");
        let (port, served) = serve_once(issued.server).await;
        let response = get_on(tls, port)
            .await
            .expect("the handshake and the request succeed");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
        assert_eq!(served.await.unwrap(), Ok(Some(b"http/1.1".to_vec())));
    }

    #[tokio::test]
    async fn a_client_refuses_a_server_whose_root_is_not_in_the_bundle() {
        let issued = issued();
        let tls = config(&bundle().expect("a CA bundle on this machine")).unwrap();
        let (port, served) = serve_once(issued.server).await;
        let refused = get_on(tls, port).await.expect_err("an unknown issuer");
        assert!(refused.is_connect(), "{refused:?}");
        assert!(
            served.await.unwrap().is_err(),
            "the server saw the handshake fail"
        );
    }

    #[test]
    fn a_bundle_without_a_usable_root_makes_no_configuration() {
        assert!(config(b"").is_none());
        assert!(
            config(b"-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n").is_none()
        );
    }

    #[test]
    fn find_is_the_first_occurrence() {
        assert_eq!(find(b"--x---BEGIN--BEGIN", b"-BEGIN"), Some(5));
        assert_eq!(find(b"-BEGI", b"-BEGIN"), None);
        assert_eq!(find(b"", b"-"), None);
        assert_eq!(find(b"abc", b""), None);
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
