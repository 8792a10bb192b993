//! The dashboard in a real browser: headless Debian Chromium driven by npm
//! playwright-core (scripts/playwright installs it, pinned, into a cache
//! outside the repository). Outside CI it is skipped, saying why, when
//! node or chromium is missing; in CI it must run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::jaeger::Jaeger;
use crate::web::{serve, serve_with};

fn tool(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

fn skip_or_fail(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the browser test: {why} (.ci/run installs chromium and node)"
    );
    eprintln!("skipped: {why} (install Debian chromium and nodejs to run it)");
}

#[tokio::test]
async fn the_dashboard_shows_completions_arriving_over_sse() {
    let Some(chromium) = tool(
        "CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    ) else {
        return skip_or_fail("chromium is not installed");
    };
    let Some(node) = tool("NODE", &["/usr/bin/node", "/usr/local/bin/node"]) else {
        return skip_or_fail("node is not installed");
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let install = tokio::process::Command::new(repo.join("scripts/playwright"))
        .output()
        .await
        .expect("scripts/playwright runs");
    assert!(
        install.status.success(),
        "installing playwright-core failed: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let playwright = String::from_utf8_lossy(&install.stdout).trim().to_string();
    // With Jaeger (CI has it) the links are trace ids, and the browser
    // follows one to the trace Jaeger holds; the Go module's Jaeger has no
    // UI assets, so the link is to its query API.
    let jaeger = Jaeger::start().await;
    let (server, template) = match &jaeger {
        Some(jaeger) => (
            serve_with(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp.as_str()),
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ])
            .await,
            format!("{}/api/traces/{{trace_id}}", jaeger.query),
        ),
        None => (
            serve().await,
            "http://traces.local/?key={trace_key}".to_string(),
        ),
    };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out).unwrap();
    let screenshot = out.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let ran = tokio::time::timeout(
        Duration::from_secs(400),
        tokio::process::Command::new(node)
            .arg(repo.join("e2e/browser/dashboard.cjs"))
            .arg(format!("http://{}/", server.addr))
            .arg(&screenshot)
            .env("PLAYWRIGHT_DIR", &playwright)
            .env("TRACE_TEMPLATE", &template)
            .env("FOLLOW_TRACE", if jaeger.is_some() { "1" } else { "" })
            .env("CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser script finished within 400s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "the browser script failed:\n{stderr}");
    let result: Value = serde_json::from_slice(&ran.stdout).expect("the script's JSON result");
    assert_eq!(
        result["errors"],
        serde_json::json!([]),
        "errors on the page"
    );
    assert!(result["rows"].as_u64().unwrap() >= 3, "{result}");
    for status in result["statuses"].as_array().unwrap() {
        assert!(status == "Resolved" || status == "Failed", "{result}");
    }
    assert_eq!(result["fixed"], "12", "{result}");
    let prefix = template.split('{').next().unwrap();
    for link in result["links"].as_array().unwrap() {
        let link = link
            .as_str()
            .unwrap_or_else(|| panic!("a row without a link: {result}"));
        assert!(link.starts_with(prefix), "{result}");
    }
    if jaeger.is_some() {
        // The trace behind the first row's link is that incident's.
        let followed = &result["followed"];
        let incident = followed["incident"].as_str().unwrap();
        let trace: Value = serde_json::from_str(followed["body"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{e}: {followed}"));
        let spans = crate::jaeger::spans(&trace["data"][0]);
        let roots: Vec<_> = spans.iter().filter(|s| s.parent.is_none()).collect();
        assert_eq!(roots.len(), 1, "{spans:#?}");
        assert_eq!(roots[0].name, format!("incident {incident}"));
    }
    assert!(
        result["log"].as_str().unwrap().contains("finished"),
        "{result}"
    );
    let missing = result["missing"].as_array().unwrap();
    assert!(
        missing
            .iter()
            .any(|m| m.as_str().unwrap().contains("not trained yet")),
        "{result}"
    );
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", screenshot.display());
}
