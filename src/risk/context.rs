//! What every judgement in the classifier shares: the risk with its
//! reason ([`Assessment`]), and where one command runs ([`Ctx`]) with the
//! read and write rules every command's reader applies.

use std::path::Path;

use super::SecurityRisk::{self, High, Low, Medium};
use super::expand::Field;
use super::paths::{self, Cwd, Device, Place, Scope};

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

/// What reading a path reveals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// The bytes of the file (cat, grep, sort...).
    Content,
    /// Names, sizes, modes (ls, stat, find, du).
    Meta,
    /// The bytes of every file below it (grep -r, diff -r): a secret
    /// anywhere under it is read.
    Tree,
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
        if access == Access::Tree && place.covers_secret && !place.secret {
            return Assessment::new(
                High,
                format!("reads every file under {path}, secrets included"),
            );
        }
        match (place.scope, place.secret, access) {
            (_, true, Access::Content | Access::Tree) => {
                Assessment::new(High, format!("reads {path}, a secret"))
            }
            (Scope::Inside | Scope::Root, _, _) => {
                Assessment::new(Low, "reads in the service root")
            }
            (Scope::Unseen, _, Access::Content | Access::Tree) => Assessment::new(
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
        self.change(field, true)
    }

    /// A change to a name that exists (removing it, changing its mode):
    /// like a write, except that it makes no new name a glob would take
    /// for an option (removing one takes that danger away).
    pub(super) fn change_existing(&self, field: &Field) -> Assessment {
        self.change(field, false)
    }

    fn change(&self, field: &Field, creates: bool) -> Assessment {
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
            Scope::Inside if place.option_like && creates => Assessment::new(
                High,
                format!("creates {path}, a name a later glob would pass as an option"),
            ),
            Scope::Inside => Assessment::new(Medium, format!("writes {path} in the service root")),
        }
    }
}
