//! Lays out a service root: the base files, then the scenario's fault.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, Scenario, SetupStep, parse_mode, render};
use crate::config::{CONFIG_FILE, ENV_FILE, set_config_line, set_env_line};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("service root {root} is not writable: {error}")]
    RootNotWritable {
        root: PathBuf,
        error: std::io::Error,
    },
    #[error("setting up {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("scenario `{scenario}`: {message}")]
    Invalid { scenario: String, message: String },
}

/// Creates `root` if needed, proves it is writable, and applies the base
/// layout and the scenario's fault for a service expected on `port`.
pub fn prepare(
    root: &Path,
    catalog: &Catalog,
    scenario: &Scenario,
    port: u16,
) -> Result<(), SetupError> {
    let not_writable = |error| SetupError::RootNotWritable {
        root: root.to_path_buf(),
        error,
    };
    fs::create_dir_all(root).map_err(not_writable)?;
    let probe = root.join(".write-probe");
    fs::write(&probe, b"").map_err(not_writable)?;
    fs::remove_file(&probe).map_err(not_writable)?;

    for step in catalog.base.iter().chain(&scenario.setup) {
        apply(root, step, port).map_err(|e| match e {
            StepError::Io(path, error) => SetupError::Io { path, error },
            StepError::Invalid(message) => SetupError::Invalid {
                scenario: scenario.id.clone(),
                message,
            },
        })?;
    }
    Ok(())
}

enum StepError {
    Io(PathBuf, std::io::Error),
    Invalid(String),
}

fn apply(root: &Path, step: &SetupStep, port: u16) -> Result<(), StepError> {
    let text = |t: &str| render(t, port).map_err(StepError::Invalid);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| StepError::Io(path, e)
    };
    match step {
        SetupStep::WriteFile { path, content } => {
            let path = inside(root, path)?;
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io(parent))?;
            }
            fs::write(&path, text(content)?).map_err(io(&path))
        }
        SetupStep::AppendLine { path, line } => {
            let path = inside(root, path)?;
            let mut current = fs::read_to_string(&path).unwrap_or_default();
            if !current.is_empty() && !current.ends_with('\n') {
                current.push('\n');
            }
            current.push_str(&text(line)?);
            current.push('\n');
            fs::write(&path, current).map_err(io(&path))
        }
        SetupStep::RemoveFile(path) => {
            let path = inside(root, path)?;
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
                _ => Ok(()),
            }
        }
        SetupStep::SetConfig { key, value } => {
            let path = root.join(CONFIG_FILE);
            let current = fs::read_to_string(&path).unwrap_or_default();
            fs::write(&path, set_config_line(&current, key, &text(value)?)).map_err(io(&path))
        }
        SetupStep::SetEnv { name, value } => edit_env(root, name, Some(&text(value)?)),
        SetupStep::UnsetEnv(name) => edit_env(root, name, None),
        SetupStep::Mkdir { path, mode } => {
            let path = inside(root, path)?;
            fs::create_dir_all(&path).map_err(io(&path))?;
            set_mode(&path, mode)
        }
        SetupStep::Chmod { path, mode } => set_mode(&inside(root, path)?, mode),
    }
}

fn edit_env(root: &Path, name: &str, value: Option<&str>) -> Result<(), StepError> {
    let path = root.join(ENV_FILE);
    let current = fs::read_to_string(&path).unwrap_or_default();
    fs::write(&path, set_env_line(&current, name, value)).map_err(|e| StepError::Io(path, e))
}

fn set_mode(path: &Path, mode: &str) -> Result<(), StepError> {
    let mode = parse_mode(mode).map_err(StepError::Invalid)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| StepError::Io(path.to_path_buf(), e))
}

/// Setup paths are relative and may not climb out of the root.
fn inside(root: &Path, relative: &str) -> Result<PathBuf, StepError> {
    let rel = Path::new(relative);
    let climbs = rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)));
    if relative.is_empty() || climbs {
        return Err(StepError::Invalid(format!(
            "setup path `{relative}` must be relative and stay inside the service root"
        )));
    }
    Ok(root.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_fault_are_laid_out() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin();
        prepare(
            dir.path(),
            &catalog,
            catalog.get("port_mismatch").unwrap(),
            9000,
        )
        .unwrap();
        let conf = fs::read_to_string(dir.path().join("service.conf")).unwrap();
        assert!(conf.contains("port = 9001"), "{conf}");
        assert!(dir.path().join("ready.flag").exists());
        assert!(dir.path().join("data").is_dir());
    }

    #[test]
    fn env_fault_removes_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin();
        prepare(
            dir.path(),
            &catalog,
            catalog.get("bad_env_config").unwrap(),
            9000,
        )
        .unwrap();
        let env = fs::read_to_string(dir.path().join("service.env")).unwrap();
        assert!(!env.contains("REQUIRED_API_KEY"), "{env}");
        assert!(env.contains("LOG_FORMAT=text"), "{env}");
    }

    #[test]
    fn root_under_a_file_is_not_writable() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let catalog = Catalog::builtin();
        let err = prepare(
            &file.path().join("root"),
            &catalog,
            &catalog.scenarios[0],
            9000,
        )
        .unwrap_err();
        assert!(matches!(err, SetupError::RootNotWritable { .. }), "{err}");
        assert!(err.to_string().contains("is not writable"), "{err}");
    }

    #[test]
    fn setup_paths_cannot_escape_the_root() {
        assert!(inside(Path::new("/r"), "../etc/passwd").is_err());
        assert!(inside(Path::new("/r"), "/etc/passwd").is_err());
        assert!(inside(Path::new("/r"), "run/x.pid").is_ok());
    }
}
