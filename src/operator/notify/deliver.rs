//! Sends the notices an incident owes: each in its own task, so a slow or
//! dead webhook never holds a reconcile; a few attempts with backoff, each
//! bounded; then the outcome recorded in status through the one status
//! writer. A webhook that keeps failing sets a condition and nothing else:
//! the incident goes on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::due::{self, Due};
use super::links::{Claims, LinkKey};
use super::notice::{self, Links};
use crate::crd::{Incident, NoticeEvent, NoticeRecord, NotifySpec, PendingApproval};
use crate::operator::bounded::call;
use crate::operator::engine::Engine;
use crate::operator::metrics::Metrics;
use crate::operator::status_writer::{Change, StatusWriter};
use crate::protocol::IncidentKey;

/// How notices are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    /// Before the second attempt; doubled each time.
    pub first_backoff: Duration,
    /// One attempt's limit.
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Where a webhook's notices go: its host, resolved once and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub host: String,
    pub address: std::net::SocketAddr,
}

/// Addresses notices never go to: the node's own loopback (unless
/// allowed, for local development), link-local (cloud metadata services
/// live there), unspecified, multicast and broadcast.
fn forbidden(ip: std::net::IpAddr, allow_loopback: bool) -> bool {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    // NAT64 (64:ff9b::/96) carries an IPv4 address to judge as such.
    let ip = match ip {
        IpAddr::V6(v6) if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] => {
            let [.., a, b, c, d] = v6.octets();
            IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
        }
        other => other,
    };
    // Cloud metadata services outside link-local (Alibaba, AWS over IPv6).
    let metadata: [IpAddr; 2] = [
        IpAddr::V4(std::net::Ipv4Addr::new(100, 100, 100, 200)),
        IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    ];
    if metadata.contains(&ip) {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            (v4.is_loopback() && !allow_loopback)
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            (v6.is_loopback() && !allow_loopback)
                || v6.is_unicast_link_local()
                || v6.is_unspecified()
                || v6.is_multicast()
        }
    }
}

/// Resolves a webhook URL's host once and refuses it if any address it
/// has is one notices never go to; the address notices are then sent to.
pub async fn destination(url: &reqwest::Url, allow_loopback: bool) -> Result<Pinned, String> {
    let host = url
        .host_str()
        .ok_or("the webhook URL has no host")?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| "the webhook's host does not resolve".to_string())?
        .collect();
    if let Some(bad) = addresses.iter().find(|a| forbidden(a.ip(), allow_loopback)) {
        return Err(format!(
            "the webhook's host resolves to {}, a loopback, link-local or other address notices are never sent to",
            bad.ip()
        ));
    }
    let address = *addresses
        .first()
        .ok_or("the webhook's host has no address")?;
    Ok(Pinned { host, address })
}

/// Signs approve/reject links for the URL people reach the operator at.
#[derive(Debug, Clone)]
pub struct LinkSigner {
    pub key: LinkKey,
    /// E.g. `https://remediator.example.com`, no trailing slash.
    pub base_url: String,
}

impl LinkSigner {
    /// The approve and reject links for the action waiting at `pending`,
    /// sent to `channel`, expiring with the wait.
    pub fn links(&self, incident: &Incident, pending: &PendingApproval, channel: &str) -> Links {
        let uid = incident.metadata.uid.clone().unwrap_or_default();
        let hash = pending.action_hash.clone().unwrap_or_default();
        let expires = pending
            .deadline
            .as_ref()
            .map_or(pending.requested_at.0.as_second() + 3600, |d| {
                d.0.as_second()
            });
        let link = |approve: bool| {
            let claims = Claims {
                namespace: incident.namespace().unwrap_or_default(),
                name: incident.name_any(),
                uid: uid.clone(),
                step: pending.step,
                action_hash: hash.clone(),
                approve,
                expires,
                channel: channel.to_string(),
                id: Claims::id_for(&uid, pending.step, &hash, approve, channel),
            };
            let token = self.key.sign(&claims);
            format!(
                "{}{}",
                self.base_url.trim_end_matches('/'),
                super::links::path(&claims, &token)
            )
        };
        Links {
            approve: link(true),
            reject: link(false),
        }
    }
}

pub struct Notifier {
    client: Client,
    writer: Arc<StatusWriter>,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    signer: Option<LinkSigner>,
    /// Webhooks on loopback addresses are allowed (local development).
    allow_loopback: bool,
    retry: Retry,
    /// Notices this process has sent or is sending, by incident: status
    /// may lag behind the watch, and nothing is sent twice because of that.
    taken: Mutex<HashMap<IncidentKey, HashSet<String>>>,
}

impl Notifier {
    pub fn new(
        client: Client,
        writer: Arc<StatusWriter>,
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        signer: Option<LinkSigner>,
        retry: Retry,
        allow_loopback: bool,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client,
            writer,
            engine,
            metrics,
            signer,
            allow_loopback,
            retry,
            taken: Mutex::default(),
        })
    }

    /// Starts sending every notice `incident` owes its `webhooks`.
    pub fn dispatch(self: &Arc<Self>, incident: &Incident, webhooks: &[NotifySpec]) {
        let Some(status) = incident.status.as_ref() else {
            return;
        };
        if webhooks.is_empty() {
            return;
        }
        let uid = incident.metadata.uid.clone().unwrap_or_default();
        let key = IncidentKey {
            namespace: incident.namespace().unwrap_or_default(),
            name: incident.name_any(),
        };
        let owed = {
            let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
            let taken = taken.entry(key).or_default();
            let owed = due::due(&uid, status, webhooks, |id| taken.contains(id));
            for due in &owed {
                taken.insert(due.id.clone());
            }
            owed
        };
        for due in owed {
            let notifier = self.clone();
            let incident = incident.clone();
            tokio::spawn(async move { notifier.send(incident, due).await });
        }
    }

    /// Forgets an incident that is gone.
    pub fn forget(&self, key: &IncidentKey) {
        self.taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    async fn send(&self, incident: Incident, due: Due) {
        let links = match (&self.signer, due.happened.event) {
            (Some(signer), NoticeEvent::ApprovalRequested) => incident
                .status
                .as_ref()
                .and_then(|s| s.pending_approval.as_ref())
                .map(|pending| signer.links(&incident, pending, &due.webhook.name)),
            _ => None,
        };
        let body = notice::body(&incident, &due, links.as_ref());
        let destination = match self.webhook_url(&incident, &due.webhook).await {
            Ok(url) => destination(&url, self.allow_loopback)
                .await
                .map(|pinned| (url, pinned)),
            Err(why) => Err(why),
        };
        let (attempts, error) = match destination {
            Ok((url, pinned)) => self.post(&url, pinned, &due.id, &body).await,
            Err(why) => (0, Some(why)),
        };
        let outcome = if error.is_none() {
            "delivered"
        } else {
            "failed"
        };
        self.metrics
            .notices
            .with_label_values(&[due.happened.event.name(), outcome])
            .inc();
        if let Some(why) = &error {
            tracing::warn!(
                incident = %incident.name_any(),
                webhook = %due.webhook.name,
                event = due.happened.event.name(),
                "notice not delivered: {why}"
            );
        }
        let record = NoticeRecord {
            id: due.id,
            webhook: due.webhook.name.clone(),
            event: due.happened.event,
            step: due.happened.step,
            delivered: error.is_none(),
            attempts,
            at: Time(k8s_openapi::jiff::Timestamp::now()),
            error: error.map(|e| crate::action::truncate_chars(&e, 300)),
        };
        self.record(&incident, record).await;
    }

    /// The webhook's URL from its Secret (never logged: it is a credential).
    async fn webhook_url(
        &self,
        incident: &Incident,
        webhook: &NotifySpec,
    ) -> Result<reqwest::Url, String> {
        let namespace = incident.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let reference = &webhook.url_secret_ref;
        let secret = call(secrets.get_opt(&reference.name))
            .await
            .map_err(|e| format!("reading Secret {}: {e}", reference.name))?
            .ok_or_else(|| format!("Secret {} does not exist", reference.name))?;
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&reference.key))
            .ok_or_else(|| format!("Secret {} has no key {}", reference.name, reference.key))?;
        let url = String::from_utf8(value.0.clone()).map_err(|_| {
            format!(
                "Secret {} key {} is not text",
                reference.name, reference.key
            )
        })?;
        match reqwest::Url::parse(url.trim()) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(parsed),
            _ => Err(format!(
                "Secret {} key {} is not an http(s) URL",
                reference.name, reference.key
            )),
        }
    }

    /// POSTs `body`, retrying; the attempts made and the last error.
    async fn post(
        &self,
        url: &reqwest::Url,
        pinned: Pinned,
        id: &str,
        body: &serde_json::Value,
    ) -> (u32, Option<String>) {
        // Connect where the check resolved, not where a second lookup
        // might point (DNS rebinding).
        let http = match reqwest::Client::builder()
            .timeout(self.retry.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect wherever it resolves the host.
            .no_proxy()
            .resolve(&pinned.host, pinned.address)
            .build()
        {
            Ok(http) => http,
            Err(_) => return (0, Some("cannot build the HTTP client".into())),
        };
        let mut backoff = self.retry.first_backoff;
        let mut last = None;
        for attempt in 1..=self.retry.attempts.max(1) {
            let sent = http
                .post(url.clone())
                .header("content-type", "application/json")
                .header("x-remediator-notice-id", id)
                .body(body.to_string())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => return (attempt, None),
                // The error never quotes the URL: it is a credential.
                Ok(response) => last = Some(format!("the webhook answered {}", response.status())),
                Err(e) if e.is_timeout() => {
                    last = Some(format!("no answer within {:?}", self.retry.timeout))
                }
                Err(e) if e.is_connect() => last = Some("cannot connect to the webhook".into()),
                Err(_) => last = Some("the request to the webhook failed".into()),
            }
            if attempt < self.retry.attempts {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        (self.retry.attempts.max(1), last)
    }

    /// Writes the outcome into the incident's status, under its lock.
    async fn record(&self, incident: &Incident, record: NoticeRecord) {
        let key = IncidentKey {
            namespace: incident.namespace().unwrap_or_default(),
            name: incident.name_any(),
        };
        let incidents: Api<Incident> = Api::namespaced(self.client.clone(), &key.namespace);
        for _ in 0..5 {
            let written = {
                let _exclusive = self.engine.exclusive(&key).await;
                match call(incidents.get_opt(&key.name)).await {
                    Ok(Some(fresh)) if fresh.metadata.uid == incident.metadata.uid => {
                        let change = Change::Noticed {
                            record: record.clone(),
                        };
                        self.writer
                            .write(&fresh, change)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    // Deleted (or replaced by a namesake): nothing to record on.
                    Ok(_) => return,
                    Err(e) => Err(e.to_string()),
                }
            };
            match written {
                Ok(()) => return,
                Err(e) => tracing::warn!(incident = %key, "recording a notice: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> reqwest::Url {
        reqwest::Url::parse(url).unwrap()
    }

    #[tokio::test]
    async fn notices_never_go_to_loopback_or_link_local_addresses() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/x",
            "http://0.0.0.0:8080/",
            "http://127.0.0.1:6443/",
            "http://localhost:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://224.0.0.1/",
            "http://100.100.100.200/latest/meta-data",
            "http://[fd00:ec2::254]/latest/meta-data",
            "http://[64:ff9b::a9fe:a9fe]/",
        ] {
            let refused = destination(&parse(url), false).await;
            assert!(refused.is_err(), "{url}: {refused:?}");
        }
        assert!(
            destination(&parse("http://169.254.169.254/"), true)
                .await
                .is_err()
        );
        let pinned = destination(&parse("http://127.0.0.1:9/hook"), true)
            .await
            .unwrap();
        assert_eq!(pinned.address, "127.0.0.1:9".parse().unwrap());
        let pinned = destination(&parse("http://10.1.2.3/hook"), false)
            .await
            .unwrap();
        assert_eq!(pinned.address, "10.1.2.3:80".parse().unwrap());
    }
}
