//! `console-load`: the console's server time per page, measured as a browser would see it
//! on loopback (the console and the gRPC calls it makes for the page), against a running
//! `jiancha up` loaded by `loadtests/run-console.sh`. Logs in with a one-time link, finds
//! an item and a case from the lists, then requests every page `--requests` times.

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// A one-time login link (`jiancha console login --role INSPECTOR`).
    #[arg(long)]
    link: String,
    /// Requests per page.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    /// First count the items and cases by walking every page of their lists.
    #[arg(long)]
    count: bool,
}

/// Rows of a list, following its "next page" links to the end: (rows, pages, slowest page).
async fn walk<F, Fut>(get: &F, first: &str, row_prefix: &str) -> Result<(usize, usize, Duration)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Duration, String)>>,
{
    let (mut rows, mut pages, mut slowest) = (0, 0, Duration::ZERO);
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let (took, body) = get(path).await?;
        pages += 1;
        slowest = slowest.max(took);
        rows += body.matches(&format!("<td><a href=\"{row_prefix}")).count();
        next = body.find("rel=\"next\"").and_then(|at| {
            let start = body[..at].rfind("href=\"")? + 6;
            let end = body[start..].find('"')? + start;
            Some(body[start..end].replace("&amp;", "&"))
        });
    }
    Ok((rows, pages, slowest))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn first_link(html: &str, prefix: &str) -> Option<String> {
    let at = html.find(&format!("href=\"{prefix}"))? + 6;
    let end = html[at..].find('"')? + at;
    Some(html[at..end].replace("&amp;", "&"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let base = args.link.split("/login/").next().context("a login link ends in /login/link?token=…")?.to_owned();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let login = http.get(&args.link).send().await?;
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("jiancha_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .context("the login link gave no session (used already, or expired?)")?;
    let get = |path: String| {
        let http = http.clone();
        let cookie = cookie.clone();
        let url = format!("{base}{path}");
        async move {
            let started = Instant::now();
            let response = http.get(&url).header("cookie", cookie).send().await?;
            let status = response.status();
            let body = response.text().await?;
            let took = started.elapsed();
            if !status.is_success() {
                bail!("{url}: HTTP {status}");
            }
            Ok::<_, anyhow::Error>((took, body))
        }
    };
    if args.count {
        let started = Instant::now();
        let (items, pages, slowest) = walk(&get, "/items", "/items/").await?;
        println!(
            "items: {items} in {pages} pages, slowest page {:.1} ms, {:.1} s in all",
            slowest.as_secs_f64() * 1000.0,
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        let (cases, pages, slowest) = walk(&get, "/cases", "/cases/").await?;
        println!(
            "cases: {cases} in {pages} pages, slowest page {:.1} ms, {:.1} s in all",
            slowest.as_secs_f64() * 1000.0,
            started.elapsed().as_secs_f64()
        );
    }
    let (_, items) = get("/items".into()).await?;
    let item = first_link(&items, "/items/").context("no item listed: load the system first")?;
    let (_, cases) = get("/cases".into()).await?;
    let case = first_link(&cases, "/cases/").context("no case listed: load the system first")?;
    let pages = [
        "/".to_owned(),
        "/items".into(),
        "/items?overdue=yes".into(),
        "/items?level=RED".into(),
        "/items?status=ITEM_STATUS_ACCEPTED&department=SCJG".into(),
        item,
        "/cases".into(),
        "/cases?status=CASE_OPEN&level=RED".into(),
        "/cases?escalated=yes".into(),
        case,
        "/stats".into(),
        "/catalog".into(),
        "/audit".into(),
        "/progress".into(),
    ];
    println!("{:<58} {:>9} {:>9} {:>9} {:>9}", "page", "p50 ms", "p95 ms", "max ms", "bytes");
    for page in pages {
        let mut times = Vec::with_capacity(args.requests);
        let mut bytes = 0;
        for _ in 0..args.requests {
            let (took, body) = get(page.clone()).await?;
            times.push(took);
            bytes = body.len();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<58} {:>9.1} {:>9.1} {:>9.1} {:>9}",
            page.chars().take(58).collect::<String>(),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
            bytes
        );
    }
    Ok(())
}
