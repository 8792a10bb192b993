//! The deterministic risk classifier: what an action could do, judged from
//! its text alone, with the service root and the service's port as the only
//! context. Low is a closed set of read-only commands whose options are all
//! known; targeted changes inside the root and restarts are Medium;
//! anything destructive, outside the root, running code, reading secrets or
//! leaving the machine is High; anything not understood is Unknown (above
//! High).

use std::path::PathBuf;

use super::SecurityRisk::{self, Low, Medium};
use super::context::{Access, Assessment, Ctx};
use super::expand::Field;
use super::paths::Cwd;
use super::walk;
use crate::action::Action;

/// Classifies actions for one service.
#[derive(Debug, Clone)]
pub struct Classifier {
    root: PathBuf,
    port: u16,
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
