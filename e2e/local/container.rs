//! The sandbox where a cluster runs it: the sidecar (`remediator sandbox
//! serve`) inside a container started as the chart's securityContext
//! starts it. There is no container runtime here, so util-linux makes the
//! conditions: new mount and PID namespaces with their own /proc, runc's
//! default masked and read-only paths over it (or none, as with
//! `procMount: Unmasked`), a read-only root with the sidecar's volumes
//! bound writable, then uid 65532 (as root; otherwise a user namespace maps
//! the caller to it), no capabilities and no_new_privs. No seccomp filter:
//! that takes a runtime (docs/kubernetes.md has the runs under runc).
//!
//! Beside the sidecar, as in a Pod, runs a process of the container with a
//! canary in its environment. The test judges by the world what the
//! sidecar reports and what hostile commands get: every layer it reports
//! must hold, and what it reports missing must be what the kernel refused.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use remediator::action::Action;
use remediator::protocol::Observation;
use remediator::risk::{Classifier, Gate, GatePolicy, RiskLevel};
use remediator::sandbox::{Containment, Identity, Layer};
use remediator::scenario::{Catalog, Launch, RunningService};
use remediator::workspace::{Remote, Workspace};

use crate::remediator_bin;

/// The uid the chart's Pods run as.
const POD_UID: u32 = 65532;
const INCIDENT: &str = "6f1c2a7e-0000-4000-8000-00000000c0de";
const CANARY_TEXT: &str = "canary: nobody may change this\n";

/// Paths runc masks and makes read-only by default
/// (libcontainer/specconv.Example; containerd's oci.WithDefaults).
const CONTAINER_SETUP: &str = r#"
set -eu
if [ "$MASKED" = 1 ]; then
  for path in /proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats \
      /proc/timer_list /proc/timer_stats /proc/sched_debug /proc/scsi /sys/firmware \
      /sys/devices/virtual/powercap; do
    if [ -d "$path" ]; then
      mount -t tmpfs -o ro,nosuid,nodev,noexec tmpfs "$path"
    elif [ -e "$path" ]; then
      mount --bind /dev/null "$path"
    fi
  done
  for path in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
    if [ -e "$path" ]; then
      mount --bind "$path" "$path"
      mount -o remount,bind,ro "$path"
    fi
  done
fi
for dir in $WRITABLE; do
  mount --bind "$dir" "$dir"
done
if [ "$REAL_ROOT" = 1 ]; then
  mount -o remount,bind,ro /
  drop="setpriv --reuid $POD_UID --regid $POD_UID --clear-groups --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs --"
else
  # The caller's own user namespace: / keeps the flags it is locked with.
  mount -o remount,bind,ro,relatime / || mount -o remount,bind,ro /
  drop="unshare --user --map-user=$POD_UID --map-group=$POD_UID -- setpriv --no-new-privs --"
fi
$drop env -i BYSTANDER_CANARY="$BYSTANDER_CANARY" sleep "$BYSTANDER_ARG" &
echo "$!" > "$HANDOFF/bystander.pid"
# This shell stays PID 1: unshare's --kill-child reaches it (a process
# that changed its uid would have lost that signal), and with it the
# whole PID namespace goes.
$drop env -i PATH=/usr/local/bin:/usr/bin:/bin TMPDIR="$SIDECAR_TMP" SIDECAR_CANARY="$SIDECAR_CANARY" "$@" &
wait "$!"
"#;

/// Why the container cannot be emulated here, if it cannot.
fn unavailable() -> Option<String> {
    for tool in ["unshare", "setpriv", "mount", "curl"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    let userns = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .stderr(Stdio::piped())
        .output();
    match userns {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "the kernel gives no user namespaces here ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    }
}

fn real_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The remediator binary where uid 65532 can run it: the build's own when
/// every directory up to it lets others through, else a copy.
fn pod_binary() -> PathBuf {
    static COPY: OnceLock<(Option<tempfile::TempDir>, PathBuf)> = OnceLock::new();
    let (_, path) = COPY.get_or_init(|| {
        let built = remediator_bin();
        let open = |p: &Path, bits: u32| {
            std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & bits == bits)
        };
        let reachable = open(&built, 0o005) && built.ancestors().skip(1).all(|d| open(d, 0o001));
        if !real_root() || reachable {
            return (None, built);
        }
        let dir = tempfile::Builder::new()
            .prefix("remediator-pod-bin-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.path().join("remediator");
        std::fs::copy(&built, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        (Some(dir), copy)
    });
    path.clone()
}

/// A directory the Pod's user owns (as root) or the caller (mapped to it).
fn pod_dir(path: &Path, mode: u32) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    if real_root() {
        nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(POD_UID)),
            Some(nix::unistd::Gid::from_raw(POD_UID)),
        )
        .unwrap();
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

/// One emulated scenario Pod: the service outside, the sidecar and a
/// bystander in the container.
struct Pod {
    sidecar: tokio::process::Child,
    remote: Remote,
    service: RunningService,
    /// Volumes and files of the test: state, token, tmp, handoff, outside.
    dir: tempfile::TempDir,
    token: String,
    listener: TcpListener,
    bystander_arg: String,
    bystander_canary: String,
    sidecar_canary: String,
}

impl Pod {
    /// `id` tells this Pod's processes apart from another test's.
    async fn start(masked: bool, id: u32) -> Self {
        let mut launch = Launch::through_remediator(pod_binary());
        if real_root() {
            launch.identity = Some(Identity {
                uid: POD_UID,
                gid: POD_UID,
            });
        }
        let service = launch
            .start(&Catalog::builtin(), "stale_lockfile")
            .await
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("remediator-pod-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = pod_dir(&dir.path().join("state"), 0o700);
        let tmp = pod_dir(&dir.path().join("tmp"), 0o1777);
        let handoff = pod_dir(&dir.path().join("handoff"), 0o755);
        // A volume outside the root anyone may write: only the sandbox
        // stands between a command and the canary in it.
        let outside = pod_dir(&dir.path().join("outside"), 0o777);
        std::fs::write(outside.join("canary.txt"), CANARY_TEXT).unwrap();
        std::fs::set_permissions(
            outside.join("canary.txt"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let token = remediator::tokens::generate();
        let token_dir = pod_dir(&dir.path().join("token"), 0o755);
        std::fs::write(token_dir.join("token"), &token).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        // A sleep no other process has: its argument names it.
        let unique = format!("{}{id}", std::process::id());
        let bystander_arg = format!("4242{unique}");
        let bystander_canary = format!("bystander-canary-{unique}");
        let sidecar_canary = format!("sidecar-canary-{unique}");
        let writable = [&service.root, &state, &tmp, &handoff, &outside]
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let mut namespaces = vec![
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
        ];
        if !real_root() {
            namespaces.splice(0..0, ["--user", "--map-root-user"]);
        }
        let mut sidecar = tokio::process::Command::new("unshare")
            .args(&namespaces)
            .args(["sh", "-c", CONTAINER_SETUP, "container"])
            .arg(pod_binary())
            .args(["sandbox", "serve", "--incident-uid", INCIDENT])
            .arg("--listen")
            .arg(address.to_string())
            .arg("--token-file")
            .arg(token_dir.join("token"))
            .arg("--root")
            .arg(&service.root)
            .arg("--service")
            .arg(service.address.to_string())
            .arg("--state-dir")
            .arg(state.join("sandbox"))
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("MASKED", if masked { "1" } else { "0" })
            .env("REAL_ROOT", if real_root() { "1" } else { "0" })
            .env("POD_UID", POD_UID.to_string())
            .env("WRITABLE", writable)
            .env("HANDOFF", &handoff)
            .env("SIDECAR_TMP", &tmp)
            .env("BYSTANDER_ARG", &bystander_arg)
            .env("BYSTANDER_CANARY", &bystander_canary)
            .env("SIDECAR_CANARY", &sidecar_canary)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // The sidecar says so after its probe, just before it listens.
        let mut lines = tokio::io::BufReader::new(sidecar.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.starts_with("sandbox for incident") {
                        break;
                    }
                }
                _ => {
                    let status = sidecar.wait().await;
                    panic!("the emulated container's sidecar did not start ({status:?}):\n{seen}");
                }
            }
        }
        // The rest is drained so the sidecar never blocks on its stderr.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        // Listening follows at once; until then a connection is refused.
        while std::net::TcpStream::connect(address).is_err() {
            if let Ok(Some(status)) = sidecar.try_wait() {
                panic!("the sidecar exited before listening: {status}");
            }
            tokio::task::yield_now().await;
        }
        Self {
            sidecar,
            remote: Remote::new(
                format!("http://{address}"),
                &token,
                INCIDENT,
                Duration::from_secs(60),
            ),
            service,
            dir,
            token,
            listener,
            bystander_arg,
            bystander_canary,
            sidecar_canary,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The bystander's pid in the container's PID namespace.
    fn bystander_pid(&self) -> String {
        std::fs::read_to_string(self.path("handoff/bystander.pid"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Runs `command` through the sidecar as the operator would, with a
    /// gate that lets anything up to HIGH through: the kernel alone.
    async fn run(&self, step: u32, command: &str) -> Observation {
        let gate = Gate::new(
            Classifier::new(&self.service.root, self.service.address.port()),
            GatePolicy {
                max_risk: RiskLevel::High,
                ..GatePolicy::default()
            },
        );
        let action = Action::Exec(command.into());
        let permit = gate
            .permit(step, &action, None, None)
            .unwrap_or_else(|r| panic!("the permissive gate refused {command}: {r:?}"));
        self.remote
            .run(&permit)
            .await
            .unwrap_or_else(|e| panic!("step {step} `{command}` did not run: {e}"))
    }

    /// Whether a connection reached the test's listener (pending in its
    /// backlog: the command that made it has returned).
    fn listener_reached(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.sidecar.start_kill();
    }
}

/// Host processes whose command line has `arg` as an argument.
fn processes_with_arg(arg: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let mut cmdline = Vec::new();
        if std::fs::File::open(entry.path().join("cmdline"))
            .and_then(|mut f| f.read_to_end(&mut cmdline))
            .is_ok()
            && cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

fn everything(o: &Observation) -> String {
    format!("{}\n{}", o.stdout, o.stderr)
}

/// What the sidecar reports, and every hostile command judged by the world
/// against it.
async fn hostile_commands_fail_as_reported(pod: &Pod) -> Containment {
    let containment = pod.remote.containment().await.unwrap();
    let held = |layer: Layer| containment.has(layer);
    let label = containment.summary();
    let root = &pod.service.root;

    // A control: commands run, write in the root and reach the service.
    let control = pod
        .run(1, "echo inside > inside.txt && cat inside.txt && id -u")
        .await;
    assert_eq!(control.exit_code, Some(0), "{control:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("inside.txt")).unwrap(),
        "inside\n"
    );
    let service = pod
        .run(
            2,
            &format!(
                "curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{}/health",
                pod.service.address.port()
            ),
        )
        .await;
    assert!(
        service.stdout.starts_with('2') || service.stdout.starts_with('5'),
        "the service port is not forwarded: {service:?}"
    );

    // Writes outside the root, in a volume the container may write.
    let outside = pod.path("outside");
    let o = outside.display();
    let wrote = pod
        .run(
            3,
            &format!("echo pwned > {o}/canary.txt; touch {o}/created; rm -f {o}/canary.txt"),
        )
        .await;
    let canary = std::fs::read_to_string(outside.join("canary.txt")).ok();
    let created = outside.join("created").exists();
    if held(Layer::LandlockFs) {
        assert_eq!(
            canary.as_deref(),
            Some(CANARY_TEXT),
            "{label}: the canary outside the root changed: {wrote:?}"
        );
        assert!(!created, "{label}: a file appeared outside the root");
    }

    // The sidecar's token and state, and the environments of the sidecar
    // and of the other process in the container.
    let secrets = pod
        .run(
            4,
            &format!(
                "cat {token}; cat {state}/sandbox/*; for f in /proc/[0-9]*/environ; do cat $f; echo; done; ps e -ww -A",
                token = pod.path("token/token").display(),
                state = pod.path("state").display(),
            ),
        )
        .await;
    let seen = everything(&secrets);
    if held(Layer::LandlockFs) {
        assert!(!seen.contains(&pod.token), "{label}: the token was read");
        for canary in [&pod.bystander_canary, &pod.sidecar_canary] {
            assert!(
                !seen.contains(canary.as_str()),
                "{label}: an environment was read: {seen}"
            );
        }
    }

    // Egress to a listener on the host's loopback.
    let port = pod.listener.local_addr().unwrap().port();
    let egress = pod
        .run(5, &format!("curl -s -m 5 http://127.0.0.1:{port}/"))
        .await;
    if held(Layer::Netns) || held(Layer::LandlockNet) {
        assert!(
            !pod.listener_reached(),
            "{label}: the listener outside got a connection: {egress:?}"
        );
    }

    // The other process of the container: listed only without a private
    // /proc, never killed, and nothing a command starts outlives it.
    let listing = pod
        .run(
            6,
            "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done",
        )
        .await;
    let listed = listing.stdout.contains(&pod.bystander_arg);
    assert_eq!(
        listed,
        !held(Layer::Pidns),
        "{label}: the container's other process is {} in the sandbox's /proc: {listing:?}",
        if listed { "listed" } else { "not listed" }
    );
    let bystander = processes_with_arg(&pod.bystander_arg);
    assert_eq!(bystander.len(), 1, "the bystander is not running");
    let killed = pod
        .run(
            7,
            &format!(
                "kill -9 {}; pkill -9 sleep; killall -9 sleep",
                pod.bystander_pid()
            ),
        )
        .await;
    if held(Layer::LandlockScope) || held(Layer::Pidns) {
        assert_eq!(
            processes_with_arg(&pod.bystander_arg),
            bystander,
            "{label}: the container's other process was killed: {killed:?}"
        );
    }
    let survivor = format!("{}7", pod.bystander_arg);
    pod.run(
        8,
        &format!("sleep {survivor} & (setsid sleep {survivor} &)"),
    )
    .await;
    assert!(
        processes_with_arg(&survivor).is_empty(),
        "{label}: a process outlived its command"
    );
    containment
}

fn missing_reason(containment: &Containment, layer: Layer) -> Option<&str> {
    containment
        .missing
        .iter()
        .find(|m| m.layer == layer)
        .map(|m| m.reason.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_masked_proc_the_private_proc_is_reported_missing_and_the_rest_holds() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED: cannot emulate a container: {why}");
        return;
    }
    let pod = Pod::start(true, 1).await;
    let containment = hostile_commands_fail_as_reported(&pod).await;
    if !containment.has(Layer::Userns) {
        eprintln!(
            "SKIPPED: no user namespace inside the emulated container here: {}",
            containment.summary()
        );
        return;
    }
    let reason = missing_reason(&containment, Layer::Pidns).unwrap_or_else(|| {
        panic!(
            "pidns claimed under a masked /proc: {}",
            containment.summary()
        )
    });
    assert!(reason.contains("mount(proc): EPERM"), "{reason}");
    assert!(
        reason.contains("/proc/"),
        "the masked paths are not named: {reason}"
    );
    assert!(reason.contains("procMount: Unmasked"), "{reason}");
    // The private /tmp and /run do not depend on /proc.
    assert!(containment.has(Layer::Mntns), "{}", containment.summary());
    assert!(
        !containment.is_full(),
        "the gate must cap: {}",
        containment.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_unmasked_proc_the_container_costs_no_layer() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED: cannot emulate a container: {why}");
        return;
    }
    let pod = Pod::start(false, 2).await;
    let containment = hostile_commands_fail_as_reported(&pod).await;
    // Whatever this machine gives outside a container, it gives inside.
    let host = crate::sandbox().await;
    assert_eq!(
        containment.layers,
        host.containment().layers,
        "inside: {}; outside: {}",
        containment.summary(),
        host.containment().summary()
    );
}
