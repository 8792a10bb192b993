//! Every catalog scenario: the fault is observable over HTTP, and the
//! catalog's oracle fix, applied through the agent's sandboxed workspace,
//! cures it.

use remediator::action::Action;
use remediator::scenario::{Catalog, RunningService, Scenario, oracle_fix};
use remediator::verify::http_get;
use target_service::catalog::{CheckTime, Visibility};

use crate::{launch, run_allowed, workspace};

/// What the fault must look like from outside before the fix.
async fn assert_fault_is_observable(
    scenario: &Scenario,
    service: &RunningService,
) -> Result<(), String> {
    let log_path = service.root.join(target_service::log::LOG_FILE);
    let request_check = scenario.checks.iter().find(|c| c.at == CheckTime::Request);
    let bound_elsewhere = service.first_state.port != Some(service.address.port());
    match request_check {
        Some(check) if service.first_state.running && !bound_elsewhere => {
            let answer = http_get(service.address, &scenario.verify.path, 64 * 1024)
                .await
                .map_err(|e| format!("no answer before the fix: {e}"))?;
            let body: serde_json::Value = serde_json::from_str(&answer.body)
                .map_err(|e| format!("body is not JSON ({e}): {}", answer.body))?;
            let expected_reason = match check.visible_in {
                Visibility::Body => check.reason.as_str(),
                Visibility::Log => "internal error",
            };
            if answer.status != 500
                || body["status"] != "error"
                || body["reason"] != expected_reason
            {
                return Err(format!(
                    "expected 500 with `{expected_reason}`, got {} {body}",
                    answer.status
                ));
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if !log.contains(&check.reason) {
                return Err(format!("log lacks the reason `{}`:\n{log}", check.reason));
            }
        }
        _ => {
            if let Ok(answer) = http_get(service.address, "/", 1024).await {
                return Err(format!(
                    "expected no answer at {}, got {} {}",
                    service.address, answer.status, answer.body
                ));
            }
            if !service.first_state.running {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                // The service says why, or (when it never ran, as with an
                // unreadable service.env) its supervisor does.
                if !log.contains("startup failed") && !log.contains(" is down: ") {
                    return Err(format!("a service that cannot start must log why:\n{log}"));
                }
            }
        }
    }
    Ok(())
}

async fn break_and_fix(
    catalog: &Catalog,
    catalog_text: Option<&str>,
    scenario: &Scenario,
) -> Result<(), String> {
    let mut launch = launch();
    launch.catalog_text = catalog_text.map(str::to_string);
    let service = launch
        .start(catalog, &scenario.id)
        .await
        .map_err(|e| format!("start: {e}"))?;
    assert_fault_is_observable(scenario, &service).await?;

    let workspace = workspace(&service).await;
    let fix = oracle_fix(scenario, service.address.port())?;
    for (step, action) in fix.into_iter().enumerate() {
        let observation = run_allowed(&workspace, step as u32 + 1, action.clone())
            .await
            .map_err(|e| format!("fix step {action:?} could not run: {e}"))?;
        if !observation.is_success() {
            return Err(format!("fix step {action:?} failed: {observation:?}"));
        }
    }
    let answer = http_get(service.address, &scenario.verify.path, 64 * 1024)
        .await
        .map_err(|e| format!("no answer after the fix: {e}"))?;
    let body: serde_json::Value =
        serde_json::from_str(&answer.body).map_err(|e| format!("{e}: {}", answer.body))?;
    if answer.status != 200 || body["status"] != "ok" || body["scenario"] != scenario.id.as_str() {
        return Err(format!("after the fix: {} {body}", answer.status));
    }
    service.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_scenario_breaks_for_real_and_its_oracle_fix_cures_it() {
    // REMEDIATOR_CATALOG proves another catalog the same way (a catalog
    // author's check); the built-in one otherwise.
    // The service must read the same catalog, so it is handed the text.
    let catalog_text = std::env::var_os("REMEDIATOR_CATALOG")
        .map(|path| std::fs::read_to_string(&path).expect("REMEDIATOR_CATALOG is readable"));
    let catalog = match &catalog_text {
        Some(text) => {
            Catalog::parse(text, "REMEDIATOR_CATALOG").expect("REMEDIATOR_CATALOG parses")
        }
        None => Catalog::builtin(),
    };
    let runs = catalog.scenarios.iter().map(|scenario| {
        let (catalog, text) = (&catalog, catalog_text.as_deref());
        async move {
            (
                scenario.id.clone(),
                break_and_fix(catalog, text, scenario).await,
            )
        }
    });
    let results = futures::future::join_all(runs).await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(id, result)| result.as_ref().err().map(|e| format!("{id}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "scenarios failed:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_fix_without_restart_does_not_cure_an_env_fault() {
    // The service reads its environment at start: editing service.env alone
    // must not be enough, or the restart in the oracle would prove nothing.
    let catalog = Catalog::builtin();
    let service = launch().start(&catalog, "bad_env_config").await.unwrap();
    let workspace = workspace(&service).await;
    let edit = Action::Exec("echo REQUIRED_API_KEY=x >> service.env".into());
    assert!(run_allowed(&workspace, 1, edit).await.unwrap().is_success());
    let answer = http_get(service.address, "/health", 1024).await.unwrap();
    assert_eq!(answer.status, 500);
    let restarted = run_allowed(&workspace, 2, Action::RestartService)
        .await
        .unwrap();
    assert!(restarted.is_success(), "{restarted:?}");
    let answer = http_get(service.address, "/health", 1024).await.unwrap();
    assert_eq!(answer.status, 200);
    service.stop().await;
}

#[tokio::test]
async fn restarting_a_service_whose_config_is_still_broken_reports_why() {
    let catalog = Catalog::builtin();
    let service = launch()
        .start(&catalog, "config_syntax_error")
        .await
        .unwrap();
    assert!(!service.first_state.running);
    let workspace = workspace(&service).await;
    let observation = run_allowed(&workspace, 1, Action::RestartService)
        .await
        .unwrap();
    assert!(!observation.is_success());
    assert!(
        observation.stderr.contains("max_connections 256"),
        "{observation:?}"
    );
    service.stop().await;
}
