//! Service managers and logs: reading state is Low, restarting is Medium,
//! anything else they can do (stop, mask, edit, vacuum) is High.

use super::super::SecurityRisk::{High, Low, Medium, Unknown};
use super::super::context::{Access, Assessment, Ctx};
use super::super::expand::Field;
use super::super::flags::{self, Spec};
use super::super::paths::Scope;
use super::unknown_option;

pub(super) fn assess(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    match name {
        "journalctl" => journalctl(args),
        "target-service" => target_service(ctx, args),
        "remediator" => match args.split_first() {
            Some((sub, rest)) if sub.text == "target-service" => target_service(ctx, rest),
            _ => Assessment::new(Unknown, "remediator subcommand"),
        },
        _ => systemctl(name, args),
    }
}

fn systemctl(name: &str, args: &[Field]) -> Assessment {
    const SYSTEMCTL: Spec = Spec::new(
        "alqt:n:p:",
        "all full no-pager no-legend quiet type= state= lines= property= value plain user system",
    );
    let parsed = match flags::parse(&SYSTEMCTL, args) {
        Ok(p) => p,
        Err(option) => return unknown_option(name, &option),
    };
    let words: Vec<&str> = parsed.operands.iter().map(|f| f.text.as_str()).collect();
    // `service NAME VERB`, `systemctl VERB NAME`.
    let verb = if name == "service" {
        words.get(1)
    } else {
        words.first()
    };
    match verb.copied() {
        Some(
            "status" | "is-active" | "is-enabled" | "is-failed" | "show" | "list-units" | "cat"
            | "list-unit-files",
        ) => Assessment::new(Low, "reads service state"),
        Some("restart" | "reload" | "start" | "try-restart" | "reload-or-restart") => {
            Assessment::new(Medium, "restarts a service")
        }
        _ => Assessment::new(High, format!("`{name}` can stop or change services")),
    }
}

fn journalctl(args: &[Field]) -> Assessment {
    const JOURNALCTL: Spec = Spec::new(
        "aefkmqrxNb::n::o:p:S:U:t:u:g:",
        "no-pager since= until= unit= user-unit= lines=? output= priority= boot=? grep= \
         identifier= reverse follow all no-hostname utc catalog quiet dmesg merge system user \
         case-sensitive=? pager-end no-tail",
    );
    match flags::parse(&JOURNALCTL, args) {
        Ok(_) => Assessment::new(Low, "reads the journal"),
        Err(option) => unknown_option("journalctl", &option),
    }
}

/// `target-service status|restart --root DIR`: restarting another root is
/// someone else's service.
fn target_service(ctx: &Ctx, args: &[Field]) -> Assessment {
    let parsed = match flags::parse(&Spec::new("", "root="), args) {
        Ok(p) => p,
        Err(option) => return unknown_option("target-service", &option),
    };
    // --root is required: without it the command only prints its usage.
    let root = parsed.values(&["root"]).last().cloned();
    let ours = root
        .as_ref()
        .is_none_or(|root| ctx.locate(root).scope == Scope::Root);
    let root = root.unwrap_or_else(|| Field::plain("/tmp"));
    match parsed.operands.first().map(|f| f.text.as_str()) {
        Some("status") if ours => Assessment::new(Low, "reads the service state"),
        Some("status") => ctx
            .read(&root, Access::Meta)
            .max(Assessment::new(Medium, "reads another service's state")),
        Some("restart") if ours => Assessment::new(Medium, "restarts the service"),
        Some("restart") => Assessment::new(High, "restarts another service"),
        other => Assessment::new(
            Unknown,
            format!("target-service {}", other.unwrap_or("without a subcommand")),
        ),
    }
}
