//! What the walk tracks: the working directory through `cd` (which may
//! fail), subshells, branches and loops, and the values of variables the
//! script assigns.

use super::SecurityRisk::{High, Low, Medium, Unknown};
use super::tests::risk_of;

#[test]
fn cd_is_followed() {
    for (command, want) in [
        ("cd data && ls", Low),
        // If `cd data` fails, `cd ..` leaves the root.
        ("cd data; cd ..; rm -f service.lock", High),
        ("cd data; cd /srv/incident/root; rm -f service.lock", Medium),
        ("cd /etc && rm -f passwd", High),
        ("cd ..; cat service.conf", Medium),
        ("cd .. && ls", Medium),
        ("(cd /etc); rm -f service.lock", Medium),
        ("if test -d x; then cd /etc; fi; rm -f passwd", High),
        ("cd /etc || exit; ls", Medium),
        ("pushd data && ls && popd", Low),
        ("popd; cat service.conf", High),
        ("cd; cat notes", High),
        ("cd /srv/incident/root/data && touch ready", Medium),
        ("env -C /etc cat hosts", Medium),
        ("env --chdir=data touch x", Medium),
        // A loop that climbs: after it, the directory is not known.
        ("while true; do cd ..; done; ls", Medium),
        ("while true; do cd ..; done; rm -f service.lock", High),
    ] {
        assert_eq!(risk_of(command), want, "{command}");
    }
}

#[test]
fn variables_assigned_in_the_script_are_followed() {
    for (command, want) in [
        ("F=service.log; tail -n 5 \"$F\"", Low),
        ("F=/etc/shadow; cat $F", High),
        ("D=/etc; rm -f \"$D/passwd\"", High),
        ("for f in *.log run/*.pid; do cat \"$f\"; done", Low),
        ("for f in service.log /etc/hosts; do cat $f; done", Medium),
        ("if true; then F=/etc/shadow; else F=x; fi; cat $F", High),
        ("F=x; F=$F/..; cat $F", High),
        ("cat \"$UNSET_ANYWHERE\"", High),
        ("ls \"$UNSET_ANYWHERE\"", Medium),
        ("echo \"$HOME\"", Low),
        ("X=1 ls", Unknown),
        ("LC_ALL=C ls", Low),
    ] {
        assert_eq!(risk_of(command), want, "{command}");
    }
}

#[test]
fn both_shell_grammars_are_read() {
    // dash runs `cmd &>f` as `cmd &` then `>f`.
    assert_eq!(risk_of("ls &>/dev/null"), High);
    assert_eq!(risk_of("ls >/dev/null 2>&1"), Low);
    assert_eq!(risk_of("echo $'\\x41'"), High);
    assert_eq!(risk_of("echo {a,b}"), High);
    assert_eq!(risk_of("[[ -f service.conf ]] && cat service.conf"), Low);
}
