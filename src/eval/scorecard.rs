//! The scorecard: the same scenarios under every approach (baseline, the
//! manual hint, each learned hint, the distilled skill), each incident a
//! real run, side by side. A learned artifact that is missing or broken
//! gets a row that says so; it is never skipped.
//!
//! Score: steps over the shortest honest episode (the oracle fix plus one
//! look before and one check after), averaged over the fixed incidents;
//! 1.00 is as short as an honest fix can be, lower is not possible without
//! skipping the look or the check, higher is wasted steps. Failures are
//! not in the score; the fix rate says how many there were. (The
//! optimizer's own objective may weigh things differently.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::arrivals::Arrival;
use super::fanout::{self, Plan, Snapshot, Stop};
use super::mix::Severity;
use super::report::{IncidentRecord, RunInfo, ratio};
use super::stats::{self, Spread};
use crate::agent::confirm::Refuse;
use crate::agent::hint::{self, HintSource, ResolvedHint};
use crate::local::Environment;
use crate::policy::{Paths, ResolvedPolicy};
use crate::risk::SecurityRisk;
use crate::scenario::{Catalog, Split};

pub const SCORE_DEFINITION: &str =
    "mean of steps / (oracle fix + 2) over fixed incidents; 1.00 is the shortest honest episode";
pub const NOT_TRAINED: &str = "not trained yet: run remediator optimize";

/// One approach: a hint to run, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct Approach {
    pub name: String,
    pub hint: Result<ResolvedHint, String>,
    /// What the artifact says about itself (optional fields).
    pub artifact: Option<ArtifactInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// The fields of a `best_hint.json` read here: only `hint` is required.
#[derive(Debug, Deserialize)]
struct BestHint {
    hint: String,
    #[serde(default)]
    score: Option<f64>,
    #[serde(default)]
    validation_score: Option<f64>,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
}

/// Every approach, in a fixed order: baseline, optimized-manual,
/// optimized-gepa, optimized-iterative, skill.
pub fn approaches(paths: &Paths) -> Vec<Approach> {
    let mut all = vec![
        Approach {
            name: "baseline".into(),
            hint: Ok(ResolvedHint::baseline()),
            artifact: None,
        },
        Approach {
            name: "optimized-manual".into(),
            hint: Ok(ResolvedHint::manual()),
            artifact: None,
        },
    ];
    for optimizer in ["gepa", "iterative"] {
        let path = paths.artifacts_dir.join(optimizer).join("best_hint.json");
        let (hint, artifact) = learned(&path);
        all.push(Approach {
            name: format!("optimized-{optimizer}"),
            hint,
            artifact,
        });
    }
    let skill = &paths.skill_file;
    all.push(Approach {
        name: "skill".into(),
        hint: if skill.exists() {
            hint::read_skill(skill).map_err(|e| e.to_string())
        } else {
            Err(format!(
                "no skill distilled yet ({} is absent): run remediator optimize",
                skill.display()
            ))
        },
        artifact: None,
    });
    all
}

fn learned(path: &Path) -> (Result<ResolvedHint, String>, Option<ArtifactInfo>) {
    if !path.exists() {
        return (
            Err(format!("{NOT_TRAINED} ({} is absent)", path.display())),
            None,
        );
    }
    let parsed = target_service::input::read_bounded(path, target_service::input::MAX_INPUT_BYTES)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<BestHint>(&text).map_err(|e| e.to_string()));
    match parsed {
        Err(e) => (Err(format!("{} is unreadable: {e}", path.display())), None),
        Ok(best) if best.hint.trim().is_empty() => {
            (Err(format!("{} has an empty hint", path.display())), None)
        }
        Ok(best) => {
            let timestamp = best.timestamp.map(|t| match t {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
            (
                Ok(ResolvedHint {
                    text: best.hint.trim().to_string(),
                    source: HintSource::Learned,
                    version: Some(path.display().to_string()),
                }),
                Some(ArtifactInfo {
                    path: path.display().to_string(),
                    score: best.score,
                    validation_score: best.validation_score,
                    timestamp,
                }),
            )
        }
    }
}

/// Which scenarios a scorecard runs.
pub fn scenarios(catalog: &Catalog, split: Option<Split>) -> Vec<String> {
    catalog.ids_in(split)
}

/// The shortest honest episode of a scenario in the catalog, if it is there.
pub fn shortest_honest(catalog: &Catalog, scenario: &str) -> Option<usize> {
    catalog
        .get(scenario)
        .ok()
        .map(crate::scenario::shortest_honest)
}

/// One approach on one scenario, or on all of them (`scenario` = "all").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub scenario: String,
    pub runs: usize,
    pub fixed: usize,
    pub fix_rate: Option<f64>,
    pub mean_steps: Option<f64>,
    /// Mean shortest honest episode of the incidents.
    pub shortest: Option<f64>,
    pub score: Option<f64>,
    pub time_to_resolve_s: Spread,
    pub max_risk: Option<SecurityRisk>,
    pub refused: u32,
}

impl Cell {
    fn of(scenario: &str, records: &[&IncidentRecord], catalog: &Catalog) -> Self {
        let fixed: Vec<&&IncidentRecord> = records.iter().filter(|r| r.fixed).collect();
        let shortest =
            |r: &IncidentRecord| shortest_honest(catalog, &r.scenario).unwrap_or(2) as f64;
        let steps: Vec<f64> = records.iter().map(|r| f64::from(r.steps)).collect();
        let shortests: Vec<f64> = records.iter().map(|r| shortest(r)).collect();
        let scores: Vec<f64> = fixed
            .iter()
            .map(|r| f64::from(r.steps) / shortest(r))
            .collect();
        let times: Vec<f64> = fixed.iter().map(|r| r.service_s).collect();
        Self {
            scenario: scenario.to_string(),
            runs: records.len(),
            fixed: fixed.len(),
            fix_rate: ratio(fixed.len(), records.len()),
            mean_steps: stats::mean(&steps),
            shortest: stats::mean(&shortests),
            score: stats::mean(&scores),
            time_to_resolve_s: Spread::of(&times),
            max_risk: records.iter().filter_map(|r| r.max_risk).max(),
            refused: records.iter().map(|r| r.refused).sum(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApproachResult {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_source: Option<String>,
    /// The hint, or why this approach did not run.
    pub hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Cell>,
    pub scenarios: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    pub run_id: String,
    pub split: String,
    pub repeats: usize,
    pub brain: String,
    pub score_definition: String,
    pub scenarios: Vec<String>,
    pub approaches: Vec<ApproachResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trajectory_file: Option<String>,
}

/// What a scorecard runs.
#[derive(Debug, Clone)]
pub struct Request {
    pub run_id: String,
    pub split: String,
    pub scenarios: Vec<String>,
    pub repeats: usize,
    pub concurrency: usize,
    /// The policy every approach starts from (its hint replaced).
    pub base: ResolvedPolicy,
    pub approaches: Vec<Approach>,
    pub trajectory_file: Option<PathBuf>,
}

/// Runs every available approach on every scenario `repeats` times.
pub async fn run(request: Request, env: Arc<Environment>) -> Scorecard {
    let mut results = Vec::new();
    for approach in &request.approaches {
        let hint = match &approach.hint {
            Ok(hint) => hint.clone(),
            Err(missing) => {
                results.push(ApproachResult {
                    name: approach.name.clone(),
                    hint_source: None,
                    hint: String::new(),
                    missing: Some(missing.clone()),
                    artifact: approach.artifact.clone(),
                    all: None,
                    scenarios: Vec::new(),
                });
                continue;
            }
        };
        let mut policy = request.base.clone();
        policy.name = approach.name.clone();
        policy.hint = hint.clone();
        let arrivals: Vec<Arrival> = (0..request.repeats)
            .flat_map(|_| request.scenarios.iter())
            .enumerate()
            .map(|(seq, scenario)| Arrival {
                seq: seq as u64,
                at_s: 0.0,
                scenario: scenario.clone(),
                severity: Severity::Sev3,
            })
            .collect();
        let info = RunInfo {
            run_id: request.run_id.clone(),
            mode: "scorecard".into(),
            policy: approach.name.clone(),
            concurrency: request.concurrency,
            ..RunInfo::default()
        };
        let plan = Plan {
            info: info.clone(),
            arrivals,
            policy,
            links: None,
            drain_timeout: Duration::from_secs(30),
        };
        let (_stop_tx, stop) = watch::channel(Stop::Run);
        let (live, _) = watch::channel(Snapshot::initial(info, 0, request.concurrency));
        let finished = fanout::run(plan, env.clone(), Arc::new(Refuse), stop, &live).await;
        let records: Vec<&IncidentRecord> = finished.records.iter().collect();
        let scenarios = request
            .scenarios
            .iter()
            .map(|s| {
                let mine: Vec<&IncidentRecord> = records
                    .iter()
                    .copied()
                    .filter(|r| &r.scenario == s)
                    .collect();
                Cell::of(s, &mine, &env.catalog)
            })
            .collect();
        results.push(ApproachResult {
            name: approach.name.clone(),
            hint_source: Some(hint.source.as_str().to_string()),
            hint: hint.text.clone(),
            missing: None,
            artifact: approach.artifact.clone(),
            all: Some(Cell::of("all", &records, &env.catalog)),
            scenarios,
        });
    }
    Scorecard {
        run_id: request.run_id,
        split: request.split,
        repeats: request.repeats,
        brain: request.base.spec.brain.label().to_string(),
        score_definition: SCORE_DEFINITION.to_string(),
        scenarios: request.scenarios,
        approaches: results,
        trajectory_file: request.trajectory_file.map(|p| p.display().to_string()),
    }
}

/// Columns of the table and the markdown.
const HEADERS: [&str; 10] = [
    "approach", "scenario", "runs", "fix rate", "steps", "shortest", "score", "p50 ttr", "p95 ttr",
    "max risk",
];

fn cells(approach: &str, c: &Cell) -> Vec<String> {
    use super::report::{ms, num, pct};
    vec![
        approach.to_string(),
        c.scenario.clone(),
        c.runs.to_string(),
        pct(c.fix_rate),
        num(c.mean_steps, 2),
        num(c.shortest, 2),
        num(c.score, 2),
        ms(c.time_to_resolve_s.p50),
        ms(c.time_to_resolve_s.p95),
        c.max_risk.map_or("-".to_string(), |r| r.to_string()),
        c.refused.to_string(),
    ]
}

impl Scorecard {
    fn rows(&self) -> Vec<Vec<String>> {
        self.rows_with(true)
    }

    /// One row per approach, and with `per_scenario` one per scenario under it.
    fn rows_with(&self, per_scenario: bool) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for a in &self.approaches {
            match (&a.missing, &a.all) {
                (Some(missing), _) => {
                    let mut row = vec![a.name.clone(), format!("— {missing}")];
                    row.resize(HEADERS.len() + 1, String::new());
                    rows.push(row);
                }
                (None, Some(all)) => {
                    rows.push(cells(&a.name, all));
                    for c in a.scenarios.iter().filter(|_| per_scenario) {
                        rows.push(cells("", c));
                    }
                }
                (None, None) => {}
            }
        }
        rows
    }

    fn headers() -> Vec<String> {
        HEADERS
            .iter()
            .map(|h| h.to_string())
            .chain(["refused".to_string()])
            .collect()
    }

    fn header_text(&self) -> String {
        format!(
            "scorecard {}: split {} ({} scenarios), {} repeat{}, {} brain; only incidents the controller's probe verified count as fixed\nscore: {}\n",
            self.run_id,
            self.split,
            self.scenarios.len(),
            self.repeats,
            if self.repeats == 1 { "" } else { "s" },
            self.brain,
            self.score_definition
        )
    }

    pub fn to_table(&self) -> String {
        self.table(true)
    }

    /// The table with one row per approach (all scenarios together).
    pub fn to_summary_table(&self) -> String {
        self.table(false)
    }

    fn table(&self, per_scenario: bool) -> String {
        let headers = Self::headers();
        let rows = self.rows_with(per_scenario);
        let widths: Vec<usize> = (0..headers.len())
            .map(|i| {
                rows.iter()
                    .filter(|r| !r[1].starts_with('—') || i != 1)
                    .map(|r| r[i].chars().count())
                    .chain([headers[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = self.header_text();
        let line = |cols: &[String]| {
            if cols[1].starts_with('—') {
                return format!("{:<w$}  {}\n", cols[0], cols[1], w = widths[0]);
            }
            let mut text = String::new();
            for (i, col) in cols.iter().enumerate() {
                if i < 2 {
                    text.push_str(&format!("{col:<w$}  ", w = widths[i]));
                } else {
                    text.push_str(&format!("{col:>w$}  ", w = widths[i]));
                }
            }
            text.trim_end().to_string() + "\n"
        };
        out.push_str(&line(&headers));
        for row in &rows {
            out.push_str(&line(row));
        }
        for a in &self.approaches {
            if let Some(artifact) = &a.artifact {
                out.push_str(&format!(
                    "{}: {} (its own score {}, validation score {})\n",
                    a.name,
                    artifact.path,
                    artifact.score.map_or("-".into(), |s| format!("{s:.3}")),
                    artifact
                        .validation_score
                        .map_or("-".into(), |s| format!("{s:.3}"))
                ));
            }
        }
        if let Some(file) = &self.trajectory_file {
            out.push_str(&format!("trajectories: {file}\n"));
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let headers = Self::headers();
        let mut out = String::new();
        for line in self.header_text().lines() {
            out.push_str(line);
            out.push_str("\n\n");
        }
        out.push_str(&format!("| {} |\n", headers.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(headers.len())));
        for row in self.rows() {
            let escaped: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", escaped.join(" | ")));
        }
        out
    }

    /// Every approach that ran resolved every incident.
    pub fn all_fixed(&self) -> bool {
        self.all_fixed_by(|_| true)
    }

    /// Whether every approach `counts` names fixed every incident it ran.
    pub fn all_fixed_by(&self, counts: impl Fn(&str) -> bool) -> bool {
        self.approaches
            .iter()
            .filter(|a| counts(&a.name))
            .filter_map(|a| a.all.as_ref())
            .all(|c| c.fixed == c.runs)
    }

    /// The learned approaches (optimized hints and the skill): what the
    /// optimizer ships, which must fix every incident.
    pub fn learned_all_fixed(&self) -> bool {
        self.all_fixed_by(|name| !matches!(name, "baseline" | "optimized-manual"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_broken_artifacts_are_rows_that_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let all = approaches(&paths);
        let names: Vec<&str> = all.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "baseline",
                "optimized-manual",
                "optimized-gepa",
                "optimized-iterative",
                "skill"
            ]
        );
        assert!(all[2].hint.as_ref().unwrap_err().starts_with(NOT_TRAINED));
        assert!(all[3].hint.as_ref().unwrap_err().starts_with(NOT_TRAINED));
        assert!(all[4].hint.is_err());

        std::fs::create_dir_all(paths.artifacts_dir.join("gepa")).unwrap();
        std::fs::write(
            paths.artifacts_dir.join("gepa/best_hint.json"),
            r#"{"hint":"check the log","score":0.8,"validation_score":0.7,"extra":[1]}"#,
        )
        .unwrap();
        std::fs::create_dir_all(paths.artifacts_dir.join("iterative")).unwrap();
        std::fs::write(paths.artifacts_dir.join("iterative/best_hint.json"), "{").unwrap();
        let all = approaches(&paths);
        assert_eq!(all[2].hint.as_ref().unwrap().text, "check the log");
        let info = all[2].artifact.as_ref().unwrap();
        assert_eq!((info.score, info.validation_score), (Some(0.8), Some(0.7)));
        assert!(all[3].hint.as_ref().unwrap_err().contains("unreadable"));
    }

    #[test]
    fn the_shortest_honest_episode_is_the_oracle_plus_two() {
        let catalog = Catalog::builtin();
        assert_eq!(shortest_honest(&catalog, "stale_lockfile"), Some(3));
        assert_eq!(shortest_honest(&catalog, "bad_env_config"), Some(4));
        assert_eq!(shortest_honest(&catalog, "nope"), None);
    }
}
