//! Client tokens minted by the tool itself (HS256, `account_id` claim), so a
//! run needs nothing from the server but its secret.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    account_id: &'a str,
    exp: u64,
}

pub struct Minter {
    key: EncodingKey,
    exp: u64,
}

impl Minter {
    /// Tokens valid for `ttl_secs` from now.
    pub fn new(secret: &str, ttl_secs: u64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Minter {
            key: EncodingKey::from_secret(secret.as_bytes()),
            exp: now + ttl_secs,
        }
    }

    pub fn mint(&self, account_id: &str, user: &str) -> String {
        let claims = Claims {
            sub: user,
            account_id,
            exp: self.exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HS256 encoding of plain claims cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn tokens_verify_with_the_same_secret() {
        #[derive(serde::Deserialize)]
        struct Back {
            sub: String,
            account_id: String,
        }
        let token = Minter::new("s3cret", 60).mint("acc-1", "u-1");
        let data = jsonwebtoken::decode::<Back>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &Validation::new(Algorithm::HS256),
        )
        .expect("valid token");
        assert_eq!(
            (data.claims.sub.as_str(), data.claims.account_id.as_str()),
            ("u-1", "acc-1")
        );
        assert!(
            jsonwebtoken::decode::<Back>(
                &token,
                &DecodingKey::from_secret(b"other"),
                &Validation::new(Algorithm::HS256)
            )
            .is_err()
        );
    }
}
