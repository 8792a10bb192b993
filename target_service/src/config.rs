//! The two files the service reads at every (re)start: `service.conf`
//! (`key = value` lines) and `service.env` (`NAME=value` lines).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: {message}")]
pub struct ParseError {
    pub file: &'static str,
    pub line: usize,
    pub message: String,
}

pub const CONFIG_FILE: &str = "service.conf";
pub const ENV_FILE: &str = "service.env";

/// Parsed `service.conf`. Blank lines and `#` comments are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceConfig {
    entries: BTreeMap<String, String>,
}

impl ServiceConfig {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut entries = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: String| ParseError {
                file: CONFIG_FILE,
                line: index + 1,
                message,
            };
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| error(format!("expected `key = value`, found `{line}`")))?;
            let key = key.trim();
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(error(format!("invalid key `{key}`")));
            }
            entries.insert(key.to_string(), value.trim().to_string());
        }
        Ok(Self { entries })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The port the service binds, from the `port` key.
    pub fn port(&self) -> Result<u16, String> {
        let raw = self
            .get("port")
            .ok_or_else(|| format!("{CONFIG_FILE}: `port` is not set"))?;
        raw.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{CONFIG_FILE}: port `{raw}` is not a port number (1-65535)"))
    }
}

/// Parses `service.env`. An `export ` prefix is accepted, as shells write it.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut vars = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (name, value) = line.split_once('=').ok_or_else(|| ParseError {
            file: ENV_FILE,
            line: index + 1,
            message: format!("expected `NAME=value`, found `{line}`"),
        })?;
        let value = value.trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        vars.push((name.trim().to_string(), unquoted.to_string()));
    }
    Ok(vars)
}

/// Sets `key = value` in config text, replacing the first line for `key`
/// or appending one.
pub fn set_config_line(text: &str, key: &str, value: &str) -> String {
    let wanted = format!("{key} = {value}");
    let mut replaced = false;
    let mut lines: Vec<String> = text
        .lines()
        .map(|line| {
            let is_key = line
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == key && !line.trim_start().starts_with('#'));
            if is_key && !replaced {
                replaced = true;
                wanted.clone()
            } else {
                line.to_string()
            }
        })
        .collect();
    if !replaced {
        lines.push(wanted);
    }
    lines.join("\n") + "\n"
}

/// Sets or removes `NAME=value` in env-file text.
pub fn set_env_line(text: &str, name: &str, value: Option<&str>) -> String {
    let is_name = |line: &str| {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line);
        line.split_once('=').is_some_and(|(n, _)| n.trim() == name)
    };
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !is_name(l))
        .map(str::to_string)
        .collect();
    if let Some(value) = value {
        lines.push(format!("{name}={value}"));
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_keys_and_reports_bad_lines_with_numbers() {
        let cfg = ServiceConfig::parse("# c\nport = 8080\n\nmode=fast\n").unwrap();
        assert_eq!(cfg.port(), Ok(8080));
        assert_eq!(cfg.get("mode"), Some("fast"));
        let err = ServiceConfig::parse("port = 1\nmax_connections 256\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("service.conf line 2"), "{err}");
        assert!(ServiceConfig::parse("Bad Key = 1").is_err());
    }

    #[test]
    fn port_must_be_a_real_port() {
        for bad in ["port = 0", "port = 70000", "port = x", "other = 1"] {
            assert!(ServiceConfig::parse(bad).unwrap().port().is_err(), "{bad}");
        }
    }

    #[test]
    fn env_file_accepts_export_and_quotes() {
        let vars = parse_env_file("A=1\nexport B=\"two\"\n# x\nC='3'\n").unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two".into()),
                ("C".into(), "3".into())
            ]
        );
        assert_eq!(parse_env_file("oops\n").unwrap_err().line, 1);
    }

    #[test]
    fn set_lines_replace_or_append() {
        assert_eq!(
            set_config_line("port = 1\nx = 2\n", "port", "3"),
            "port = 3\nx = 2\n"
        );
        assert_eq!(set_config_line("x = 2\n", "port", "3"), "x = 2\nport = 3\n");
        assert_eq!(set_env_line("A=1\nB=2\n", "A", None), "B=2\n");
        assert_eq!(set_env_line("A=1\n", "B", Some("2")), "A=1\nB=2\n");
    }
}
