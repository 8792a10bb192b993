//! Walks a parsed script the way the shell runs it, carrying what the text
//! tells about the state: every working directory the shell can be in
//! (`cd` is followed, and may fail) and every value a variable assigned in
//! the script can hold. Each simple command is then classified once per
//! working directory and combination of values; the worst result counts.

use std::collections::BTreeSet;

use super::SecurityRisk::{High, Low, Unknown};
use super::commands::{self, EnvName};
use super::context::{Access, Assessment, Ctx};
use super::expand::{self, Field, Vars, World};
use super::paths::{self, Cwd};
use super::shell::{self, Grammar, Piece, ast};

/// How deep `sh -c '...'` is followed.
const MAX_DEPTH: usize = 3;
/// Past this many possible directories the walk stops telling them apart.
const MAX_CWDS: usize = 8;

/// Classifies a script under both grammars `/bin/sh` may have.
pub(super) fn script(ctx: &Ctx, text: &str, positional: &[Field]) -> Assessment {
    if ctx.depth > MAX_DEPTH {
        return Assessment::new(High, "shells nested too deep to follow");
    }
    let mut worst = Assessment::new(Low, "read-only inspection");
    for grammar in [Grammar::Bash, Grammar::Sh] {
        let program = match shell::parse(text, grammar) {
            Ok(program) => program,
            Err(e) => return Assessment::new(High, format!("cannot see through it: {e}")),
        };
        let walker = Walker { ctx };
        let mut state = State::new(ctx.cwd.clone(), positional);
        if ctx.depth == 0 {
            // The workspace runs every command with SERVICE_ROOT set to the
            // root; a nested shell may have been handed another value.
            let root = Field::plain(&ctx.root.display().to_string());
            state.vars.set("SERVICE_ROOT", BTreeSet::from([root]));
        }
        for list in &program.complete_commands {
            worst = worst.max(walker.list(list, &mut state));
        }
    }
    worst
}

#[derive(Debug, Clone, PartialEq)]
struct State {
    cwds: BTreeSet<Cwd>,
    vars: Vars,
}

impl State {
    fn new(cwd: Cwd, positional: &[Field]) -> Self {
        let mut vars = Vars::default();
        for (i, value) in positional.iter().enumerate() {
            vars.set(&i.to_string(), BTreeSet::from([value.clone()]));
        }
        Self {
            cwds: BTreeSet::from([cwd]),
            vars,
        }
    }

    /// Either state may hold from here on.
    fn join(&mut self, other: &State) {
        self.cwds.extend(other.cwds.iter().cloned());
        self.vars.join(&other.vars);
        if self.cwds.len() > MAX_CWDS {
            self.widen();
        }
    }

    /// Stops telling states apart: any directory, no known variable.
    fn widen(&mut self) {
        self.cwds.insert(Cwd::Unknown);
        self.vars.forget_all();
    }
}

fn high(why: impl Into<String>) -> Assessment {
    Assessment::new(High, why)
}

fn low(why: impl Into<String>) -> Assessment {
    Assessment::new(Low, why)
}

struct Walker<'a, 'c> {
    ctx: &'a Ctx<'c>,
}

/// A simple command's parts, decoded.
struct Parts<'p> {
    assigns: Vec<(&'p ast::Assignment, Vec<Piece>)>,
    words: Vec<Vec<Piece>>,
    redirects: Vec<&'p ast::IoRedirect>,
}

impl Walker<'_, '_> {
    fn list(&self, list: &ast::CompoundList, st: &mut State) -> Assessment {
        let mut worst = low("read-only inspection");
        for ast::CompoundListItem(and_or, separator) in &list.0 {
            worst = worst.max(self.and_or(and_or, st));
            if matches!(separator, ast::SeparatorOperator::Async) {
                worst = worst.max(high("runs a command in the background"));
            }
        }
        worst
    }

    /// `a && b || c`: each part may run after any earlier one.
    fn and_or(&self, list: &ast::AndOrList, st: &mut State) -> Assessment {
        let mut worst = self.pipeline(&list.first, st);
        for next in &list.additional {
            let (ast::AndOr::And(pipeline) | ast::AndOr::Or(pipeline)) = next;
            let mut after = st.clone();
            worst = worst.max(self.pipeline(pipeline, &mut after));
            st.join(&after);
        }
        worst
    }

    /// Each command of a real pipeline runs in a subshell of its own.
    fn pipeline(&self, pipeline: &ast::Pipeline, st: &mut State) -> Assessment {
        if let [only] = pipeline.seq.as_slice() {
            return self.command(only, st);
        }
        let mut worst = low("read-only inspection");
        for command in &pipeline.seq {
            worst = worst.max(self.command(command, &mut st.clone()));
        }
        worst
    }

    fn command(&self, command: &ast::Command, st: &mut State) -> Assessment {
        match command {
            ast::Command::Simple(simple) => self.simple(simple, st),
            ast::Command::Compound(compound, redirects) => {
                let opened = self.redirect_list(redirects.as_ref(), st);
                opened.max(self.compound(compound, st))
            }
            ast::Command::Function(f) => high(format!("defines the function {}", f.fname.value)),
            ast::Command::ExtendedTest(test, redirects) => {
                let opened = self.redirect_list(redirects.as_ref(), st);
                opened.max(extended_test(&test.expr))
            }
        }
    }

    fn compound(&self, compound: &ast::CompoundCommand, st: &mut State) -> Assessment {
        use ast::CompoundCommand as C;
        match compound {
            C::BraceGroup(group) => self.list(&group.list, st),
            C::Subshell(sub) => self.list(&sub.list, &mut st.clone()),
            C::ForClause(f) => self.for_loop(f, st),
            C::WhileClause(w) | C::UntilClause(w) => {
                let ast::WhileOrUntilClauseCommand(condition, body, _) = w;
                self.looped(st, |s| {
                    self.list(condition, s).max(self.list(&body.list, s))
                })
            }
            C::IfClause(i) => self.if_clause(i, st),
            C::CaseClause(c) => self.case_clause(c, st),
            C::Arithmetic(a) if shell::arithmetic_is_inert(&a.expr.value) => {
                low("arithmetic on numbers")
            }
            C::Arithmetic(a) => high(format!(
                "arithmetic `{}` can have side effects",
                a.expr.value
            )),
            C::ArithmeticForClause(_) => high("an arithmetic for loop assigns as it goes"),
            C::Coprocess(_) => high("starts a coprocess"),
        }
    }

    /// Runs a loop body until the state stops changing, then widens.
    fn looped(&self, st: &mut State, body: impl Fn(&mut State) -> Assessment) -> Assessment {
        let mut worst = low("read-only inspection");
        for _ in 0..3 {
            let mut after = st.clone();
            worst = worst.max(body(&mut after));
            let before = st.clone();
            st.join(&after);
            if *st == before {
                return worst;
            }
        }
        st.widen();
        worst.max(body(&mut st.clone()))
    }

    fn for_loop(&self, f: &ast::ForClauseCommand, st: &mut State) -> Assessment {
        let mut values = BTreeSet::new();
        match &f.values {
            Some(words) => {
                let decoded = match decode_all(words.iter().map(|w| w.value.as_str())) {
                    Ok(d) => d,
                    Err(why) => return why,
                };
                let Some(worlds) = self.worlds(st, decoded.iter()) else {
                    return too_many();
                };
                for world in &worlds {
                    for pieces in &decoded {
                        values.extend(expand::expand(pieces, world));
                    }
                }
                if values.iter().any(|v| v.brace) {
                    return brace();
                }
            }
            None => {
                values.insert(Field::unseen());
            }
        }
        let name = &f.variable_name;
        st.vars.set(name, values.clone());
        self.looped(st, |s| {
            s.vars.set(name, values.clone());
            self.list(&f.body.list, s)
        })
    }

    fn if_clause(&self, clause: &ast::IfClauseCommand, st: &mut State) -> Assessment {
        let mut worst = self.list(&clause.condition, st);
        let mut joined = st.clone();
        let mut then = st.clone();
        worst = worst.max(self.list(&clause.then, &mut then));
        joined.join(&then);
        let mut rest = st.clone();
        for branch in clause.elses.iter().flatten() {
            if let Some(condition) = &branch.condition {
                worst = worst.max(self.list(condition, &mut rest));
                joined.join(&rest);
            }
            let mut body = rest.clone();
            worst = worst.max(self.list(&branch.body, &mut body));
            joined.join(&body);
        }
        *st = joined;
        worst
    }

    fn case_clause(&self, clause: &ast::CaseClauseCommand, st: &mut State) -> Assessment {
        let words = std::iter::once(clause.value.value.as_str()).chain(
            clause
                .cases
                .iter()
                .flat_map(|c| c.patterns.iter().map(|p| p.value.as_str())),
        );
        if let Err(why) = decode_all(words) {
            return why;
        }
        let mut worst = low("read-only inspection");
        let mut joined = st.clone();
        for item in &clause.cases {
            if let Some(body) = &item.cmd {
                // `;&` falls through: any body may follow any other.
                let mut after = joined.clone();
                worst = worst.max(self.list(body, &mut after));
                joined.join(&after);
            }
        }
        *st = joined;
        worst
    }

    fn redirect_list(&self, list: Option<&ast::RedirectList>, st: &State) -> Assessment {
        let redirects: Vec<&ast::IoRedirect> = list.iter().flat_map(|l| l.0.iter()).collect();
        let mut worst = low("no redirection");
        let Ok(targets) = decode_targets(&redirects) else {
            return high("a redirection it cannot see through");
        };
        let Some(worlds) = self.worlds(st, targets.iter()) else {
            return too_many();
        };
        for world in &worlds {
            for cwd in &st.cwds {
                let ctx = self.ctx.in_dir(cwd.clone());
                for redirect in &redirects {
                    worst = worst.max(redirect_risk(&ctx, redirect, world));
                }
            }
        }
        worst
    }

    fn worlds<'p>(
        &self,
        st: &State,
        pieces: impl Iterator<Item = &'p Vec<Piece>>,
    ) -> Option<Vec<World>> {
        let mut names = BTreeSet::new();
        for p in pieces {
            expand::names(p, &mut names);
        }
        st.vars.worlds(&names)
    }

    fn simple(&self, command: &ast::SimpleCommand, st: &mut State) -> Assessment {
        let parts = match split(command) {
            Ok(parts) => parts,
            Err(why) => return why,
        };
        let targets = match decode_targets(&parts.redirects) {
            Ok(t) => t,
            Err(why) => return why,
        };
        let all = parts
            .words
            .iter()
            .chain(parts.assigns.iter().map(|(_, v)| v))
            .chain(targets.iter());
        let Some(worlds) = self.worlds(st, all) else {
            return too_many();
        };
        let Some(first) = parts.words.first() else {
            return self.assignments(&parts, &worlds, st);
        };
        let name = match command_name(first) {
            Ok(name) => name,
            Err(why) => return why,
        };
        let mut name = name;
        let mut at = 1;
        // `command` and `builtin` skip functions and aliases; the shell runs
        // the next word all the same (`builtin cd` changes directory).
        while name == "command" || name == "builtin" {
            let next = parts.words.get(at).map(|p| literal_text(p));
            match next.flatten().as_deref() {
                None => return low("prints nothing"),
                Some("-v" | "-V") if name == "command" => return low("says what a name is"),
                Some("--") => at += 1,
                Some(_) => {}
            }
            match parts.words.get(at).map(|p| command_name(p)) {
                Some(Ok(next)) => name = next,
                Some(Err(why)) => return why,
                None => return low("prints nothing"),
            }
            at += 1;
        }
        let mut worst = low("read-only inspection");
        for (assignment, _) in &parts.assigns {
            worst = worst.max(prefix_assignment(assignment, &name));
        }
        let args = &parts.words[at..];
        let changes_state = matches!(
            name.as_str(),
            "cd" | "pushd" | "popd" | "export" | "unset" | "shift"
        );
        for world in &worlds {
            let mut fields = Vec::new();
            for pieces in args {
                fields.extend(expand::expand(pieces, world));
            }
            if fields.iter().any(|f| f.brace) {
                return brace();
            }
            for cwd in &st.cwds {
                let ctx = self.ctx.in_dir(cwd.clone());
                for redirect in &parts.redirects {
                    worst = worst.max(redirect_risk(&ctx, redirect, world));
                }
                if !changes_state {
                    worst = worst.max(commands::assess(&ctx, &name, &fields));
                }
            }
        }
        let here = match name.as_str() {
            "cd" | "pushd" | "popd" => self.cd(&name, args, &worlds, st),
            "export" => self.export(args, &worlds, st),
            "unset" => {
                for word in args {
                    if let Some(var) = literal_text(word) {
                        st.vars.forget(&var);
                    }
                }
                low("unsets variables")
            }
            "shift" => {
                for i in 0..10 {
                    st.vars.forget(&i.to_string());
                }
                low("shifts arguments")
            }
            _ => low("read-only inspection"),
        };
        worst.max(here)
    }

    /// Assignments with no command: they set shell variables.
    fn assignments(&self, parts: &Parts, worlds: &[World], st: &mut State) -> Assessment {
        let mut worst = low("assigns variables");
        for cwd in &st.cwds {
            let ctx = self.ctx.in_dir(cwd.clone());
            for world in worlds {
                for redirect in &parts.redirects {
                    worst = worst.max(redirect_risk(&ctx, redirect, world));
                }
            }
        }
        for (assignment, pieces) in &parts.assigns {
            let ast::AssignmentName::VariableName(name) = &assignment.name else {
                return high("assigns an array element (its index is arithmetic)");
            };
            if commands::env_name(name) == EnvName::Dangerous {
                return high(format!(
                    "sets {name}, which changes how the shell or programs run"
                ));
            }
            match &assignment.value {
                ast::AssignmentValue::Scalar(_) if !assignment.append => {
                    let values = worlds.iter().map(|w| value(pieces, w)).collect();
                    st.vars.set(name, values);
                }
                _ => st.vars.forget(name),
            }
        }
        worst
    }

    fn export(&self, args: &[Vec<Piece>], worlds: &[World], st: &mut State) -> Assessment {
        let mut worst = low("exports variables");
        for pieces in args {
            let Some((name, rest)) = split_assignment(pieces) else {
                match literal_text(pieces).as_deref() {
                    Some("-p") => continue,
                    Some(name) if shell::is_name(name) => {
                        worst = worst.max(exported(name));
                        continue;
                    }
                    _ => return Assessment::new(Unknown, "export with words it does not know"),
                }
            };
            worst = worst.max(exported(&name));
            let values = worlds.iter().map(|w| value(&rest, w)).collect();
            st.vars.set(&name, values);
        }
        worst
    }

    fn cd(&self, name: &str, args: &[Vec<Piece>], worlds: &[World], st: &mut State) -> Assessment {
        let mut next = st.cwds.clone();
        let mut args = args;
        let mut physical = false;
        while let Some(flag) = args.first().and_then(|p| literal_text(p)) {
            match flag.as_str() {
                "-L" | "-e" | "-@" => {}
                "-P" => physical = true,
                "--" => {
                    args = &args[1..];
                    break;
                }
                _ => break,
            }
            args = &args[1..];
        }
        match (name, args) {
            ("popd", _) | (_, []) => {
                next.insert(Cwd::Unknown);
            }
            (_, [target]) => {
                for world in worlds {
                    let fields = expand::expand(target, world);
                    for cwd in &st.cwds {
                        let to = match fields.as_slice() {
                            [f] if f.text == "-" || (physical && f.text.contains("..")) => {
                                Cwd::Unknown
                            }
                            [f] => paths::change_dir(f, cwd),
                            _ => Cwd::Unknown,
                        };
                        next.insert(to);
                    }
                }
            }
            _ => return Assessment::new(Unknown, format!("{name} with several operands")),
        }
        st.cwds = next;
        if st.cwds.len() > MAX_CWDS {
            st.widen();
        }
        low("changes directory")
    }
}

fn split(command: &ast::SimpleCommand) -> Result<Parts<'_>, Assessment> {
    use ast::CommandPrefixOrSuffixItem as Item;
    let mut parts = Parts {
        assigns: Vec::new(),
        words: Vec::new(),
        redirects: Vec::new(),
    };
    let mut raw: Vec<&str> = Vec::new();
    let prefix = command.prefix.iter().flat_map(|p| p.0.iter());
    for item in prefix {
        match item {
            Item::IoRedirect(r) => parts.redirects.push(r),
            Item::Word(w) => raw.push(&w.value),
            Item::AssignmentWord(a, _) => {
                let pieces = match &a.value {
                    ast::AssignmentValue::Scalar(w) => decode(&w.value)?,
                    ast::AssignmentValue::Array(items) => {
                        for (key, w) in items {
                            if let Some(k) = key {
                                decode(&k.value)?;
                            }
                            decode(&w.value)?;
                        }
                        Vec::new()
                    }
                };
                parts.assigns.push((a, pieces));
            }
            Item::ProcessSubstitution(..) => return Err(high("process substitution")),
        }
    }
    raw.extend(command.word_or_name.iter().map(|w| w.value.as_str()));
    for item in command.suffix.iter().flat_map(|s| s.0.iter()) {
        match item {
            Item::IoRedirect(r) => parts.redirects.push(r),
            Item::Word(w) | Item::AssignmentWord(_, w) => raw.push(&w.value),
            Item::ProcessSubstitution(..) => return Err(high("process substitution")),
        }
    }
    parts.words = decode_all(raw.into_iter())?;
    Ok(parts)
}

fn decode(word: &str) -> Result<Vec<Piece>, Assessment> {
    shell::decode(word).map_err(|e| high(format!("cannot see through it: {e}")))
}

fn decode_all<'w>(words: impl Iterator<Item = &'w str>) -> Result<Vec<Vec<Piece>>, Assessment> {
    words.map(decode).collect()
}

/// The words of redirection targets and here-strings, decoded (checking
/// expanded here-documents on the way).
fn decode_targets(redirects: &[&ast::IoRedirect]) -> Result<Vec<Vec<Piece>>, Assessment> {
    let mut out = Vec::new();
    for redirect in redirects {
        match redirect {
            ast::IoRedirect::File(_, _, target) => match target {
                ast::IoFileRedirectTarget::Filename(w)
                | ast::IoFileRedirectTarget::Duplicate(w) => out.push(decode(&w.value)?),
                ast::IoFileRedirectTarget::Fd(_) => {}
                ast::IoFileRedirectTarget::ProcessSubstitution(..) => {
                    return Err(high("process substitution"));
                }
            },
            ast::IoRedirect::HereDocument(_, doc) => {
                if doc.requires_expansion {
                    shell::check_heredoc(&doc.doc.value)
                        .map_err(|e| high(format!("here-document: {e}")))?;
                }
            }
            ast::IoRedirect::HereString(_, w) | ast::IoRedirect::OutputAndError(w, _) => {
                out.push(decode(&w.value)?)
            }
        }
    }
    Ok(out)
}

fn redirect_risk(ctx: &Ctx, redirect: &ast::IoRedirect, world: &World) -> Assessment {
    use ast::IoFileRedirectKind as Kind;
    use ast::IoFileRedirectTarget as Target;
    let target = |w: &ast::Word| -> Result<Field, Assessment> {
        let pieces = decode(&w.value)?;
        match expand::expand(&pieces, world).as_slice() {
            [f] if f.pattern.is_none() && !f.brace => Ok(f.clone()),
            _ => Err(high(format!(
                "redirects to `{}`, which it cannot resolve",
                w.value
            ))),
        }
    };
    let outcome = match redirect {
        ast::IoRedirect::File(_, kind, Target::Filename(w)) => target(w).map(|f| match kind {
            Kind::Read => ctx.read(&f, Access::Content),
            _ => ctx.write(&f),
        }),
        ast::IoRedirect::File(_, _, Target::Fd(_)) => Ok(low("duplicates a descriptor")),
        ast::IoRedirect::File(_, _, Target::Duplicate(w)) => target(w).map(|f| {
            let fd = f.text.trim_end_matches('-');
            if f.is_exact() && fd.chars().all(|c| c.is_ascii_digit()) {
                low("duplicates or closes a descriptor")
            } else {
                high(format!(
                    "`>&{}` is not a descriptor (bash writes a file)",
                    f.text
                ))
            }
        }),
        ast::IoRedirect::File(_, _, Target::ProcessSubstitution(..)) => {
            Ok(high("process substitution"))
        }
        ast::IoRedirect::OutputAndError(w, _) => target(w).map(|f| ctx.write(&f)),
        ast::IoRedirect::HereDocument(..) | ast::IoRedirect::HereString(..) => {
            Ok(low("feeds text on standard input"))
        }
    };
    outcome.unwrap_or_else(|why| why)
}

/// The command word: literal, and a known system path if it has a slash.
fn command_name(pieces: &[Piece]) -> Result<String, Assessment> {
    let Some(text) = literal_text(pieces) else {
        return Err(high("runs a command named by an expansion"));
    };
    let field = &expand::expand(pieces, &World::default())[0];
    if field.pattern.is_some() || field.brace {
        return Err(high(format!("runs `{text}`, a pattern")));
    }
    commands::resolve(&text).ok_or_else(|| high(format!("runs `{text}`, a file by path")))
}

/// The text of a word with no expansion in it (quotes allowed).
fn literal_text(pieces: &[Piece]) -> Option<String> {
    let mut text = String::new();
    for piece in pieces {
        match piece {
            Piece::Text { text: t, .. } => text.push_str(t),
            _ => return None,
        }
    }
    Some(text)
}

/// `NAME=rest` from a word's pieces.
fn split_assignment(pieces: &[Piece]) -> Option<(String, Vec<Piece>)> {
    let Some(Piece::Text {
        text,
        quoted: false,
    }) = pieces.first()
    else {
        return None;
    };
    let (name, first) = text.split_once('=')?;
    if !shell::is_name(name) {
        return None;
    }
    let mut rest = vec![Piece::Text {
        text: first.to_string(),
        quoted: true,
    }];
    rest.extend(pieces[1..].iter().cloned());
    Some((name.to_string(), rest))
}

/// An assignment's value: no field splitting, no globbing.
fn value(pieces: &[Piece], world: &World) -> Field {
    let quoted: Vec<Piece> = pieces
        .iter()
        .map(|p| match p {
            Piece::Text { text, .. } => Piece::Text {
                text: text.clone(),
                quoted: true,
            },
            Piece::Var { name, .. } => Piece::Var {
                name: name.clone(),
                quoted: true,
            },
            other => other.clone(),
        })
        .collect();
    expand::expand(&quoted, world)
        .into_iter()
        .next()
        .unwrap_or_else(|| Field::plain(""))
}

fn prefix_assignment(assignment: &ast::Assignment, command: &str) -> Assessment {
    let ast::AssignmentName::VariableName(name) = &assignment.name else {
        return high("assigns an array element (its index is arithmetic)");
    };
    match commands::env_name(name) {
        EnvName::Safe => low("sets a harmless variable"),
        EnvName::Dangerous => high(format!(
            "gives `{command}` {name}, which changes how it runs"
        )),
        EnvName::Unknown => Assessment::new(
            Unknown,
            format!("gives `{command}` {name}, a variable it does not know"),
        ),
    }
}

fn exported(name: &str) -> Assessment {
    match commands::env_name(name) {
        EnvName::Safe => low("exports a harmless variable"),
        EnvName::Dangerous => high(format!("exports {name}, which changes how programs run")),
        EnvName::Unknown => Assessment::new(
            Unknown,
            format!("exports {name}, a variable it does not know"),
        ),
    }
}

/// `[[ ... ]]`: bash evaluates arithmetic operands as expressions.
fn extended_test(expr: &ast::ExtendedTestExpr) -> Assessment {
    use ast::BinaryPredicate as B;
    use ast::ExtendedTestExpr as E;
    match expr {
        E::And(a, b) | E::Or(a, b) => extended_test(a).max(extended_test(b)),
        E::Not(a) | E::Parenthesized(a) => extended_test(a),
        E::UnaryTest(_, w) => match decode(&w.value) {
            Ok(_) => low("tests a file or string"),
            Err(why) => why,
        },
        E::BinaryTest(op, l, r) => {
            let arithmetic = matches!(
                op,
                B::ArithmeticEqualTo
                    | B::ArithmeticNotEqualTo
                    | B::ArithmeticLessThan
                    | B::ArithmeticLessThanOrEqualTo
                    | B::ArithmeticGreaterThan
                    | B::ArithmeticGreaterThanOrEqualTo
            );
            for w in [l, r] {
                let pieces = match decode(&w.value) {
                    Ok(p) => p,
                    Err(why) => return why,
                };
                let number = literal_text(&pieces).is_some_and(|t| {
                    t.trim_start_matches('-')
                        .chars()
                        .all(|c| c.is_ascii_digit())
                });
                if arithmetic && !number {
                    return high("`[[ -eq ]]` evaluates its operands as arithmetic");
                }
            }
            low("compares")
        }
    }
}

fn too_many() -> Assessment {
    high("variables with too many possible values")
}

fn brace() -> Assessment {
    high("brace expansion: bash expands it, dash does not")
}
