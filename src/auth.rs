//! Who is asking: browser clients carry an HS256 JWT, backend services an API key.
//!
//! Both checks are pure functions of the request's credentials and the
//! configured secrets, so every transport and the HTTP API share them.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Why a client token was refused; the message is what the client is told.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing token")]
    MissingToken,
    #[error("token expired")]
    Expired,
    #[error("invalid token signature")]
    BadSignature,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token lacks required claim {0}")]
    MissingClaim(&'static str),
    #[error("invalid account id in token")]
    BadAccount,
}

/// The verified identity behind a client connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub account_id: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }

    /// Admins may watch any account; everyone else only their own.
    pub fn may_read(&self, account_id: &str) -> bool {
        self.is_admin() || self.account_id == account_id
    }
}

/// Claims as they arrive, so a missing one gets a message naming it.
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    account_id: Option<String>,
    exp: Option<u64>,
    role: Option<String>,
}

/// HS256 signing and verification with the configured secret. Every
/// request and connection handler holds one, so a clone shares the keys
/// instead of copying them.
#[derive(Clone)]
pub struct Jwt(Arc<JwtKeys>);

struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Jwt {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` is checked by hand below so that its absence has its own message.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        // An expiry is a deadline the issuer chose; no grace period on top of it.
        validation.leeway = 0;
        Jwt(Arc::new(JwtKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }))
    }

    /// Verifies signature, expiry and the required claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        let data = jsonwebtoken::decode::<RawClaims>(token, &self.0.decoding, &self.0.validation)
            .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            kind => AuthError::Malformed(malformed_reason(kind).into()),
        })?;
        let raw = data.claims;
        let exp = raw.exp.ok_or(AuthError::MissingClaim("exp"))?;
        if exp <= now_secs() {
            return Err(AuthError::Expired);
        }
        let account_id = raw
            .account_id
            .ok_or(AuthError::MissingClaim("account_id"))?;
        if !crate::event::valid_account_id(&account_id) {
            return Err(AuthError::BadAccount);
        }
        Ok(Claims {
            sub: raw.sub.ok_or(AuthError::MissingClaim("sub"))?,
            account_id,
            exp,
            role: raw.role,
        })
    }

    /// Mints a token valid for `ttl` (development and tests).
    pub fn mint(
        &self,
        account_id: &str,
        user_id: &str,
        role: Option<&str>,
        ttl: Duration,
    ) -> String {
        let claims = Claims {
            sub: user_id.to_owned(),
            account_id: account_id.to_owned(),
            exp: now_secs() + ttl.as_secs().max(1),
            role: role.map(str::to_owned),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }
}

/// Plain words for why a token could not be read. jsonwebtoken's own
/// `Display` names its enum variants (`InvalidToken`), which means nothing to
/// the person reading a sign-in error.
fn malformed_reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidToken => "not a JWT (expected three dot-separated parts)",
        ErrorKind::Base64(_) => "a part is not valid base64url",
        ErrorKind::Json(_) => "the header or claims are not the expected JSON",
        ErrorKind::Utf8(_) => "the header or claims are not UTF-8 text",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "it must be signed with HS256"
        }
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf is in the future)",
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            "a claim has the wrong type"
        }
        _ => "it could not be verified",
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The backend services' keys. Compared through their SHA-256 digests so the
/// comparison is constant-time and leaks neither content nor length.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Arc<[[u8; 32]]>,
}

impl ApiKeys {
    pub fn new(keys: &[String]) -> Self {
        ApiKeys {
            digests: keys.iter().map(|k| digest(k)).collect(),
        }
    }

    pub fn accepts(&self, presented: &str) -> bool {
        self.identify(presented).is_some()
    }

    /// Which configured key (by position) was presented, if any; per-key
    /// limits are keyed by it.
    pub fn identify(&self, presented: &str) -> Option<usize> {
        let presented = digest(presented);
        // No early exit: every configured key is compared, in constant time.
        let mut found = 0u64;
        for (i, d) in self.digests.iter().enumerate() {
            found.conditional_assign(&(i as u64 + 1), d.ct_eq(&presented));
        }
        usize::try_from(found).ok()?.checked_sub(1)
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Whether a credential has the shape of a JWT (three dot-separated parts).
/// Endpoints that take an API key or a token use it to tell which one a bad
/// credential was meant to be, so an API key is never refused as a token.
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.trim().split('.').count() == 3
}

/// Extracts the credential from an `Authorization: Bearer …` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let jwt = Jwt::new("s3cret");
        let token = jwt.mint("acc-1", "u1", Some("admin"), Duration::from_secs(60));
        let claims = jwt.verify(&token).unwrap();
        assert_eq!(claims.account_id, "acc-1");
        assert!(claims.is_admin() && claims.may_read("other"));

        let forged = Jwt::new("other").mint("acc-1", "u1", None, Duration::from_secs(60));
        assert_eq!(jwt.verify(&forged), Err(AuthError::BadSignature));
        assert_eq!(jwt.verify(""), Err(AuthError::MissingToken));
        assert!(matches!(jwt.verify("a.b.c"), Err(AuthError::Malformed(_))));
    }

    /// What a person reads in a sign-in error: plain words, never the name of
    /// a Rust type from the JWT library.
    #[test]
    fn malformed_tokens_are_explained_in_plain_words() {
        let jwt = Jwt::new("s3cret");
        // {"alg":"RS256","typ":"JWT"} . {} . sig
        let rs256 = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig";
        let cases = [
            ("dev-key-0123abcd", "not a JWT"),
            ("a.b", "not a JWT"),
            ("%%%.%%%.%%%", "base64url"),
            (rs256, "HS256"),
        ];
        for (token, expected) in cases {
            let message = jwt.verify(token).unwrap_err().to_string();
            assert!(message.contains(expected), "{token}: {message}");
            for rust_name in [
                "InvalidToken",
                "Base64",
                "Json",
                "Utf8",
                "InvalidAlgorithm",
                "Error",
            ] {
                assert!(!message.contains(rust_name), "{token}: {message}");
            }
        }
    }

    #[test]
    fn api_keys_match_exactly() {
        let keys = ApiKeys::new(&["k1".into(), "key-two".into()]);
        assert!(keys.accepts("k1") && keys.accepts("key-two"));
        assert!(!keys.accepts("k") && !keys.accepts("key-two ") && !keys.accepts(""));
        assert_eq!(keys.identify("key-two"), Some(1));
        assert_eq!(keys.identify("k1"), Some(0));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
    }
}
