//! gateway-ratelimit --config PATH [--redis URL] [--listen ADDR]

use gateway_ratelimit::config::Config;
use gateway_ratelimit::counters::RedisCounters;
use gateway_ratelimit::limiter::Limiter;
use gateway_ratelimit::server;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: gateway-ratelimit --config FILE|DIR [--redis redis://HOST:PORT] \
[--listen ADDR:PORT]
  --config  envoyproxy/ratelimit YAML: one file, or a directory whose *.yaml/*.yml are read
  --redis   Redis URL (default redis://127.0.0.1:6379)
  --listen  gRPC ShouldRateLimit and HTTP GET /healthz (default 0.0.0.0:8081)";

struct Args {
    config: PathBuf,
    redis: String,
    listen: SocketAddr,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut config, mut redis, mut listen) = (None, None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--config" => &mut config,
            "--redis" => &mut redis,
            "--listen" => &mut listen,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        };
        *slot = Some(args.next().ok_or_else(|| format!("{flag} needs a value"))?);
    }
    let listen = listen.unwrap_or_else(|| "0.0.0.0:8081".to_owned());
    Ok(Args {
        config: config.ok_or("--config is required")?.into(),
        redis: redis.unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
        listen: listen.parse().map_err(|_| format!("--listen {listen:?} is not ADDR:PORT"))?,
    })
}

/// The file, or every *.yaml / *.yml in the directory (sorted, so errors are reproducible).
fn load_config(path: &Path) -> Result<Config, String> {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut config = Config::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        config.add_yaml(&file.display().to_string(), &text).map_err(|e| e.to_string())?;
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("gateway-ratelimit: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match load_config(&args.config) {
        Ok(config) => config,
        Err(msg) => {
            eprintln!("gateway-ratelimit: config refused: {msg}");
            return ExitCode::from(1);
        }
    };
    // The URL may carry a password: errors about it name no part of it.
    let counters = match RedisCounters::new(&args.redis) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("gateway-ratelimit: --redis is not a Redis URL ({:?})", e.kind());
            return ExitCode::from(2);
        }
    };
    let mut domains: Vec<String> = config.domains().map(str::to_owned).collect();
    domains.sort();
    eprintln!("gateway-ratelimit: listening on {} (domains: {})", args.listen, domains.join(", "));
    let limiter = Arc::new(Limiter::new(config, counters));
    // On SIGTERM or Ctrl-C: stop accepting, let answers in flight finish, and exit after
    // SHUTDOWN_GRACE even if Envoy keeps its HTTP/2 connections open (it always does).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop_tx.send(());
    });
    let mut graceful = stop_rx.clone();
    let mut hard = stop_rx;
    let served = server::serve(limiter, args.listen, async move {
        let _ = graceful.changed().await;
    });
    tokio::select! {
        result = served => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gateway-ratelimit: cannot serve on {}: {e}", args.listen);
                ExitCode::from(1)
            }
        },
        () = async move {
            let _ = hard.changed().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => ExitCode::SUCCESS,
    }
}

const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
