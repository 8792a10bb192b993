//! The controller's own health probe. Only this decides Resolved: the
//! agent's claims are recorded, never trusted.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::crd::Verification;
use crate::workspace::http_get;

/// What counts as healthy, for the probe and for any agent that checks:
/// HTTP 200 with a JSON body whose `status` is `ok`.
pub fn is_healthy_answer(status: u16, body: &str) -> bool {
    status == 200
        && serde_json::from_str::<serde_json::Value>(body).is_ok_and(|b| b["status"] == "ok")
}

/// Probes `GET path` on the expected port `consecutive` times in a row;
/// healthy only if every answer is 200 with `"status": "ok"`.
pub async fn probe(port: u16, path: &str, consecutive: u32) -> (Verification, String) {
    let mut last_status = None;
    let mut detail = String::new();
    let mut healthy = consecutive > 0;
    for attempt in 1..=consecutive {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            http_get(port, path, 4096),
        )
        .await;
        match answer {
            Ok(Ok((status, body))) => {
                last_status = Some(status);
                if !is_healthy_answer(status, &body) {
                    detail = format!(
                        "probe {attempt}/{consecutive}: HTTP {status} {}",
                        body.trim()
                    );
                    healthy = false;
                    break;
                }
            }
            Ok(Err(e)) => {
                detail = format!("probe {attempt}/{consecutive}: no answer on port {port}: {e}");
                healthy = false;
                break;
            }
            Err(_) => {
                detail =
                    format!("probe {attempt}/{consecutive}: no answer on port {port} within 5s");
                healthy = false;
                break;
            }
        }
    }
    if healthy {
        detail = format!("{consecutive} consecutive 200 status ok from GET {path} on port {port}");
    }
    let verification = Verification {
        healthy,
        http_status: last_status,
        checked_at: Time(Timestamp::now()),
    };
    (verification, detail)
}
