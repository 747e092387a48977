//! `jiancha config`: check a configuration file as a role would read it, print the
//! configuration every layer gives, print the reference page.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use jiancha_platform::Config;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha config check /etc/jiancha/jiancha.toml      # line and column of the first fault; exit 3
  JIANCHA_PARTITIONS=24 jiancha config print --config /etc/jiancha/jiancha.toml
  jiancha config print --defaults > jiancha.toml      # every key with its default
  jiancha config reference > docs/configuration.md

Layers: defaults, then the file, then a JIANCHA_* variable for every key, then each command's
flags (docs/configuration.md).")]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigAction,
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Read a file and the environment as every role does; check every value and that
    /// every file it names (catalog, calendars, keys, certificates) can be read and used.
    Check {
        /// The configuration file (TOML); the defaults and environment alone when absent.
        file: Option<PathBuf>,
    },
    /// Print the configuration the layers give, as TOML (Kafka secrets hidden).
    Print {
        /// The configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The defaults alone: no file, no environment.
        #[arg(long, conflicts_with = "config")]
        defaults: bool,
    },
    /// Print the reference page of every key (Markdown): type, default, variable, meaning.
    Reference,
}

pub fn run(args: ConfigArgs) -> Result<()> {
    match args.action {
        ConfigAction::Check { file } => check(file),
        ConfigAction::Print { config, defaults } => {
            let config = if defaults { Config::default() } else { Config::load(config.as_deref())? };
            print!("{}", config.to_toml());
            Ok(())
        }
        ConfigAction::Reference => {
            print!("{}", Config::reference());
            Ok(())
        }
    }
}

fn check(file: Option<PathBuf>) -> Result<()> {
    let shown = file.as_ref().map_or("the defaults and environment".to_owned(), |f| f.display().to_string());
    let config = Config::load(file.as_deref())?;
    config.validate()?;
    for (key, path) in config.files() {
        std::fs::metadata(&path).map_err(|e| jiancha_platform::config::ConfigError::File { key, path: path.clone(), source: e })?;
    }
    jiancha_platform::rules::load_rules(config.catalog.as_ref(), &config.calendar_files())?;
    if config.grpc.auth.audience.is_some() {
        jiancha_platform::auth::Authenticator::from_config(&config.grpc.auth).context("grpc.auth")?;
    }
    for name in Config::unknown_environment(std::env::vars()) {
        eprintln!("warning: {name} is set but is no configuration key (docs/configuration.md lists them)");
    }
    println!("{shown}: ok");
    Ok(())
}
