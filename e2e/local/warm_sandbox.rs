//! The warm sandbox (one helper per incident, a fresh op stage per
//! command) against what only a long-lived helper could let through: a
//! command that outlives its step, signals or reads the helper, leaves
//! something for the next step in the scratch directories, or exhausts the
//! process limit. And the cold path's attacks, through both paths, judged
//! by the world: the canary outside is unchanged, the listener got
//! nothing, no process is left.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use remediator::sandbox::{Job, Op, Outcome, Sandbox, WarmSandbox};
use remediator::scratch::ScratchDir;

/// A service address nothing listens on: these ops never reach it.
fn service() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

fn job(root: &Path) -> Job<'_> {
    Job {
        root,
        service: service(),
        env: vec![("PATH".into(), remediator::sandbox::SAFE_PATH.into())],
        timeout: Duration::from_secs(20),
        max_output_bytes: 64 * 1024,
    }
}

/// Exit code, stdout and stderr of `command`.
async fn exec(warm: &WarmSandbox, root: &Path, command: &str) -> (Option<i32>, String, String) {
    let op = Op::Exec {
        command: command.into(),
    };
    match warm.run(job(root), op).await {
        Ok(Outcome::Finished {
            exit_code,
            stdout,
            stderr,
            ..
        }) => (exit_code, stdout, stderr),
        other => panic!("{command}: {other:?}"),
    }
}

/// `command` exits 0 printing exactly `expected`: the helper still serves.
async fn assert_prints(warm: &WarmSandbox, root: &Path, command: &str, expected: &str) {
    let (code, stdout, stderr) = exec(warm, root, command).await;
    assert_eq!((code, stdout.as_str()), (Some(0), expected), "{stderr}");
}

/// `command`, given half a second, is stopped as timed out.
async fn assert_times_out(warm: &WarmSandbox, root: &Path, command: &str) {
    let job = Job {
        timeout: Duration::from_millis(500),
        ..job(root)
    };
    let op = Op::Exec {
        command: command.into(),
    };
    let outcome = warm.run(job, op).await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Finished {
                timed_out: true,
                ..
            }
        ),
        "{command}: {outcome:?}"
    );
}

/// Live processes whose command line holds `word` as an argument.
fn processes_with(word: &str) -> usize {
    let mut found = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let mut cmdline = Vec::new();
        if std::fs::File::open(entry.path().join("cmdline"))
            .and_then(|mut f| f.read_to_end(&mut cmdline))
            .is_ok()
            && cmdline.split(|b| *b == 0).any(|a| a == word.as_bytes())
        {
            found += 1;
        }
    }
    found
}

async fn full_sandbox() -> Option<std::sync::Arc<Sandbox>> {
    let sandbox = crate::sandbox().await;
    if sandbox.containment().is_full() {
        Some(sandbox)
    } else {
        eprintln!(
            "skipped: the warm sandbox needs every layer; here: {}",
            sandbox.containment().summary()
        );
        None
    }
}

/// A warm sandbox on a fresh root, where every layer holds.
struct Fixture {
    sandbox: std::sync::Arc<Sandbox>,
    scratch: ScratchDir,
    root: std::path::PathBuf,
    warm: WarmSandbox,
}

async fn fixture() -> Option<Fixture> {
    let sandbox = full_sandbox().await?;
    let scratch = ScratchDir::create(sandbox.identity()).unwrap();
    let root = scratch.root();
    let warm = sandbox.warm(&root, service());
    Some(Fixture {
        sandbox,
        scratch,
        root,
        warm,
    })
}

/// A directory with `mode` outside the root, and outside /tmp, which the
/// sandbox hides: where a daemon's files or another root could be.
fn outside_the_root(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

/// A file of `content` in `dir` that anyone may write (mode 0666).
fn anyone_may_write(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    path
}

/// A system call's number on this machine, for perl's `syscall()`.
fn syscall_number(x86_64: u32, aarch64: u32) -> u32 {
    if cfg!(target_arch = "aarch64") {
        aarch64
    } else {
        x86_64
    }
}

impl Fixture {
    /// Ends the warm sandbox (and all in it), then removes the root.
    async fn done(self) {
        drop(self.warm);
        self.scratch.remove().await;
    }
}

#[tokio::test]
async fn nothing_an_op_starts_or_leaves_in_scratch_space_reaches_the_next() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    let (code, _, stderr) = exec(
        warm,
        root,
        "sleep 3141 & setsid sleep 3142 & (sleep 3143 &) ; nohup sleep 3144 >/dev/null 2>&1 & \
         echo planted > /tmp/planted && mkdir /tmp/d && echo planted > /tmp/d/planted && echo done",
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    for word in ["3141", "3142", "3143", "3144"] {
        assert_eq!(processes_with(word), 0, "sleep {word} outlived its step");
    }
    let (code, stdout, _) = exec(
        warm,
        root,
        "cat /tmp/planted /tmp/d/planted 2>&1; ls -A /tmp",
    )
    .await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        code.is_some() && !lines.contains(&"planted") && !lines.contains(&"d"),
        "the next op found what the last one left: {stdout}"
    );
    f.done().await;
}

#[tokio::test]
async fn an_op_cannot_signal_stop_or_read_the_warm_helper() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    let (code, stdout, stderr) = exec(
        warm,
        root,
        "cat /proc/1/environ && echo READ-ENVIRON; ls /proc/1/fd && echo LISTED-FD; \
         cat /proc/1/maps >/dev/null && echo READ-MAPS; \
         kill -9 1; kill -STOP 1; \
         for p in /proc/[0-9]*; do [ \"$p\" = /proc/$$ ] || kill -9 \"${p#/proc/}\"; done; \
         kill -9 -1; echo still-here",
    )
    .await;
    for leak in ["READ-ENVIRON", "LISTED-FD", "READ-MAPS"] {
        assert!(!stdout.contains(leak), "{leak}: {stdout}");
    }
    // Its own shell survived, and the op stage answered for it (a killed
    // or stopped op stage answers nothing), then serves the next.
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "still-here\n"),
        "{stderr}"
    );
    assert_prints(warm, root, "echo next", "next\n").await;
    f.done().await;
}

/// An op's /proc lists the op's own processes only: neither the helper
/// that serves the sandbox nor the op stage that forks ops is there to be
/// named, and `$$` is the shell's entry in it.
#[tokio::test]
async fn an_op_sees_only_its_own_processes() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    let (code, stdout, stderr) = exec(
        warm,
        root,
        "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(tr '\\0' ' ' < $p/cmdline)\"; done; \
         echo \"self $(cut -d' ' -f1 /proc/$$/stat) $$\"",
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        !stdout.contains("inner") && lines.len() <= 8,
        "the op sees processes not its own:\n{stdout}"
    );
    let own = lines.last().unwrap().split(' ').collect::<Vec<_>>();
    assert_eq!(
        own[1], own[2],
        "$$ is not the shell's /proc entry: {stdout}"
    );
    f.done().await;
}

#[tokio::test]
async fn an_op_that_exhausts_the_process_limit_leaves_the_next_one_room() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    let (_, _, stderr) = exec(
        warm,
        root,
        "i=0; while [ $i -lt 6000 ]; do sleep 3145 & i=$((i+1)); done; echo $i",
    )
    .await;
    assert!(
        stderr.to_lowercase().contains("fork"),
        "the limit never stopped it: {stderr}"
    );
    assert_eq!(processes_with("3145"), 0, "a sleep outlived its step");
    assert_prints(warm, root, "echo next", "next\n").await;
    f.done().await;
}

/// The cold path's attacks through the warm helper and through the cold
/// path: the world outside is the same afterwards either way.
#[tokio::test]
async fn the_warm_path_holds_what_the_cold_path_holds() {
    let Some(f) = fixture().await else {
        return;
    };
    let (sandbox, warm, root) = (&f.sandbox, &f.warm, &f.root);
    let outside = outside_the_root(0o777);
    let canary = anyone_may_write(outside.path(), "canary.txt", "canary\n");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // A daemon's Unix socket anyone may connect to: Landlock does not
    // guard connecting by path (a red-team review reached one).
    let socket_path = outside.path().join("daemon.sock");
    let unix_listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    unix_listener.set_nonblocking(true).unwrap();
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket_path = socket_path.display().to_string();
    let canary_path = canary.display().to_string();
    let attacks = [
        format!("echo owned > {canary_path}"),
        format!("cat {canary_path}"),
        format!("ln -s {canary_path} link; echo owned > link"),
        format!("exec 3<>/dev/tcp/127.0.0.1/{port}; echo hi >&3"),
        format!("python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}))\""),
        format!(
            "python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.connect('{socket_path}'); s.sendall(b'owned')\""
        ),
        format!("nc -U {socket_path} </etc/hostname"),
        "hostname owned".into(),
        "cat /etc/shadow".into(),
        "sleep 3146 &".into(),
    ];
    for attack in &attacks {
        let (_, stdout, _) = exec(warm, root, attack).await;
        assert!(!stdout.contains("canary"), "warm read outside: {attack}");
        let cold = sandbox
            .run(
                job(root),
                Op::Exec {
                    command: attack.clone(),
                },
            )
            .await
            .unwrap();
        if let Outcome::Finished { stdout, .. } = cold {
            assert!(!stdout.contains("canary"), "cold read outside: {attack}");
        }
    }
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary\n");
    assert!(
        listener.accept().is_err(),
        "the listener outside got a connection"
    );
    assert!(
        unix_listener.accept().is_err(),
        "the Unix socket outside got a connection"
    );
    assert_eq!(processes_with("3146"), 0);
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        "owned\n"
    );
    f.done().await;
}

/// Review (red team): the same uid could lower PID 1's limits with
/// `prlimit`, and every later op of the incident failed.
#[tokio::test]
async fn an_op_cannot_change_the_helpers_limits() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    let (_, stdout, _) = exec(
        warm,
        root,
        "prlimit --pid 1 --nofile=3:3 && echo CHANGED; prlimit --pid 1 --nproc=1:1 && echo CHANGED; \
         prlimit --pid 1 --cpu=0:0 && echo CHANGED; prlimit --pid $$ --nofile=64:64 && echo OWN",
    )
    .await;
    assert!(!stdout.contains("CHANGED"), "{stdout}");
    for _ in 0..3 {
        assert_prints(warm, root, "echo next", "next\n").await;
    }
    f.done().await;
}

/// Review (red team): System V IPC objects and keys one op made were
/// there for the next.
#[tokio::test]
async fn ipc_objects_and_keys_do_not_pass_from_one_op_to_the_next() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    // add_key(2), through perl's syscall().
    let add_key = syscall_number(248, 217);
    let (_, made, _) = exec(
        warm,
        root,
        &format!(
            "ipcmk -M 4096 -p 0666; ipcmk -Q; \
             perl -e 'print syscall({add_key}, \"user\", \"warm-canary\", \"x\", 1, -4) > 0 ? \"KEYED\\n\" : \"refused\\n\"'"
        ),
    )
    .await;
    assert!(!made.contains("KEYED"), "a key was added: {made}");
    let (_, seen, _) = exec(warm, root, "ipcs -m -q; cat /proc/keys").await;
    assert!(
        !seen.contains("0x") && !seen.contains("warm-canary"),
        "the next op saw the last one's objects: {seen}"
    );
    f.done().await;
}

/// Review (red team): on the cold path the command could ptrace PID 1 of
/// its sandbox (same domain, dumpable), clear its parent-death signal and
/// outlive the helper; and read `/proc/1/fd`. Neither path allows it now.
#[tokio::test]
async fn no_op_can_trace_or_open_the_process_that_started_it() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    // PTRACE_ATTACH (16) by ptrace(2).
    let ptrace = syscall_number(101, 117);
    let attack = format!(
        "for p in 1 $PPID; do \
           ls /proc/$p/fd >/dev/null 2>&1 && echo FD-$p; \
           cat /proc/$p/environ >/dev/null 2>&1 && echo ENVIRON-$p; \
           perl -e 'print syscall({ptrace}, 16, $ARGV[0], 0, 0) == 0 ? \"TRACED-$ARGV[0]\\n\" : \"\"' $p; \
         done; echo checked"
    );
    let (_, warm_out, _) = exec(warm, root, &attack).await;
    let cold = f
        .sandbox
        .run(
            job(root),
            Op::Exec {
                command: attack.clone(),
            },
        )
        .await
        .unwrap();
    let Outcome::Finished {
        stdout: cold_out, ..
    } = cold
    else {
        panic!("{cold:?}");
    };
    for (path, out) in [("warm", &warm_out), ("cold", &cold_out)] {
        assert!(out.contains("checked"), "{path}: {out}");
        for leak in ["FD-", "ENVIRON-", "TRACED-"] {
            assert!(!out.contains(leak), "{path}: {out}");
        }
    }
    f.done().await;
}

/// An op that runs past its time is killed with everything it started,
/// and the next op of the incident runs as if nothing happened.
#[tokio::test]
async fn an_op_past_its_time_leaves_nothing_and_the_next_runs() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    let started = std::time::Instant::now();
    assert_times_out(warm, root, "setsid sleep 3147 & exec sleep 3148").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not killed on time"
    );
    for word in ["3147", "3148"] {
        assert_eq!(processes_with(word), 0, "sleep {word} outlived its step");
    }
    assert_prints(warm, root, "echo next", "next\n").await;
    f.done().await;
}

/// An op's output is kept to its cap on both streams with the rest
/// counted; the op ends when its shell does, even while a process it left
/// holds its output open; and one that closes its output and runs on is
/// still stopped at its time.
#[tokio::test]
async fn an_ops_output_is_capped_and_its_end_is_seen_however_it_holds_its_streams() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    let (code, stdout, stderr) = exec(
        warm,
        root,
        "head -c 200000 /dev/zero | tr '\\0' a; head -c 100000 /dev/zero | tr '\\0' b >&2",
    )
    .await;
    let cap = job(root).max_output_bytes;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "{}\n[... {} more bytes truncated]",
            "a".repeat(cap),
            200_000 - cap
        )
    );
    assert_eq!(
        stderr,
        format!(
            "{}\n[... {} more bytes truncated]",
            "b".repeat(cap),
            100_000 - cap
        )
    );

    let (code, stdout, _) = exec(warm, root, "sleep 3150 & echo started").await;
    assert_eq!((code, stdout.as_str()), (Some(0), "started\n"));
    assert_eq!(processes_with("3150"), 0, "sleep 3150 outlived its step");

    assert_times_out(warm, root, "exec >&- 2>&-; sleep 3151").await;
    assert_eq!(processes_with("3151"), 0, "sleep 3151 outlived its step");
    assert_prints(warm, root, "echo next", "next\n").await;
    f.done().await;
}

/// Only IPv4, IPv6 and netlink sockets can be made: not a VM socket
/// (AF_VSOCK, which no network namespace separates), nor a Unix one by
/// path, nor any through io_uring; a socket pair still works (it reaches
/// nothing).
#[tokio::test]
async fn an_op_makes_only_the_sockets_its_namespace_contains() {
    let Some(f) = fixture().await else {
        return;
    };
    let (warm, root) = (&f.warm, &f.root);
    let (code, stdout, stderr) = exec(
        warm,
        root,
        r#"python3 - <<'EOF'
import socket
for name in ['AF_UNIX', 'AF_VSOCK', 'AF_PACKET', 'AF_INET', 'AF_INET6']:
    family = getattr(socket, name, None)
    if family is None:
        continue
    kind = socket.SOCK_RAW if name == 'AF_PACKET' else socket.SOCK_STREAM
    try:
        socket.socket(family, kind).close()
        print(name, 'made')
    except OSError as e:
        print(name, 'refused', e.errno)
a, b = socket.socketpair()
a.sendall(b'x')
print('pair', b.recv(1).decode())
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
# io_uring_setup(2), 425 everywhere: it makes sockets without socket(2).
ring = libc.syscall(425, 4, params)
print('io_uring', 'made' if ring >= 0 else 'refused', ctypes.get_errno())
EOF"#,
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    for line in stdout.lines() {
        let made = line.contains(" made");
        let expected = line.starts_with("AF_INET");
        assert!(made == expected || line == "pair x", "{line}\n{stdout}");
    }
    assert!(stdout.contains("AF_UNIX refused 1\n"), "{stdout}");
    assert!(stdout.contains("io_uring refused 1\n"), "{stdout}");
    assert!(stdout.contains("pair x"), "{stdout}");
    f.done().await;
}

/// Landlock guards contents, not metadata: another incident's root has the
/// same owner as this one's, and a file anyone may write can be touched.
/// Neither changes, through either path (a red-team review set another
/// root's mode to 0 before the view outside the root was made read-only).
#[tokio::test]
async fn nothing_outside_the_root_changes_its_mode_or_times() {
    let Some(f) = fixture().await else {
        return;
    };
    let (sandbox, warm, root) = (&f.sandbox, &f.warm, &f.root);
    let outside = outside_the_root(0o755);
    let other_root = outside.path().join("other-root");
    let other_file = other_root.join("service.conf");
    std::fs::create_dir(&other_root).unwrap();
    std::fs::write(&other_file, "port = 1\n").unwrap();
    if let Some(identity) = sandbox.identity() {
        for path in [&other_root, &other_file] {
            std::os::unix::fs::chown(path, Some(identity.uid), Some(identity.gid)).unwrap();
        }
    }
    let shared = anyone_may_write(outside.path(), "anyone-may-write", "x\n");
    let seen = |path: &Path| {
        let meta = std::fs::metadata(path).unwrap();
        (meta.permissions().mode(), meta.modified().unwrap())
    };
    let before = [seen(&other_root), seen(&other_file), seen(&shared)];
    let attack = format!(
        "chmod 0777 {file}; chmod 0 {other}; touch {shared} {file}; touch -d 1970-01-01 {file}; \
         setfattr -n user.owned -v 1 {file} 2>&1; echo done",
        file = other_file.display(),
        other = other_root.display(),
        shared = shared.display(),
    );
    let (code, stdout, stderr) = exec(warm, root, &attack).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("done"), "{stdout}");
    let cold = sandbox
        .run(job(root), Op::Exec { command: attack })
        .await
        .unwrap();
    assert!(matches!(cold, Outcome::Finished { .. }), "{cold:?}");
    assert_eq!(
        [seen(&other_root), seen(&other_file), seen(&shared)],
        before
    );
    // The root itself stays writable, its metadata included.
    assert_prints(
        warm,
        root,
        "touch made && chmod 0600 made && stat -c %a made",
        "600\n",
    )
    .await;
    f.done().await;
}

/// The helper's outer stage forks the stages below it, which inherit its
/// stdin buffer: it reads its spec through a reader of its own, and a
/// caller that sends more than the spec before the first answer is told
/// so, rather than the inner stage taking the caller's bytes for its own.
#[test]
fn the_helper_refuses_a_caller_that_sends_more_than_the_spec_first() {
    use std::io::{BufRead, Write};
    let root = tempfile::tempdir().unwrap();
    let spec = remediator::sandbox::Spec {
        root: root.path().to_path_buf(),
        service: service(),
        op: Op::Probe,
        env: Vec::new(),
        timeout_ms: 5_000,
        max_output_bytes: 1024,
        required: Vec::new(),
        identity: None,
    };
    let mut helper = std::process::Command::new(crate::remediator_bin())
        .args([remediator::sandbox::HELPER_SUBCOMMAND, "--stage", "outer"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // One write, under PIPE_BUF: the helper reads both lines at once.
    let sent = format!(
        "{}\n{{\"op\":\"early\"}}\n",
        serde_json::to_string(&spec).unwrap()
    );
    assert!(sent.len() < 4096);
    let mut stdin = helper.stdin.take().unwrap();
    stdin.write_all(sent.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::BufReader::new(helper.stdout.take().unwrap())
        .read_line(&mut answer)
        .unwrap();
    drop(stdin);
    let _ = helper.wait();
    let outcome: Outcome = serde_json::from_str(&answer).unwrap();
    assert!(
        matches!(&outcome, Outcome::SetupFailed { message, .. } if message.contains("more than the spec")),
        "{outcome:?}"
    );
}
