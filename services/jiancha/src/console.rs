//! `jiancha console` (serve the inspector console, or print a login link for a local
//! set-up) and the console's part in `jiancha up`.

use crate::up::Extra;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use jiancha_platform::Config;
use jiancha_platform::auth::Role;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha console --config /etc/jiancha/jiancha.toml
  jiancha console --listen 0.0.0.0:8080 --gateway https://gateway:50051 --accountability https://accountability:50052
  jiancha console login --role INSPECTOR                 # a one-time link for the console of `jiancha up`
  jiancha console login --role DEPARTMENT --department SCJG

Serves the web console: live board, items, cases, performance, catalog and calendars, audit,
and the public progress page (/progress). Settings are the [console] section of the
configuration (docs/console.md): OpenID Connect login, the key the console signs its calls
to the gRPC services with, session expiry.")]
pub struct ConsoleArgs {
    #[command(subcommand)]
    action: Option<ConsoleAction>,
    /// Configuration (TOML; [console], [grpc.auth]).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address.
    #[arg(long)]
    listen: Option<String>,
    /// The gateway's URL.
    #[arg(long)]
    gateway: Option<String>,
    /// The accountability service's URL.
    #[arg(long)]
    accountability: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ConsoleAction {
    /// Print a one-time login link (15 minutes) for the console of a running `jiancha up`.
    Login(LoginArgs),
}

#[derive(Args, Debug)]
struct LoginArgs {
    /// INSPECTOR, DEPARTMENT, OPERATOR or AUDITOR.
    #[arg(long)]
    role: Role,
    /// The department (DEPARTMENT logins).
    #[arg(long)]
    department: Option<String>,
    /// The state directory of `jiancha up`.
    #[arg(long, default_value = ".jiancha")]
    state_dir: PathBuf,
    /// The console's address (`public_url`), instead of the one `jiancha up` wrote.
    #[arg(long)]
    url: Option<String>,
    /// The file of `console.login_link_secret_file`, instead of the one `jiancha up` wrote.
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

const URL_FILE: &str = "console.url";
const LINK_SECRET_FILE: &str = "console-link.secret";

/// 32 random bytes as hex.
pub fn random_secret() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("random secret: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

pub fn run(args: ConsoleArgs) -> Result<()> {
    if let Some(ConsoleAction::Login(login)) = args.action {
        let url = match login.url {
            Some(url) => url,
            None => std::fs::read_to_string(login.state_dir.join(URL_FILE))
                .with_context(|| format!("reading {} (is `jiancha up` running here?)", login.state_dir.join(URL_FILE).display()))?,
        };
        let secret_file = login.secret_file.unwrap_or_else(|| login.state_dir.join(LINK_SECRET_FILE));
        let secret = std::fs::read(&secret_file).with_context(|| format!("reading {}", secret_file.display()))?;
        let secret = secret.trim_ascii().to_vec();
        if login.role != Role::Department && login.department.is_some() {
            bail!("--department is for DEPARTMENT logins only");
        }
        let link = jiancha_console::login_link(url.trim(), &secret, login.role, login.department.as_deref()).map_err(anyhow::Error::msg)?;
        println!("{link}");
        return Ok(());
    }
    let mut c = Config::load(args.config.as_deref())?;
    if let Some(v) = args.listen {
        c.console.listen = v;
    }
    if let Some(v) = args.gateway {
        c.console.gateway = v;
    }
    if let Some(v) = args.accountability {
        c.console.accountability = v;
    }
    c.validate()?;
    crate::grpc::run_until_signal(c, |c, shutdown| async move {
        let console = jiancha_console::start(c, shutdown).await?;
        println!("console: {}/", console.url);
        Ok(async move { console.wait().await.map_err(anyhow::Error::msg) })
    })
}

/// The console inside `jiancha up`: it waits for the gateway's and the accountability
/// service's addresses, then serves and prints its address and one-time login links.
pub fn up_console(
    mut config: Config,
    state_dir: &Path,
    setup: &jiancha_platform::local::LocalSetup,
    listen: String,
    gateway: tokio::sync::oneshot::Receiver<std::net::SocketAddr>,
    accountability: tokio::sync::oneshot::Receiver<std::net::SocketAddr>,
) -> Result<(Config, Extra)> {
    let link_secret = state_dir.join(LINK_SECRET_FILE);
    jiancha_platform::files::write_private(&link_secret, random_secret()?.as_bytes())
        .with_context(|| format!("writing {}", link_secret.display()))?;
    let c = &mut config.console;
    c.listen = listen;
    if c.signing_key_file.is_none() {
        c.signing_key_file = Some(setup.secret_file.clone());
        c.signing_algorithm = "HS256".into();
    }
    if c.services_ca.is_none() {
        c.services_ca = Some(setup.ca_cert.clone());
    }
    c.login_link_secret_file.get_or_insert(link_secret);
    let url_file = state_dir.join(URL_FILE);
    let extra: Extra = Box::new(move |mut config: Config, shutdown| {
        Box::pin(async move {
            let (Ok(gateway), Ok(accountability)) = (gateway.await, accountability.await) else {
                return Err("the console needs the gateway and the accountability service, and one did not start".into());
            };
            let scheme = if config.grpc.plaintext { "http" } else { "https" };
            config.console.gateway = format!("{scheme}://{gateway}");
            config.console.accountability = format!("{scheme}://{accountability}");
            let console = match jiancha_console::start(config.clone(), shutdown.clone()).await {
                Ok(c) => c,
                Err(jiancha_console::ConsoleError::Bind { .. }) => {
                    config.console.listen = "127.0.0.1:0".into();
                    jiancha_console::start(config, shutdown).await.map_err(|e| e.to_string())?
                }
                Err(e) => {
                    eprintln!("jiancha: the console could not start: {e}");
                    return Err(e.to_string());
                }
            };
            let _ = std::fs::write(&url_file, &console.url);
            println!("console: {}/", console.url);
            for (role, department) in [(Role::Inspector, None), (Role::Department, Some("SCJG"))] {
                match console.login_link(role, department) {
                    Ok(link) => {
                        println!("console login {}{}: {link}", role.as_str(), department.map(|d| format!(" {d}")).unwrap_or_default())
                    }
                    Err(e) => eprintln!("jiancha: no console login link: {e}"),
                }
            }
            println!("console login links are valid once, for 15 minutes; more: jiancha console login --role ROLE [--department CODE]");
            console.wait().await
        })
    });
    Ok((config, extra))
}
