//! Who confirms an action the policy wants confirmed in one process: a
//! person at a terminal, or nobody (refuse). In a cluster the same
//! question is answered by an approve/reject annotation.

use std::io::{BufRead, IsTerminal, Write};

use futures::future::BoxFuture;

use crate::action::Action;
use crate::risk::{DecidedBy, SecurityRisk};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Approved, and by whom (for the audit trail).
    Approved(DecidedBy),
    Refused(DecidedBy),
}

pub trait Confirmer: Send + Sync {
    fn confirm<'a>(
        &'a self,
        step: u32,
        action: &'a Action,
        risk: SecurityRisk,
    ) -> BoxFuture<'a, Answer>;
}

/// Refuses everything: no one is there to ask.
pub struct Refuse;

impl Confirmer for Refuse {
    fn confirm<'a>(&'a self, _: u32, _: &'a Action, _: SecurityRisk) -> BoxFuture<'a, Answer> {
        Box::pin(async { Answer::Refused(DecidedBy::NoTerminal) })
    }
}

/// Asks on the terminal; anything but `y`/`yes` refuses.
pub struct Terminal;

impl Confirmer for Terminal {
    fn confirm<'a>(
        &'a self,
        step: u32,
        action: &'a Action,
        risk: SecurityRisk,
    ) -> BoxFuture<'a, Answer> {
        let prompt = format!(
            "step {step}: the agent wants to run [{risk}] {}\nallow? [y/N] ",
            action.summary()
        );
        Box::pin(async move {
            let answer = tokio::task::spawn_blocking(move || {
                let mut err = std::io::stderr();
                let _ = write!(err, "{prompt}");
                let _ = err.flush();
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).map(|_| line)
            })
            .await;
            match answer {
                Ok(Ok(line)) if matches!(line.trim(), "y" | "Y" | "yes") => {
                    Answer::Approved(DecidedBy::Terminal)
                }
                _ => Answer::Refused(DecidedBy::Terminal),
            }
        })
    }
}

/// A terminal confirmer when stdin is one, otherwise refuse.
pub fn for_this_process() -> Box<dyn Confirmer> {
    if std::io::stdin().is_terminal() {
        Box::new(Terminal)
    } else {
        Box::new(Refuse)
    }
}
