//! Watching a fan-out from a terminal: a progress bar, a full-screen
//! dashboard (workers, queue, recent completions with trace links, live
//! KPIs), or, when the output is not a terminal, one plain line per
//! finished incident. Frames are pure functions of a snapshot.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::sync::watch;

use super::fanout::{RunState, Snapshot};
use super::report::{IncidentRecord, ms, num, pct};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Nothing (JSON output, or quiet).
    None,
    /// A bar on stderr, redrawn in place.
    Progress,
    /// The full-screen view on stdout.
    Dashboard,
    /// One line per finished incident on stderr.
    Lines,
}

impl View {
    /// What fits where the output goes: `dashboard` asks for the full view,
    /// which needs stdout to be a terminal; the bar needs stderr to be one.
    pub fn choose(dashboard: bool, quiet: bool) -> Self {
        if quiet {
            View::None
        } else if dashboard && std::io::stdout().is_terminal() {
            View::Dashboard
        } else if !dashboard && std::io::stderr().is_terminal() {
            View::Progress
        } else {
            View::Lines
        }
    }
}

/// The terminal's size (columns, rows), when stdout is one.
pub fn terminal_size() -> Option<(usize, usize)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col as usize, size.ws_row as usize))
}

/// `[#######-------] 37/200 fixed 36 failed 1 | queue 12 | 8/8 busy | p95 45.0ms | 21.3/s`
pub fn progress_line(s: &Snapshot, width: usize) -> String {
    let r = &s.report;
    let total = s.planned.max(r.generated).max(1);
    let done = r.completed + r.dropped + r.cancelled + r.aborted;
    let busy = s.workers.iter().filter(|w| w.is_some()).count();
    let tail = format!(
        " {done}/{total} fixed {} failed {} dropped {} | queue {} | {busy}/{} busy | p95 {} | {}/s",
        r.fixed,
        r.failed,
        r.dropped,
        s.queue_len,
        s.workers.len(),
        ms(r.latency_s.p95),
        num(r.throughput_per_s, 1),
    );
    let bar_width = width.saturating_sub(tail.chars().count() + 2).clamp(10, 40);
    let filled = (done * bar_width / total).min(bar_width);
    format!(
        "[{}{}]{tail}",
        "#".repeat(filled),
        "-".repeat(bar_width - filled)
    )
}

/// One finished incident on one line.
pub fn completion_line(r: &IncidentRecord) -> String {
    format!(
        "{:<34} {:<4} {:<8} {:>2} steps  risk {:<7} wait {:>8} service {:>8}{}",
        r.incident,
        r.severity.as_str(),
        r.phase,
        r.steps,
        r.max_risk.map_or("-".to_string(), |r| r.to_string()),
        ms(Some(r.wait_s)),
        ms(Some(r.service_s)),
        r.trace_url
            .as_ref()
            .map(|u| format!("  {u}"))
            .unwrap_or_default()
    )
}

fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        line.to_string()
    } else {
        line.chars()
            .take(width.saturating_sub(1))
            .collect::<String>()
            + "…"
    }
}

/// The full-screen frame, at most `rows` lines of at most `cols` columns.
pub fn screen(s: &Snapshot, cols: usize, rows: usize) -> Vec<String> {
    let r = &s.report;
    let i = &r.info;
    let mut lines = vec![
        format!(
            "remediator fanout {}  {}  policy {}  concurrency {}  {:.1}s  {}",
            i.run_id,
            i.mode,
            i.policy,
            i.concurrency,
            s.elapsed_s,
            match s.state {
                RunState::Running => "running (Ctrl-C drains, twice aborts)",
                RunState::Draining => "draining",
                RunState::Done => "done",
            }
        ),
        progress_line(s, cols),
        format!(
            "fix rate {}  mean steps {}  latency p50 {} p95 {}  service p50 {} p95 {}  fallback {}  confirmations {}  refused {}",
            pct(r.fix_rate),
            num(r.mean_steps, 2),
            ms(r.latency_s.p50),
            ms(r.latency_s.p95),
            ms(r.service_s.p50),
            ms(r.service_s.p95),
            r.fallback_used,
            r.confirmations_required,
            r.refused_actions
        ),
        String::new(),
        "WORKERS".to_string(),
    ];
    for (n, w) in s.workers.iter().enumerate() {
        lines.push(match w {
            Some(a) => format!(
                "  w{n:<3} {:<34} {:<4} {:.1}s",
                a.incident,
                a.severity.as_str(),
                (s.elapsed_s - a.started_s).max(0.0)
            ),
            None => format!("  w{n:<3} idle"),
        });
    }
    lines.push(String::new());
    lines.push(format!("QUEUE ({} waiting)", s.queue_len));
    for a in s.queue.iter().take(5) {
        lines.push(format!(
            "  {:<34} {:<4} arrived {:.2}s",
            super::fanout::incident_name(a.seq, &a.scenario),
            a.severity.as_str(),
            a.at_s
        ));
    }
    if s.queue_len > 5 {
        lines.push(format!("  … {} more", s.queue_len - 5));
    }
    lines.push(String::new());
    lines.push("RECENT".to_string());
    let room = rows.saturating_sub(lines.len());
    for record in s.recent.iter().take(room) {
        lines.push(format!("  {}", completion_line(record)));
    }
    lines.truncate(rows);
    lines.iter().map(|l| fit(l, cols)).collect()
}

/// Shows the run until it is done, as `view` says.
pub async fn follow(mut live: watch::Receiver<Snapshot>, view: View) {
    if view == View::None {
        return;
    }
    let mut printed = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    if view == View::Dashboard {
        print!("\x1b[?1049h\x1b[?25l");
    }
    loop {
        tick.tick().await;
        let snapshot = live.borrow_and_update().clone();
        match view {
            View::Progress => {
                let width = terminal_size().map_or(100, |(c, _)| c);
                eprint!("\r\x1b[2K{}", progress_line(&snapshot, width));
                let _ = std::io::stderr().flush();
            }
            View::Dashboard => {
                let (cols, rows) = terminal_size().unwrap_or((120, 40));
                let frame = screen(&snapshot, cols, rows).join("\x1b[K\n");
                print!("\x1b[H{frame}\x1b[J");
                let _ = std::io::stdout().flush();
            }
            View::Lines => {
                let completed = snapshot.report.completed;
                let new = completed.saturating_sub(printed);
                if new > snapshot.recent.len() {
                    eprintln!("… {} finished", new - snapshot.recent.len());
                }
                for record in snapshot.recent.iter().take(new).rev() {
                    eprintln!("{}", completion_line(record));
                }
                printed = completed;
            }
            View::None => {}
        }
        if snapshot.state == RunState::Done || live.has_changed().is_err() {
            break;
        }
    }
    match view {
        View::Dashboard => {
            print!("\x1b[?25h\x1b[?1049l");
            let _ = std::io::stdout().flush();
        }
        View::Progress => eprintln!(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::fanout::Active;
    use crate::eval::mix::Severity;
    use crate::eval::report::RunInfo;

    fn snapshot() -> Snapshot {
        let mut s = Snapshot::initial(
            RunInfo {
                run_id: "run-x".into(),
                mode: "batch".into(),
                policy: "optimized".into(),
                concurrency: 2,
                ..RunInfo::default()
            },
            10,
            2,
        );
        s.workers[1] = Some(Active {
            seq: 3,
            incident: "fo-00003-port-mismatch".into(),
            scenario: "port_mismatch".into(),
            severity: Severity::Sev1,
            started_s: 0.5,
        });
        s.elapsed_s = 1.0;
        s.queue_len = 7;
        s
    }

    #[test]
    fn the_bar_counts_what_is_done_of_what_is_planned() {
        let mut s = snapshot();
        s.report.completed = 5;
        let line = progress_line(&s, 120);
        assert!(line.starts_with('['), "{line}");
        assert!(line.contains(" 5/10 "), "{line}");
        assert!(line.contains("queue 7 | 1/2 busy"), "{line}");
        let bar: String = line.chars().skip(1).take_while(|c| *c != ']').collect();
        assert_eq!(bar.matches('#').count() * 2, bar.len(), "{bar}");
    }

    #[test]
    fn the_screen_fits_the_terminal_and_shows_workers_and_queue() {
        let lines = screen(&snapshot(), 60, 12);
        assert!(lines.len() <= 12);
        assert!(lines.iter().all(|l| l.chars().count() <= 60));
        let text = lines.join("\n");
        assert!(text.contains("w0   idle"), "{text}");
        assert!(text.contains("fo-00003-port-mismatch"), "{text}");
        assert!(text.contains("QUEUE (7 waiting)"), "{text}");
    }
}
