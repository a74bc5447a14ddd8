//! Where values come from (environment, `NAME_FILE`, the TOML file) and the typed readers every
//! section uses. Readers never stop at a bad value: they record the problem and hand back the
//! default, so one load reports every problem, and `doctor` still gets a configuration to check.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use super::ConfigError;
use super::settings::{SETTINGS, default_of, setting};

/// The merged view of environment and file, and the problems found so far.
pub(super) struct Source<'a> {
    env: &'a HashMap<String, String>,
    file: HashMap<String, String>,
    /// Values read from `NAME_FILE`, by setting, so errors never echo a file's contents (the
    /// file may be anything the process can read).
    from_files: RefCell<Vec<(&'static str, String, String)>>,
    problems: RefCell<Vec<ConfigError>>,
    /// Settings looked up so far: a test checks that every registered setting is read.
    read: RefCell<BTreeSet<&'static str>>,
}

/// `NAME_FILE` holds one value; a larger file is certainly the wrong one.
const MAX_SETTING_FILE: u64 = 64 * 1024;

/// No setting needs longer; the cap keeps deadlines (`Instant + duration`) from overflowing.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

impl<'a> Source<'a> {
    /// Reads the TOML file at `path`, if any; its problems are recorded like any other.
    pub(super) fn new(env: &'a HashMap<String, String>, toml_path: Option<&Path>) -> Self {
        let mut problems = Vec::new();
        let file = toml_path
            .map(|path| load_toml(path, &mut problems))
            .unwrap_or_default();
        Self {
            env,
            file,
            from_files: RefCell::default(),
            problems: RefCell::new(problems),
            read: RefCell::default(),
        }
    }

    /// Every problem recorded, in the order the settings were read.
    pub(super) fn into_problems(self) -> Vec<ConfigError> {
        self.problems.into_inner()
    }

    #[cfg(test)]
    pub(super) fn settings_read(&self) -> BTreeSet<&'static str> {
        self.read.borrow().clone()
    }

    /// Records a problem with `name`, with any `NAME_FILE` contents replaced by a pointer to
    /// the file.
    pub(super) fn problem(&self, name: &'static str, problem: impl Into<String>) {
        let mut error = ConfigError::new(name, problem);
        for (setting, file_var, value) in self.from_files.borrow().iter() {
            if *setting == error.setting && error.problem.contains(value.as_str()) {
                error.problem = error
                    .problem
                    .replace(value.as_str(), &format!("(the contents of {file_var})"));
            }
        }
        self.problems.borrow_mut().push(error);
    }

    /// True when a problem with `name` has been recorded: dependent checks then stay quiet
    /// rather than report the same setting twice.
    pub(super) fn is_broken(&self, name: &str) -> bool {
        self.problems.borrow().iter().any(|e| e.setting == name)
    }

    /// The raw value: `NAME`, then `NAME_FILE`, then the TOML key. An empty environment value
    /// counts as unset, as most tools treat it. An unreadable `NAME_FILE` is recorded and
    /// reads as unset.
    pub(super) fn raw(&self, name: &'static str) -> Option<String> {
        let toml_key = setting(name).toml;
        self.read.borrow_mut().insert(name);
        if let Some(v) = self.env.get(name).filter(|v| !v.is_empty()) {
            return Some(v.clone());
        }
        let file_var = format!("{name}_FILE");
        if let Some(path) = self.env.get(&file_var).filter(|v| !v.is_empty()) {
            let value = match read_setting_file(path) {
                Ok(value) => value.trim_end_matches(['\n', '\r']).to_owned(),
                Err(e) => {
                    self.problem(name, format!("cannot read {file_var}={path}: {e}"));
                    return None;
                }
            };
            if value.is_empty() {
                self.problem(name, format!("{file_var}={path} is empty"));
                return None;
            }
            self.from_files
                .borrow_mut()
                .push((name, file_var, value.clone()));
            return Some(value);
        }
        if toml_key.is_empty() {
            return None;
        }
        self.file.get(toml_key).cloned()
    }

    /// Like [`Source::raw`], but an environment variable set to the empty string reads as `""`
    /// (an explicit empty list, e.g. "no role needs MFA"), not as unset.
    pub(super) fn raw_or_empty(&self, name: &'static str) -> Option<String> {
        if self.env.get(name).is_some_and(|v| v.is_empty()) {
            self.read.borrow_mut().insert(name);
            return Some(String::new());
        }
        self.raw(name)
    }

    /// An optional setting, parsed; `None` when unset or invalid (the problem is recorded).
    pub(super) fn optional<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.raw(name)?;
        parse(&raw).map_err(|why| self.problem(name, why)).ok()
    }

    /// A setting with a default in [`SETTINGS`], parsed; an invalid value is recorded and the
    /// default is used in its place.
    pub(super) fn or_default<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> T {
        self.optional(name, &parse).unwrap_or_else(|| {
            parse(default_of(name))
                .unwrap_or_else(|why| panic!("the default of {name} does not parse: {why}"))
        })
    }

    pub(super) fn duration(&self, name: &'static str) -> Duration {
        self.or_default(name, parse_duration)
    }

    /// A wait that may be zero (off), up to ten minutes.
    pub(super) fn delay(&self, name: &'static str) -> Duration {
        self.or_default(name, |raw| {
            let d = humantime::parse_duration(raw.trim())
                .map_err(|_| format!("\"{raw}\" is not a duration such as 0s, 500ms or 3s"))?;
            if d > Duration::from_secs(600) {
                return Err(format!("\"{raw}\" is too long (at most 10 minutes)"));
            }
            Ok(d)
        })
    }

    pub(super) fn size(&self, name: &'static str) -> usize {
        self.or_default(name, |raw| match parse_byte_size(raw) {
            Some(0) | None => Err(format!("\"{raw}\" is not a size such as 64KiB or 1MiB")),
            Some(n) => Ok(n),
        })
    }

    pub(super) fn number(&self, name: &'static str, min: u64, max: u64) -> u64 {
        self.or_default(name, |raw| {
            let n: u64 = raw
                .trim()
                .parse()
                .map_err(|_| format!("\"{raw}\" is not a whole number"))?;
            if n < min || n > max {
                return Err(format!("{n} is out of range ({min} to {max})"));
            }
            Ok(n)
        })
    }

    /// One of a few words, e.g. `json` or `pretty`; `what` names the kind in the error.
    pub(super) fn choice<T: Copy>(
        &self,
        name: &'static str,
        options: &[(&str, T)],
        what: &str,
        hint: &str,
    ) -> T {
        self.or_default(name, |raw| {
            options
                .iter()
                .find(|(word, _)| *word == raw)
                .map(|(_, value)| *value)
                .ok_or_else(|| format!("\"{raw}\" is not {what}; use {hint}"))
        })
    }

    /// An optional comma-separated list; each item is parsed, and the first bad one recorded.
    pub(super) fn list<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        self.optional(name, |raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(&parse)
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_default()
    }
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw.trim())
        .map_err(|_| format!("\"{raw}\" is not a duration such as 500ms, 15s or 2m"))?;
    if d.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    if d > MAX_DURATION {
        return Err(format!("\"{raw}\" is too long (at most 365 days)"));
    }
    Ok(d)
}

fn read_setting_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_SETTING_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SETTING_FILE {
        return Err(format!("larger than {} KiB", MAX_SETTING_FILE / 1024));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// Reads the TOML file into dotted keys; every unknown key is its own problem.
fn load_toml(path: &Path, problems: &mut Vec<ConfigError>) -> HashMap<String, String> {
    let mut complain = |problem: String| problems.push(ConfigError::new("VANTUS_CONFIG", problem));
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            complain(format!("cannot read {}: {e}", path.display()));
            return HashMap::new();
        }
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            complain(format!(
                "{} is not valid TOML: {}",
                path.display(),
                e.message()
            ));
            return HashMap::new();
        }
    };
    let mut flat = HashMap::new();
    flatten_toml("", &table, &mut flat);
    let mut unknown: Vec<&String> = flat
        .keys()
        .filter(|key| {
            !SETTINGS
                .iter()
                .any(|s| !s.toml.is_empty() && s.toml == **key)
        })
        .collect();
    unknown.sort();
    for key in unknown {
        complain(format!("{}: unknown setting \"{key}\"", path.display()));
    }
    flat
}

fn flatten_toml(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten_toml(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Array(items) => {
                let joined: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.insert(key, joined.join(","));
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// Parses `65536`, `64KiB`, `1MiB`, `10MB`.
pub fn parse_byte_size(raw: &str) -> Option<usize> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: usize = digits.parse().ok()?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Formats a byte count the way people read limits: `64 KiB`.
pub fn format_byte_size(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}
