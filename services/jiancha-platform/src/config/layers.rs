//! The layers under the typed configuration: every key's environment variable, read from
//! the configuration's own schema (its types and doc comments), and errors that point
//! into the file.

use super::{Config, ConfigError};
use serde_json::Value as Json;
use std::path::Path;

/// Words in a Kafka property's name that mark its value as secret: `config print`
/// shows `"(hidden)"` instead.
pub const SECRET_PROPERTY_WORDS: [&str; 3] = ["password", "secret", ".pem"];

/// Variables that set a key under an older name.
const ALIASES: [(&str, &str); 1] = [("JIANCHA_DATABASE", "accountability.database")];

/// `JIANCHA_*` variables that are not keys of the configuration but are still read.
const OTHER_VARIABLES: [&str; 1] = ["JIANCHA_LOG"];

/// One setting: where it sits in the file, the variable that overrides it, its type,
/// default and meaning (the field's doc comment).
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// Dotted path in the file: `grpc.auth.secret_file`.
    pub path: String,
    /// The environment variable: `JIANCHA_GRPC_AUTH_SECRET_FILE`.
    pub env: String,
    /// `text`, `duration`, `integer`, `number`, `true/false`, `list`, `table` or `value`.
    pub kind: &'static str,
    /// The default as TOML; `None` when unset by default.
    pub default: Option<String>,
    /// What it does.
    pub doc: String,
}

impl Key {
    /// Whether a variable's text is taken as it is (else it is read as a TOML value:
    /// `8`, `true`, `["a.toml", "b.toml"]`, `{ "security.protocol" = "SSL" }`).
    pub fn is_text(&self) -> bool {
        matches!(self.kind, "text" | "duration")
    }
}

/// An environment variable set to a `JIANCHA_` name that no key has.
pub type EnvVar = String;

impl Config {
    /// Every key of the configuration, in the order of the file's tables.
    pub fn keys() -> Vec<Key> {
        let schema = schemars::schema_for!(Config);
        let root = schema.as_value();
        // `[console.oidc]` is off by default; its keys' defaults are those it has when on.
        let with_tables = Config {
            console: super::ConsoleConfig { oidc: Some(super::OidcConfig::default()), ..super::ConsoleConfig::default() },
            ..Config::default()
        };
        let defaults = toml::Value::try_from(with_tables).unwrap_or(toml::Value::Table(toml::Table::new()));
        let mut keys = Vec::new();
        walk(root, root, &defaults, &mut Vec::new(), &mut keys);
        keys
    }

    /// The `JIANCHA_` variables among `vars` that set nothing (a misspelt name, say).
    pub fn unknown_environment(vars: impl IntoIterator<Item = (String, String)>) -> Vec<EnvVar> {
        let keys = Config::keys();
        let mut unknown: Vec<EnvVar> = vars
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with("JIANCHA_") && !name.starts_with("JIANCHA_KAFKA_PROP_"))
            .filter(|name| !OTHER_VARIABLES.contains(&name.as_str()) && !ALIASES.iter().any(|(alias, _)| alias == name))
            .filter(|name| !keys.iter().any(|k| &k.env == name))
            .collect();
        unknown.sort();
        unknown
    }

    /// The configuration as TOML, Kafka secrets hidden.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        for (name, value) in shown.kafka.iter_mut() {
            if SECRET_PROPERTY_WORDS.iter().any(|w| name.contains(w)) {
                *value = super::KafkaValue::Text("(hidden)".into());
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
    }
}

fn walk(root: &Json, schema: &Json, defaults: &toml::Value, path: &mut Vec<String>, keys: &mut Vec<Key>) {
    let Some(properties) = schema.get("properties").and_then(Json::as_object) else { return };
    for (name, property) in properties {
        path.push(name.clone());
        let target = resolve(root, property);
        let default = defaults.get(name.as_str());
        if target.get("properties").is_some() {
            walk(root, target, default.unwrap_or(&toml::Value::Table(toml::Table::new())), path, keys);
        } else {
            let doc = property.get("description").or_else(|| target.get("description")).and_then(Json::as_str).unwrap_or_default();
            keys.push(Key {
                path: path.join("."),
                env: format!("JIANCHA_{}", path.join("_").to_ascii_uppercase()),
                kind: kind_of(target),
                default: default.map(|v| v.to_string()),
                doc: doc.split_whitespace().collect::<Vec<_>>().join(" "),
            });
        }
        path.pop();
    }
}

/// The schema a property stands for: through a `$ref`, and through the `anyOf` of an
/// optional table (`Option<OidcConfig>`).
fn resolve<'a>(root: &'a Json, property: &'a Json) -> &'a Json {
    let reference = property.get("$ref").or_else(|| {
        let variants = property.get("anyOf")?.as_array()?;
        let is_null = |v: &Json| v.get("type").and_then(Json::as_str) == Some("null");
        match variants.as_slice() {
            [a, b] if is_null(b) => a.get("$ref"),
            [a, b] if is_null(a) => b.get("$ref"),
            _ => None,
        }
    });
    match reference.and_then(Json::as_str).and_then(|r| r.strip_prefix("#/")) {
        Some(pointer) => root.pointer(&format!("/{pointer}")).unwrap_or(property),
        None => property,
    }
}

fn kind_of(schema: &Json) -> &'static str {
    if schema.get("format").and_then(Json::as_str) == Some("duration") {
        return "duration";
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    };
    match types.as_slice() {
        ["string"] => "text",
        ["integer"] => "integer",
        ["number"] => "number",
        ["boolean"] => "true/false",
        ["array"] => "list",
        ["object"] => "table",
        _ => "value",
    }
}

/// Overlays the `JIANCHA_*` variables on `config`, each checked on its own so that an
/// error names the variable. An empty variable counts as unset.
pub(super) fn apply_environment(config: &mut Config, vars: &[(String, String)]) -> Result<(), ConfigError> {
    let keys = Config::keys();
    let mut set: Vec<(&str, &Key, &str)> = vars
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .filter_map(|(name, value)| {
            let path = ALIASES.iter().find(|(alias, _)| alias == name).map(|(_, path)| *path);
            let key = keys.iter().find(|k| &k.env == name || Some(k.path.as_str()) == path)?;
            Some((name.as_str(), key, value.as_str()))
        })
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    // The proper name wins over an alias of the same key.
    set.sort_by_key(|(name, key, _)| (key.env == *name, *name));
    let mut table = toml::Value::try_from(&*config).map_err(|e| ConfigError::Environment {
        var: String::new(),
        key: String::new(),
        value: String::new(),
        message: e.to_string(),
    })?;
    for (var, key, text) in set {
        let failed = |message: String| ConfigError::Environment { var: var.into(), key: key.path.clone(), value: text.into(), message };
        let value = if key.is_text() {
            toml::Value::String(text.into())
        } else {
            toml::from_str::<toml::Table>(&format!("v = {text}"))
                .map_err(|e| failed(format!("not a TOML value of type {}: {}", key.kind, e.message())))?
                .remove("v")
                .unwrap_or(toml::Value::Boolean(false))
        };
        let mut candidate = table.clone();
        insert(&mut candidate, &key.path, value);
        *config = candidate.clone().try_into().map_err(|e: toml::de::Error| failed(e.message().to_owned()))?;
        table = candidate;
    }
    Ok(())
}

fn insert(table: &mut toml::Value, path: &str, value: toml::Value) {
    let mut at = table;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let toml::Value::Table(t) = at else { return };
        if parts.peek().is_none() {
            t.insert(part.into(), value);
            return;
        }
        at = t.entry(part).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
}

/// A TOML error with its line and column, and the line itself with the place marked.
pub(super) fn parse_error(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let span = error.span().unwrap_or(0..0);
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let shown = &text[line_start..line_end];
    let width = text[start..span.end.clamp(start, line_end)].chars().count().max(1);
    let excerpt = format!("  {line} | {shown}\n  {} | {}{}", " ".repeat(line.to_string().len()), " ".repeat(column - 1), "^".repeat(width));
    ConfigError::Parse { path: path.into(), line, column, message: error.message().trim_end().to_owned(), excerpt }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn every_key_has_its_own_variable_and_a_meaning() {
        let keys = Config::keys();
        assert!(keys.len() > 80, "{} keys", keys.len());
        let mut names: Vec<&str> = keys.iter().map(|k| k.env.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), keys.len(), "two keys share a variable");
        for key in &keys {
            assert!(!key.doc.is_empty(), "{} has no doc comment", key.path);
        }
        let find = |p: &str| keys.iter().find(|k| k.path == p).unwrap_or_else(|| panic!("no key {p}"));
        assert_eq!(find("grpc.tls_cert").env, "JIANCHA_GRPC_TLS_CERT");
        assert_eq!(find("grpc.request_timeout").kind, "duration");
        assert_eq!(find("grpc.request_timeout").default.as_deref(), Some("\"30s\""));
        assert_eq!(find("partitions").kind, "integer");
        assert_eq!(find("console.oidc.client_id").env, "JIANCHA_CONSOLE_OIDC_CLIENT_ID");
        assert_eq!(find("grpc.auth.secret_file").default, None);
    }

    #[test]
    fn variables_set_every_kind_of_key_and_name_themselves_when_wrong() {
        let c = Config::load_with(
            None,
            vars(&[
                ("JIANCHA_GRPC_TLS_CERT", "/etc/jiancha/tls/gateway.pem"),
                ("JIANCHA_GRPC_REQUEST_TIMEOUT", "45s"),
                ("JIANCHA_PARTITIONS", "24"),
                ("JIANCHA_GRPC_PLAINTEXT", "true"),
                ("JIANCHA_CALENDARS", "[\"a.toml\", \"b.toml\"]"),
                ("JIANCHA_CONSOLE_OIDC_ISSUER", "https://idp.example.gov.cn"),
                ("JIANCHA_DATABASE", "postgres://db/jiancha"),
                ("JIANCHA_METRICS_LISTEN", ""),
            ]),
        )
        .unwrap();
        assert_eq!(c.grpc.tls_cert.as_deref(), Some(Path::new("/etc/jiancha/tls/gateway.pem")));
        assert_eq!(c.grpc.request_timeout, crate::config::TimeSpan::secs(45));
        assert_eq!(c.partitions, 24);
        assert!(c.grpc.plaintext);
        assert_eq!(c.calendars.len(), 2);
        assert_eq!(
            c.console.oidc.as_ref().map(|o| o.client_id.as_str()),
            Some("jiancha-console"),
            "the table's other keys keep their defaults"
        );
        assert_eq!(c.accountability.database, "postgres://db/jiancha");
        assert_eq!(c.metrics_listen, Config::default().metrics_listen, "an empty variable is unset");

        let err = Config::load_with(None, vars(&[("JIANCHA_REBALANCE_TIMEOUT", "1x")])).unwrap_err().to_string();
        assert!(err.contains("JIANCHA_REBALANCE_TIMEOUT") && err.contains("rebalance_timeout") && err.contains("1x"), "{err}");
        let err = Config::load_with(None, vars(&[("JIANCHA_PARTITIONS", "many")])).unwrap_err().to_string();
        assert!(err.contains("JIANCHA_PARTITIONS") && err.contains("integer"), "{err}");
        assert_eq!(Config::unknown_environment(vars(&[("JIANCHA_GRPC_TLS_CRT", "x"), ("JIANCHA_LOG", "debug")])), ["JIANCHA_GRPC_TLS_CRT"]);
    }

    #[test]
    fn file_errors_carry_line_and_column() {
        let dir = std::env::temp_dir().join(format!("jiancha-config-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.toml");
        std::fs::write(&file, "kafka_bootstrap = \"x:1\"\n\n[monitor]\nrebalance_timeout = \"1x\"\n").unwrap();
        let err = Config::load_with(Some(&file), []).unwrap_err().to_string();
        assert!(err.contains("m.toml:3:2:") && err.contains("unknown field `monitor`"), "{err}");
        std::fs::write(&file, "kafka_bootstrap = \"x:1\"\nrebalance_timeout = \"1x\"\n").unwrap();
        let err = Config::load_with(Some(&file), []).unwrap_err().to_string();
        assert!(err.contains("m.toml:2:21:") && err.contains("`1x` is not a duration"), "{err}");
        assert!(err.contains("2 | rebalance_timeout = \"1x\"") && err.contains("^^^^"), "{err}");
    }

    #[test]
    fn printing_hides_kafka_secrets_and_reads_back() {
        let c = Config::load_with(None, vars(&[("JIANCHA_KAFKA_PROP_SASL_PASSWORD", "hunter2")])).unwrap();
        let text = c.to_toml();
        assert!(!text.contains("hunter2") && text.contains("(hidden)"), "{text}");
        let back = Config::parse(&Config::default().to_toml()).unwrap();
        assert_eq!(back, Config::default());
    }
}
