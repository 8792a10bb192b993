//! Names and labels of the objects the operator and the optimizer keep
//! beside a Policy (`<policy>-trajectories`, `<policy>-hint`). A Policy's
//! name may take 253 characters and a label value only 63, so both are
//! derived here, once, in a way the API server always accepts.

use std::collections::BTreeMap;

/// Longest object name (a DNS subdomain).
const MAX_NAME: usize = 253;
/// Longest label value.
const MAX_LABEL: usize = 63;
/// The label that names the Policy an object belongs to.
pub const POLICY_LABEL: &str = "remediator.dev/policy";

/// `<owner><suffix>`; a name too long for an object name is cut and made
/// unique again with a hash of the whole owner's name.
pub fn object_name(owner: &str, suffix: &str) -> String {
    if owner.len() + suffix.len() <= MAX_NAME {
        return format!("{owner}{suffix}");
    }
    // "-" and 16 hex digits.
    let keep = MAX_NAME.saturating_sub(suffix.len() + 17);
    let cut: String = owner.chars().take(keep).collect();
    format!("{cut}-{:016x}{suffix}", fnv1a(owner.as_bytes()))
}

/// The labels of an object kept beside `policy`: the app, its component,
/// and the Policy's name where it fits in a label (a longer name is in the
/// object's name).
pub fn labels(policy: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".into(), "remediator".into()),
        ("app.kubernetes.io/component".into(), component.into()),
    ]);
    if policy.len() <= MAX_LABEL {
        labels.insert(POLICY_LABEL.into(), policy.into());
    }
    labels
}

/// FNV-1a, 64 bits: stable across builds and platforms, for names and
/// fingerprints (not for anything an attacker could exploit a collision of).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_name_is_the_owner_and_the_suffix() {
        assert_eq!(object_name("learner", "-hint"), "learner-hint");
        assert_eq!(
            object_name("learner", "-trajectories"),
            "learner-trajectories"
        );
    }

    #[test]
    fn a_name_at_the_limit_fits_and_stays_unique() {
        for suffix in ["-hint", "-trajectories"] {
            let long = "p".repeat(MAX_NAME);
            let name = object_name(&long, suffix);
            assert_eq!(name.len(), MAX_NAME, "{suffix}");
            assert!(name.ends_with(suffix));
            let other = object_name(&format!("{}q", "p".repeat(MAX_NAME - 1)), suffix);
            assert_ne!(name, other);
            // Exactly at the edge the name is kept whole.
            let edge = "e".repeat(MAX_NAME - suffix.len());
            assert_eq!(object_name(&edge, suffix), format!("{edge}{suffix}"));
        }
    }

    #[test]
    fn a_policy_longer_than_a_label_is_left_out_of_the_labels() {
        assert_eq!(labels("p", "optimizer")[POLICY_LABEL], "p");
        let at_limit = "l".repeat(MAX_LABEL);
        assert_eq!(labels(&at_limit, "optimizer")[POLICY_LABEL], at_limit);
        let over = labels(&"l".repeat(MAX_LABEL + 1), "trajectories");
        assert!(!over.contains_key(POLICY_LABEL));
        assert_eq!(over["app.kubernetes.io/component"], "trajectories");
    }
}
