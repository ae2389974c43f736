//! Envelope encryption of what people wrote: message bodies, media URLs and raw webhook
//! payloads are stored sealed with AES-256-GCM under a data key, and the data key is stored
//! wrapped by the deployment's KMS key.
//!
//! Each instance asks KMS for one data key when it starts and files the wrapped key in the
//! table (`DEK#<id>`), so sealing a field is local CPU work: the inbound path makes no KMS
//! call per message and stays at one DynamoDB round trip. Opening a field names its data key;
//! a key this instance has not seen is read from the table and unwrapped by KMS once, then
//! cached. A sealed field is `pe1:<data key id>:<nonce>:<ciphertext>` (base64url), and its
//! additional data binds it to its item, so a ciphertext moved to another item does not open.

use std::collections::HashMap;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

use crate::store::{Store, StoreError};

const PREFIX: &str = "pe1:";
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("KMS {operation} failed: {code}")]
    Kms {
        operation: &'static str,
        code: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the data key {0} is not in the table")]
    UnknownKey(String),
    #[error("a sealed field is malformed")]
    Malformed,
    #[error("a sealed field does not open with its key (tampered, or moved from another item)")]
    Forged,
    #[error("a sealed field was read by a store with no envelope (DATA_KEY_ID unset)")]
    NoEnvelope,
    #[error("this instance only opens sealed fields; it was started without a data key")]
    ReadOnly,
}

/// Text people wrote as the table holds it: sealed, or plain when written before sealing
/// existed or by a store without an envelope. Its `Debug` shows neither: open it
/// ([`crate::store::Store::open`]) to read it.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct StoredText(String);

impl StoredText {
    pub fn plain(text: &str) -> Self {
        Self(text.to_owned())
    }

    pub(crate) fn sealed(sealed: String) -> Self {
        Self(sealed)
    }

    /// The sealed value, when it is one.
    pub fn sealed_value(&self) -> Option<&str> {
        Envelope::is_sealed(&self.0).then_some(self.0.as_str())
    }

    /// The value as stored (sealed or not): for checks that nothing is stored in plain text.
    pub fn stored(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoredText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sealed_value() {
            Some(_) => f.write_str("StoredText(<sealed>)"),
            None => f.write_str("StoredText(<plain, redacted>)"),
        }
    }
}

/// The data key this instance seals with.
struct Writer {
    id: String,
    cipher: Aes256Gcm,
}

pub struct Envelope {
    kms: aws_sdk_kms::Client,
    store: Store,
    /// None for an instance that only reads (no data key of its own).
    writer: Option<Writer>,
    /// Unwrapped data keys by id (this instance's own among them).
    readers: Mutex<HashMap<String, Aes256Gcm>>,
}

impl Envelope {
    /// Asks KMS for a data key under `kms_key_id` and files it, wrapped, in the table.
    pub async fn start(
        kms: aws_sdk_kms::Client,
        kms_key_id: &str,
        store: Store,
    ) -> Result<Self, EnvelopeError> {
        let out = kms
            .generate_data_key()
            .key_id(kms_key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .send()
            .await
            .map_err(|e| kms_error("GenerateDataKey", &e))?;
        let plaintext = out.plaintext.ok_or(EnvelopeError::Malformed)?;
        let wrapped = out.ciphertext_blob.ok_or(EnvelopeError::Malformed)?;
        let cipher =
            Aes256Gcm::new_from_slice(plaintext.as_ref()).map_err(|_| EnvelopeError::Malformed)?;
        let id = ulid::Ulid::new().to_string().to_lowercase();
        store.put_data_key(&id, wrapped.as_ref()).await?;
        Ok(Self {
            kms,
            store,
            readers: Mutex::new(HashMap::from([(id.clone(), cipher.clone())])),
            writer: Some(Writer { id, cipher }),
        })
    }

    /// An envelope that only opens fields: no KMS call until a field needs a key.
    pub fn read_only(kms: aws_sdk_kms::Client, store: Store) -> Self {
        Self {
            kms,
            store,
            writer: None,
            readers: Mutex::new(HashMap::new()),
        }
    }

    /// `plaintext` sealed for the item `bound_to` names (e.g. its message id). No I/O.
    pub fn seal(&self, plaintext: &str, bound_to: &str) -> Result<String, EnvelopeError> {
        let writer = self.writer.as_ref().ok_or(EnvelopeError::ReadOnly)?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let sealed = writer
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: bound_to.as_bytes(),
                },
            )
            .expect("AES-GCM encrypts any input under 64 GiB");
        Ok(format!(
            "{PREFIX}{}:{}:{}",
            writer.id,
            B64.encode(nonce),
            B64.encode(sealed)
        ))
    }

    /// The plaintext of a field sealed for `bound_to`.
    pub async fn open(&self, sealed: &str, bound_to: &str) -> Result<String, EnvelopeError> {
        let rest = sealed
            .strip_prefix(PREFIX)
            .ok_or(EnvelopeError::Malformed)?;
        let mut parts = rest.splitn(3, ':');
        let (Some(key_id), Some(nonce), Some(ciphertext)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(EnvelopeError::Malformed);
        };
        let nonce = B64.decode(nonce).map_err(|_| EnvelopeError::Malformed)?;
        let ciphertext = B64
            .decode(ciphertext)
            .map_err(|_| EnvelopeError::Malformed)?;
        if nonce.len() != NONCE_BYTES {
            return Err(EnvelopeError::Malformed);
        }
        let cipher = self.key(key_id).await?;
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| EnvelopeError::Forged)?;
        String::from_utf8(plaintext).map_err(|_| EnvelopeError::Malformed)
    }

    /// Whether a stored value is sealed (values written before sealing existed are not).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    /// The id of the data key this instance seals with, if it seals.
    pub fn data_key_id(&self) -> Option<&str> {
        self.writer.as_ref().map(|w| w.id.as_str())
    }

    async fn key(&self, key_id: &str) -> Result<Aes256Gcm, EnvelopeError> {
        if let Some(cipher) = self.readers().get(key_id) {
            return Ok(cipher.clone());
        }
        let wrapped = self
            .store
            .data_key(key_id)
            .await?
            .ok_or_else(|| EnvelopeError::UnknownKey(key_id.to_owned()))?;
        let out = self
            .kms
            .decrypt()
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped))
            .send()
            .await
            .map_err(|e| kms_error("Decrypt", &e))?;
        let plaintext = out.plaintext.ok_or(EnvelopeError::Malformed)?;
        let cipher =
            Aes256Gcm::new_from_slice(plaintext.as_ref()).map_err(|_| EnvelopeError::Malformed)?;
        self.readers().insert(key_id.to_owned(), cipher.clone());
        Ok(cipher)
    }

    fn readers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Aes256Gcm>> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("data_key_id", &self.data_key_id())
            .finish_non_exhaustive()
    }
}

/// Only the operation and the error code: the messages are not ours to log.
fn kms_error<E: aws_sdk_kms::error::ProvideErrorMetadata, R>(
    operation: &'static str,
    err: &aws_sdk_kms::error::SdkError<E, R>,
) -> EnvelopeError {
    let code = match err {
        aws_sdk_kms::error::SdkError::ServiceError(e) => e.err().code().unwrap_or("unknown"),
        aws_sdk_kms::error::SdkError::TimeoutError(_) => "timeout",
        aws_sdk_kms::error::SdkError::DispatchFailure(_) => "dispatch_failure",
        _ => "response_error",
    };
    EnvelopeError::Kms {
        operation,
        code: code.to_owned(),
    }
}
