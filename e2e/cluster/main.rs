//! The cluster tier: the CRDs, the examples and the API contracts the
//! operator relies on, checked against a real kube-apiserver, etcd and
//! kube-controller-manager (`scripts/control-plane`), one control plane per
//! test binary and one namespace per test.
//!
//! `./scripts/test` installs the control plane (cached); without it a plain
//! `cargo test` skips this tier, CI never does.

mod chart;
mod closed_loop;
mod control_plane;
mod crds;
mod garbage_collection;
#[path = "../common/jaeger.rs"]
mod jaeger;
mod kubectl;
mod kubelet;
mod mcp;
mod notify;
mod operator;
mod printer_columns;
mod prometheus;
mod status_subresource;
mod traces;
mod validation;
