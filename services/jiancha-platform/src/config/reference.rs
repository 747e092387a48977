//! The configuration reference page (`docs/configuration.md`), written from the keys'
//! types, defaults and doc comments: `jiancha config reference` prints it, and a test
//! fails when the committed page is not what the code says.

use super::Config;

impl Config {
    /// The reference page, in Markdown.
    pub fn reference() -> String {
        let mut page = String::from(
            "# Configuration reference\n\n\
             <!-- Written by `jiancha config reference` from the code; do not edit by hand. -->\n\n\
             Every role reads one configuration, in layers: the defaults below, then the TOML \
             file given with `--config`, then a `JIANCHA_*` variable for every key, then the \
             command's flags. An empty variable counts as unset. A variable's value is taken \
             as it is for text and durations, and read as a TOML value for the other types \
             (`24`, `true`, `[\"a.toml\", \"b.toml\"]`). Kafka client properties can also come \
             one by one from `JIANCHA_KAFKA_PROP_*` (`JIANCHA_KAFKA_PROP_SASL_PASSWORD` sets \
             `sasl.password`); `JIANCHA_DATABASE` is an older name of \
             `JIANCHA_ACCOUNTABILITY_DATABASE`.\n\n\
             Durations are written `\"200ms\"`, `\"30s\"`, `\"5m\"`, `\"12h\"`, `\"7d\"` or \
             combined (`\"1h30m\"`). `jiancha config check FILE` reads a file as a role would \
             and names the line, column and rule of the first fault; `jiancha config print` \
             shows the result of every layer (Kafka secrets hidden), `--defaults` the defaults \
             alone. An example deployment: `deploy/config/jiancha.example.toml`.\n",
        );
        // Top-level keys first, then each table; keys in alphabetical order within each.
        let mut keys = Config::keys();
        keys.sort_by_key(|k| k.path.rsplit_once('.').map(|(table, _)| table.to_owned()));
        let mut section = None;
        for key in keys {
            let table = key.path.rsplit_once('.').map(|(t, _)| t.to_owned());
            if section.as_ref() != Some(&table) {
                let title = table.as_deref().map_or("Top level".to_owned(), |t| format!("`[{t}]`"));
                page.push_str(&format!("\n## {title}\n\n| Key | Variable | Type | Default | Meaning |\n|---|---|---|---|---|\n"));
                section = Some(table);
            }
            let name = key.path.rsplit('.').next().unwrap_or(&key.path);
            let default = key.default.as_deref().map_or("unset".to_owned(), |d| format!("`{}`", d.replace('|', "\\|")));
            page.push_str(&format!("| `{name}` | `{}` | {} | {default} | {} |\n", key.env, key.kind, key.doc.replace('|', "\\|")));
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_reference_page_is_current() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let generated = Config::reference();
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/configuration.md is not what the code says: run `cargo run -- config reference > docs/configuration.md`"
        );
    }
}
