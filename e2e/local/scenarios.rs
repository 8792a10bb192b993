//! Every catalog scenario: the fault is observable over HTTP, and the
//! catalog's oracle fix, applied through the agent's workspace, cures it.

use remediator::scenario::{Catalog, RunningService, Scenario};
use remediator::workspace::{Local, Workspace, http_get};
use target_service::catalog::{CheckTime, Visibility};

use crate::launch;

/// What the fault must look like from outside before the fix.
async fn assert_fault_is_observable(
    scenario: &Scenario,
    service: &RunningService,
) -> Result<(), String> {
    let log_path = service.root.join(target_service::log::LOG_FILE);
    let request_check = scenario.checks.iter().find(|c| c.at == CheckTime::Request);
    let bound_elsewhere = service.first_state.port != Some(service.port);
    match request_check {
        Some(check) if service.first_state.running && !bound_elsewhere => {
            let (status, body) = http_get(service.port, &scenario.verify.path, 64 * 1024)
                .await
                .map_err(|e| format!("no answer before the fix: {e}"))?;
            let body: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| format!("body is not JSON ({e}): {body}"))?;
            let expected_reason = match check.visible_in {
                Visibility::Body => check.reason.as_str(),
                Visibility::Log => "internal error",
            };
            if status != 500 || body["status"] != "error" || body["reason"] != expected_reason {
                return Err(format!(
                    "expected 500 with `{expected_reason}`, got {status} {body}"
                ));
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if !log.contains(&check.reason) {
                return Err(format!("log lacks the reason `{}`:\n{log}", check.reason));
            }
        }
        _ => {
            if let Ok((status, body)) = http_get(service.port, "/", 1024).await {
                return Err(format!(
                    "expected no answer on port {}, got {status} {body}",
                    service.port
                ));
            }
            if !service.first_state.running {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if !log.contains("startup failed") {
                    return Err(format!("a service that cannot start must log why:\n{log}"));
                }
            }
        }
    }
    Ok(())
}

async fn break_and_fix(catalog: &Catalog, scenario: &Scenario) -> Result<(), String> {
    let service = launch()
        .start(catalog, &scenario.id)
        .map_err(|e| format!("start: {e}"))?;
    assert_fault_is_observable(scenario, &service).await?;

    let workspace = Local::new(&service.root, service.port);
    for action in scenario.fix_for(service.port) {
        let observation = workspace.run(&action).await;
        if !observation.is_success() {
            return Err(format!("fix step {action:?} failed: {observation:?}"));
        }
    }
    let (status, body) = http_get(service.port, &scenario.verify.path, 64 * 1024)
        .await
        .map_err(|e| format!("no answer after the fix: {e}"))?;
    let body: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if status != 200 || body["status"] != "ok" || body["scenario"] != scenario.id.as_str() {
        return Err(format!("after the fix: {status} {body}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_scenario_breaks_for_real_and_its_oracle_fix_cures_it() {
    let catalog = Catalog::builtin();
    let runs = catalog.scenarios.iter().map(|scenario| {
        let catalog = &catalog;
        async move { (scenario.id.clone(), break_and_fix(catalog, scenario).await) }
    });
    let results = futures::future::join_all(runs).await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(id, result)| result.as_ref().err().map(|e| format!("{id}: {e}")))
        .collect();
    assert!(results.len() >= 8);
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
    let service = launch().start(&catalog, "bad_env_config").unwrap();
    let workspace = Local::new(&service.root, service.port);
    assert!(
        workspace
            .exec("echo REQUIRED_API_KEY=x >> service.env")
            .await
            .is_success()
    );
    let (status, _) = http_get(service.port, "/health", 1024).await.unwrap();
    assert_eq!(status, 500);
    let restarted = workspace.restart_service().await;
    assert!(restarted.is_success(), "{restarted:?}");
    let (status, _) = http_get(service.port, "/health", 1024).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn restarting_a_service_whose_config_is_still_broken_reports_why() {
    let catalog = Catalog::builtin();
    let service = launch().start(&catalog, "config_syntax_error").unwrap();
    assert!(!service.first_state.running);
    let observation = Local::new(&service.root, service.port)
        .restart_service()
        .await;
    assert!(!observation.is_success());
    assert!(
        observation.stderr.contains("max_connections 256"),
        "{observation:?}"
    );
}
