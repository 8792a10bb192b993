//! The deterministic risk classifier: what an action could do, judged from
//! its text alone, with the service root and the service's port as the only
//! context. Low is a closed set of read-only commands whose options are all
//! known; targeted changes inside the root and restarts are Medium;
//! anything destructive, outside the root, running code, reading secrets or
//! leaving the machine is High; anything not understood is Unknown (above
//! High).

use std::path::{Path, PathBuf};

use super::SecurityRisk::{self, High, Low, Medium};
use super::expand::Field;
use super::paths::{self, Cwd, Device, Place, Scope};
use super::walk;
use crate::action::Action;

/// Classifies actions for one service.
#[derive(Debug, Clone)]
pub struct Classifier {
    root: PathBuf,
    port: u16,
}

/// A risk and the reason for it, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub risk: SecurityRisk,
    pub why: String,
}

impl Assessment {
    pub(super) fn new(risk: SecurityRisk, why: impl Into<String>) -> Self {
        Self {
            risk,
            why: why.into(),
        }
    }

    /// The worse of two; on a tie the first reason stays.
    pub(super) fn max(self, other: Self) -> Self {
        if other.risk > self.risk { other } else { self }
    }
}

impl Classifier {
    /// `service_port` is the only port `curl`/`wget` may reach on loopback.
    pub fn new(root: impl Into<PathBuf>, service_port: u16) -> Self {
        Self {
            root: root.into(),
            port: service_port,
        }
    }

    pub fn classify(&self, action: &Action) -> Assessment {
        let ctx = self.context();
        match action {
            Action::Exec(command) if command.trim().is_empty() => {
                Assessment::new(SecurityRisk::Unknown, "empty command")
            }
            Action::Exec(command) => walk::script(&ctx, command, &[]),
            Action::ReadFile(path) => ctx.read(&Field::plain(path), Access::Content),
            Action::WriteFile { path, .. } => ctx.write(&Field::plain(path)),
            Action::HttpGet(_) => Assessment::new(Low, "GET on the service's own port"),
            Action::RestartService => Assessment::new(Medium, "restarts the service"),
        }
    }

    fn context(&self) -> Ctx<'_> {
        Ctx {
            root: &self.root,
            port: self.port,
            cwd: Cwd::Known(self.root.clone()),
            depth: 0,
        }
    }
}

/// What reading a path reveals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// The bytes of the file (cat, grep, sort...).
    Content,
    /// Names, sizes, modes (ls, stat, find, du).
    Meta,
}

/// Where one command runs: the service, its working directory, and how
/// deep in `sh -c` it is.
#[derive(Debug, Clone)]
pub(super) struct Ctx<'a> {
    pub root: &'a Path,
    pub port: u16,
    pub cwd: Cwd,
    pub depth: usize,
}

impl Ctx<'_> {
    pub(super) fn in_dir(&self, cwd: Cwd) -> Self {
        Self {
            cwd,
            ..self.clone()
        }
    }

    pub(super) fn locate(&self, field: &Field) -> Place {
        paths::locate(field, &self.cwd, self.root)
    }

    pub(super) fn read(&self, field: &Field, access: Access) -> Assessment {
        let place = self.locate(field);
        let path = &place.shown;
        match place.device {
            Device::Null | Device::Stdio | Device::Source => {
                return Assessment::new(Low, "reads a descriptor or /dev/zero");
            }
            Device::Network => return Assessment::new(High, format!("opens {path} (network)")),
            Device::Other => return Assessment::new(High, format!("reads the device {path}")),
            Device::No => {}
        }
        match (place.scope, place.secret, access) {
            (_, true, Access::Content) => Assessment::new(High, format!("reads {path}, a secret")),
            (Scope::Inside | Scope::Root, _, _) => {
                Assessment::new(Low, "reads in the service root")
            }
            (Scope::Unseen, _, Access::Content) => Assessment::new(
                High,
                format!("reads `{path}`, which it cannot resolve (it could be a secret)"),
            ),
            (Scope::Unseen, _, Access::Meta) => Assessment::new(
                Medium,
                format!("looks at `{path}`, which it cannot resolve"),
            ),
            (Scope::Outside, _, _) => {
                Assessment::new(Medium, format!("reads {path}, outside the service root"))
            }
        }
    }

    pub(super) fn write(&self, field: &Field) -> Assessment {
        let place = self.locate(field);
        let path = &place.shown;
        match place.device {
            Device::Null | Device::Stdio => return Assessment::new(Low, "writes a descriptor"),
            Device::Network => return Assessment::new(High, format!("opens {path} (network)")),
            Device::Source | Device::Other => {
                return Assessment::new(High, format!("writes the device {path}"));
            }
            Device::No => {}
        }
        match place.scope {
            Scope::Outside => {
                Assessment::new(High, format!("writes {path}, outside the service root"))
            }
            Scope::Unseen => {
                Assessment::new(High, format!("writes `{path}`, which it cannot resolve"))
            }
            Scope::Root => Assessment::new(High, format!("writes `{path}`: all of the root")),
            Scope::Inside if place.startup => Assessment::new(
                High,
                format!("writes {path}, a file another program obeys at startup"),
            ),
            Scope::Inside if place.option_like => Assessment::new(
                High,
                format!("creates {path}, a name a later glob would pass as an option"),
            ),
            Scope::Inside => Assessment::new(Medium, format!("writes {path} in the service root")),
        }
    }
}
