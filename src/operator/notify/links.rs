//! Signed approve/reject links: a token that names one incident, one step,
//! the hash of the action waiting there, the answer and when it expires,
//! signed with HMAC-SHA256 under a key only the operator holds. Nothing in
//! a link is trusted until its signature checks; what it asks for still has
//! to match the incident as it is when the link is used.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The shortest signing key accepted (bytes).
pub const MIN_KEY_BYTES: usize = 32;

/// What a link says, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub namespace: String,
    pub name: String,
    /// The Incident's UID: a link outlives no deleted-and-recreated
    /// namesake.
    pub uid: String,
    pub step: u32,
    /// [`crate::action::Action::digest`] of the action waiting at `step`.
    pub action_hash: String,
    pub approve: bool,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
    /// The webhook (channel) the link was sent to.
    pub channel: String,
    /// Names this link in status (who decided) and in logs.
    pub id: String,
}

impl Claims {
    /// The id every link for this incident, step, action, answer and channel
    /// gets: a notice sent again carries the same links.
    pub fn id_for(uid: &str, step: u32, action_hash: &str, approve: bool, channel: &str) -> String {
        let text = format!("{uid}/{step}/{action_hash}/{approve}/{channel}");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Why a link is refused (also the metric's outcome label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a token at all.
    Malformed,
    /// Signed with another key, or changed after signing.
    BadSignature,
    Expired,
    /// Its path names another incident than it was signed for.
    OtherIncident,
    /// It was used already: the step was answered through it.
    Used,
    /// The step is no longer waiting (answered otherwise, timed out), the
    /// action changed, or the incident is gone.
    NotWaiting,
    /// This replica does not sign links (no key configured).
    Disabled,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::OtherIncident => "other_incident",
            Self::Used => "used",
            Self::NotWaiting => "not_waiting",
            Self::Disabled => "disabled",
        }
    }

    /// What the person who followed the link reads.
    pub fn explain(self) -> &'static str {
        match self {
            Self::Malformed => "This is not an approval link.",
            Self::BadSignature => {
                "This link's signature does not check: it was changed, or it was not issued by this operator."
            }
            Self::Expired => "This link has expired: the approval it was sent for has timed out.",
            Self::OtherIncident => "This link belongs to another incident.",
            Self::Used => "This link was used already.",
            Self::NotWaiting => {
                "The action this link was sent for is no longer waiting: it was answered, it timed out, or the incident has moved on."
            }
            Self::Disabled => "Approval links are not enabled on this operator.",
        }
    }
}

/// The operator's signing key.
#[derive(Clone)]
pub struct LinkKey(hmac::Key);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

impl LinkKey {
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the link signing key has {} bytes; at least {MIN_KEY_BYTES} are needed",
                secret.len()
            ));
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// `payload.signature`, both base64url.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let tag = hmac::sign(&self.0, &payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The claims of a token signed with this key and not expired at `now`
    /// (unix seconds). The signature is checked before anything is parsed.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, Refusal> {
        let (payload, tag) = token.split_once('.').ok_or(Refusal::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Refusal::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Refusal::Malformed)?;
        hmac::verify(&self.0, &payload, &tag).map_err(|_| Refusal::BadSignature)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| Refusal::Malformed)?;
        if now > claims.expires {
            return Err(Refusal::Expired);
        }
        Ok(claims)
    }
}

/// The path a link is served under: the incident it names, then the token.
pub fn path(claims: &Claims, token: &str) -> String {
    format!("/approvals/{}/{}/{token}", claims.namespace, claims.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            namespace: "prod".into(),
            name: "checkout".into(),
            uid: "u-1".into(),
            step: 2,
            action_hash: "ab".repeat(32),
            approve: true,
            expires: 1_000,
            channel: "oncall".into(),
            id: Claims::id_for("u-1", 2, &"ab".repeat(32), true, "oncall"),
        }
    }

    fn key(byte: u8) -> LinkKey {
        LinkKey::new(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let token = key(1).sign(&claims());
        assert_eq!(key(1).verify(&token, 1_000), Ok(claims()));
        assert_eq!(key(1).verify(&token, 1_001), Err(Refusal::Expired));
    }

    #[test]
    fn another_key_or_any_change_is_refused() {
        let token = key(1).sign(&claims());
        assert_eq!(key(2).verify(&token, 0), Err(Refusal::BadSignature));
        // Every claim changed and re-encoded under the old signature.
        let (_, tag) = token.split_once('.').unwrap();
        for changed in [
            Claims {
                step: 3,
                ..claims()
            },
            Claims {
                approve: false,
                ..claims()
            },
            Claims {
                expires: i64::MAX,
                ..claims()
            },
            Claims {
                name: "other".into(),
                ..claims()
            },
        ] {
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&changed).unwrap());
            let forged = format!("{payload}.{tag}");
            assert_eq!(key(1).verify(&forged, 0), Err(Refusal::BadSignature));
        }
        for garbage in ["", ".", "abc", "a.b.c", "!!.??"] {
            assert!(key(1).verify(garbage, 0).is_err(), "{garbage}");
        }
    }

    #[test]
    fn a_short_key_is_refused_and_ids_are_stable_per_answer() {
        assert!(LinkKey::new(&[0; 31]).is_err());
        let hash = "cd".repeat(32);
        let approve = Claims::id_for("u", 1, &hash, true, "slack");
        assert_eq!(approve, Claims::id_for("u", 1, &hash, true, "slack"));
        assert_ne!(approve, Claims::id_for("u", 1, &hash, false, "slack"));
        assert_ne!(approve, Claims::id_for("u", 1, &hash, true, "generic"));
    }
}
