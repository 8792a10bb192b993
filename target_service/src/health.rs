//! Evaluates a scenario's health checks against the service's own view of
//! the world: its root, the environment and config it started with.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::catalog::{CheckTime, Condition, HealthCheck};
use crate::config::ServiceConfig;

/// What the service read when it started.
pub struct StartedWith {
    pub env: HashMap<String, String>,
    pub config: ServiceConfig,
}

/// The first check at `time` that fails, if any.
pub fn first_failure<'a>(
    checks: &'a [HealthCheck],
    time: CheckTime,
    root: &Path,
    started: &StartedWith,
) -> Option<&'a HealthCheck> {
    checks
        .iter()
        .filter(|c| c.at == time)
        .find(|c| !holds(&c.require, root, started))
}

pub fn holds(condition: &Condition, root: &Path, started: &StartedWith) -> bool {
    match condition {
        Condition::FileAbsent(path) => fs::symlink_metadata(root.join(path)).is_err(),
        Condition::FilePresent(path) => root.join(path).exists(),
        Condition::EnvSet(name) => started.env.get(name).is_some_and(|v| !v.is_empty()),
        Condition::ConfigEquals { key, value } => started.config.get(key) == Some(value.as_str()),
        Condition::DirWritable(path) => dir_writable(&root.join(path)),
    }
}

/// The owner write bit is checked as well as a real write, because the
/// service may run as root, which ignores permission bits.
fn dir_writable(dir: &Path) -> bool {
    let Ok(meta) = fs::metadata(dir) else {
        return false;
    };
    if !meta.is_dir() || meta.permissions().mode() & 0o200 == 0 {
        return false;
    }
    let probe = dir.join(".service-write-probe");
    let ok = fs::write(&probe, b"ok").is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Visibility;

    fn check(require: Condition, at: CheckTime) -> HealthCheck {
        HealthCheck {
            require,
            at,
            reason: "r".into(),
            visible_in: Visibility::Body,
        }
    }

    #[test]
    fn conditions_follow_the_world() {
        let dir = tempfile::tempdir().unwrap();
        let started = StartedWith {
            env: HashMap::from([("A".into(), "1".into()), ("EMPTY".into(), String::new())]),
            config: ServiceConfig::parse("mode = on").unwrap(),
        };
        let root = dir.path();
        assert!(holds(&Condition::FileAbsent("x".into()), root, &started));
        fs::write(root.join("x"), "").unwrap();
        assert!(!holds(&Condition::FileAbsent("x".into()), root, &started));
        assert!(holds(&Condition::FilePresent("x".into()), root, &started));
        assert!(holds(&Condition::EnvSet("A".into()), root, &started));
        assert!(!holds(&Condition::EnvSet("EMPTY".into()), root, &started));
        let eq = |v: &str| Condition::ConfigEquals {
            key: "mode".into(),
            value: v.into(),
        };
        assert!(holds(&eq("on"), root, &started));
        assert!(!holds(&eq("off"), root, &started));
        fs::create_dir(root.join("d")).unwrap();
        assert!(holds(&Condition::DirWritable("d".into()), root, &started));
        fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o555)).unwrap();
        assert!(!holds(&Condition::DirWritable("d".into()), root, &started));
    }

    #[test]
    fn only_checks_of_the_asked_time_count() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("lock"), "").unwrap();
        let started = StartedWith {
            env: HashMap::new(),
            config: ServiceConfig::default(),
        };
        let checks = [check(
            Condition::FileAbsent("lock".into()),
            CheckTime::Startup,
        )];
        assert!(first_failure(&checks, CheckTime::Request, dir.path(), &started).is_none());
        assert!(first_failure(&checks, CheckTime::Startup, dir.path(), &started).is_some());
    }
}
