//! The pages a signed link opens. A GET never acts: it checks the link and
//! shows the action it would answer, with a form; only that form's POST
//! answers, through the engine, which holds the answer to the very step
//! and action the link was signed for. A refused link gets a page that
//! says why, and is counted.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use kube::Client;
use kube::api::Api;

use super::links::{Claims, LinkKey, Refusal};
use super::shown::Shown;
use crate::crd::{Approver, Incident};
use crate::operator::bounded::call;
use crate::operator::engine::{Engine, PersonsAnswer};
use crate::operator::metrics::Metrics;
use crate::operator::session::waiting_approval;
use crate::protocol::IncidentKey;
use crate::risk::DecidedBy;

pub struct LinkPages {
    pub key: Option<LinkKey>,
    pub client: Client,
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
}

pub fn router(pages: Arc<LinkPages>) -> Router {
    Router::new()
        .route(
            "/approvals/{namespace}/{name}/{token}",
            get(confirm).post(answer),
        )
        .with_state(pages)
}

type LinkPath = Path<(String, String, String)>;

/// The confirmation page: the whole action the link would answer, exactly
/// as it would run, and a button.
async fn confirm(
    State(pages): State<Arc<LinkPages>>,
    Path((ns, name, token)): LinkPath,
) -> Response {
    let (claims, incident, shown) = match pages.check(&ns, &name, &token).await {
        Ok(found) => found,
        Err(refusal) => return pages.refuse(refusal),
    };
    let status = incident.status.clone().unwrap_or_default();
    let verb = if claims.approve { "Approve" } else { "Reject" };
    let change = match (&shown.diff, &shown.content) {
        (Some(diff), Some(content)) => format!(
            "<p>It would change (the file's old text redacted):</p>{}<p>Its whole new content:</p>{}",
            block(diff),
            block(content)
        ),
        (None, Some(content)) => format!("<p>It would write:</p>{}", block(content)),
        _ => String::new(),
    };
    let body = format!(
        "<h1>{verb} step {step} of incident {ns}/{name}?</h1>\
         <p>Scenario <code>{scenario}</code>, Policy <code>{policy}</code>, {steps} steps so far.</p>\
         <p><b>{kind}</b> &middot; risk <b>{risk}</b></p>{text}\
         <p>Why it waits: {reason}</p>{change}\
         <form method=\"post\"><button type=\"submit\">{verb} step {step}</button></form>\
         <p>Nothing happens until you press the button. This is the whole action, as it would run \
         (characters that could hide text are written out as \\u{{...}}). This link was sent to <code>{channel}</code>.</p>",
        step = claims.step,
        ns = escape(&ns),
        name = escape(&name),
        scenario = escape(&incident.spec.scenario),
        policy = escape(&incident.spec.policy_ref.name),
        steps = status.steps,
        kind = escape(shown.kind),
        risk = shown.risk,
        text = block(&shown.text),
        reason = escape(&shown.reason),
        channel = escape(&claims.channel),
    );
    page(
        StatusCode::OK,
        &format!("{verb} step {}", claims.step),
        &body,
    )
}

/// The form's POST: the answer, if the link still holds.
async fn answer(
    State(pages): State<Arc<LinkPages>>,
    Path((ns, name, token)): LinkPath,
) -> Response {
    let (claims, _, _) = match pages.check(&ns, &name, &token).await {
        Ok(found) => found,
        Err(refusal) => return pages.refuse(refusal),
    };
    let key = IncidentKey {
        namespace: ns.clone(),
        name: name.clone(),
    };
    let answer = PersonsAnswer {
        step: claims.step,
        approved: claims.approve,
        by: DecidedBy::Link,
        approver: Some(Approver {
            via: "link".into(),
            channel: Some(claims.channel.clone()),
            link_id: Some(claims.id.clone()),
            ..Approver::default()
        }),
        action_hash: Some(claims.action_hash.clone()),
    };
    match pages.engine.answer(&key, answer).await {
        Ok(true) => {
            pages.count("accepted");
            tracing::info!(
                incident = %key,
                step = claims.step,
                approved = claims.approve,
                link = %claims.id,
                channel = %claims.channel,
                "answered through a signed link"
            );
            let done = if claims.approve {
                "approved: it runs now"
            } else {
                "rejected"
            };
            page(
                StatusCode::OK,
                "Answered",
                &format!(
                    "<h1>Step {} of {} {done}.</h1><p>The incident's status records this link ({}) as who decided.</p>",
                    claims.step,
                    escape(&format!("{ns}/{name}")),
                    escape(&claims.id)
                ),
            )
        }
        // Answered meanwhile (perhaps through this very link).
        Ok(false) => match pages.incident(&ns, &name).await {
            Ok(Some(incident)) if used(&incident, &claims) => pages.refuse(Refusal::Used),
            _ => pages.refuse(Refusal::NotWaiting),
        },
        Err(e) => {
            tracing::warn!(incident = %key, step = claims.step, "a link's answer could not be given: {e}");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "<h1>The operator could not answer right now.</h1><p>Nothing was done. The link still holds until it expires.</p>",
            )
        }
    }
}

impl LinkPages {
    /// A link whose signature, expiry and path check, and whose incident
    /// still waits at its step for the very action it was signed for
    /// (which is what the page shows).
    async fn check(
        &self,
        ns: &str,
        name: &str,
        token: &str,
    ) -> Result<(Claims, Incident, Shown), Refusal> {
        let key = self.key.as_ref().ok_or(Refusal::Disabled)?;
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let claims = key.verify(token, now)?;
        if claims.namespace != ns || claims.name != name {
            return Err(Refusal::OtherIncident);
        }
        let incident = self
            .incident(ns, name)
            .await
            .map_err(|_| Refusal::NotWaiting)?
            .filter(|i| i.metadata.uid.as_deref() == Some(claims.uid.as_str()))
            .ok_or(Refusal::NotWaiting)?;
        if used(&incident, &claims) {
            return Err(Refusal::Used);
        }
        let shown = waiting_approval(&incident)
            .map(|approval| Shown::of(&approval))
            .filter(|shown| shown.step == claims.step && shown.hash == claims.action_hash)
            .ok_or(Refusal::NotWaiting)?;
        Ok((claims, incident, shown))
    }

    async fn incident(&self, ns: &str, name: &str) -> Result<Option<Incident>, String> {
        let incidents: Api<Incident> = Api::namespaced(self.client.clone(), ns);
        call(incidents.get_opt(name))
            .await
            .map_err(|e| e.to_string())
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .approval_links
            .with_label_values(&[outcome])
            .inc();
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        self.count(refusal.label());
        let status = match refusal {
            Refusal::Malformed => StatusCode::BAD_REQUEST,
            Refusal::BadSignature | Refusal::OtherIncident => StatusCode::FORBIDDEN,
            Refusal::Expired => StatusCode::GONE,
            Refusal::Used | Refusal::NotWaiting => StatusCode::CONFLICT,
            Refusal::Disabled => StatusCode::NOT_FOUND,
        };
        page(
            status,
            "Refused",
            &format!(
                "<h1>Refused</h1><p>{}</p><p>Nothing was done.</p>",
                refusal.explain()
            ),
        )
    }
}

/// Whether the step was answered through this very link.
fn used(incident: &Incident, claims: &Claims) -> bool {
    incident.status.as_ref().is_some_and(|s| {
        s.actions.iter().any(|a| {
            a.step == claims.step
                && a.approver
                    .as_ref()
                    .is_some_and(|who| who.link_id.as_deref() == Some(claims.id.as_str()))
        })
    })
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>remediator: {}</title>\
         <meta name=\"referrer\" content=\"no-referrer\"></head><body>{body}</body></html>",
        escape(title)
    );
    (
        status,
        [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            (
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
        ],
        Html(html),
    )
        .into_response()
}

/// Text shown whole: left to right whatever its letters, long lines
/// folded, never off screen.
fn block(text: &str) -> String {
    format!(
        "<pre style=\"white-space:pre-wrap;overflow-wrap:anywhere\"><bdo dir=\"ltr\">{}</bdo></pre>",
        escape(text)
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
