//! The `roomcast` binary: parse flags, set up logging, load config, serve.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use figment::providers::Serialized;
use roomcast::server::Listening;
use roomcast::{Config, Server};

/// An embeddable, scriptable real-time chat server.
///
/// With no flags it listens on 127.0.0.1:3000 with the routes /echo, /shout and
/// /chat, driven by scripts/*.rhai (or built-in copies when there is no scripts
/// directory). Settings are layered: defaults, then the config file, then
/// ROOMCAST_* environment variables (nested keys joined by "__", e.g.
/// ROOMCAST_LIMITS__MAX_MESSAGE_SIZE=1048576), then these flags.
///
/// Scripts reload when saved; SIGHUP re-reads them on demand. SIGTERM or
/// Ctrl-C drains: every client gets Close 1001.
#[derive(Parser, Debug)]
#[command(name = "roomcast", version, about, long_about)]
struct Cli {
    /// TOML config file (see roomcast.toml for every option).
    #[arg(long, short, env = "ROOMCAST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:3000 (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Scripts directory (overrides `scripts.dir`).
    #[arg(long, value_name = "DIR")]
    scripts: Option<PathBuf>,
    /// Log filter, e.g. info, debug, roomcast=debug (RUST_LOG syntax).
    #[arg(
        long,
        env = "ROOMCAST_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    log: String,
    /// Log format: text for people, json (one object per line) for log collectors.
    #[arg(long, env = "ROOMCAST_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ask a running server's /healthz (for container HEALTHCHECKs that have no
    /// curl): exit 0 when it answers 200, 1 otherwise. ADDR defaults to the
    /// configured listen address.
    Health {
        /// host:port of the server.
        addr: Option<String>,
    },
    /// Compile scripts and check their hooks; print errors as file:line:col.
    /// With no FILES, checks every script the configuration uses.
    Check {
        /// Script files to check.
        files: Vec<PathBuf>,
    },
    /// Print the effective configuration (after file, environment and flags)
    /// as JSON, secrets (api.key, auth.hs256_secret, a Redis password) as "***".
    Config {
        /// Print the secrets as they are.
        #[arg(long)]
        show_secrets: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);

    let mut figment = Config::figment(cli.config.as_deref());
    if let Some(listen) = cli.listen {
        figment = figment.merge(Serialized::default("listen", listen));
    }
    if let Some(dir) = &cli.scripts {
        figment = figment.merge(Serialized::default("scripts.dir", dir));
    }
    let config = match Config::from_figment(&figment) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("roomcast: {e}");
            return ExitCode::from(2);
        }
    };

    match cli.command {
        Some(Command::Health { addr }) => {
            health(&addr.unwrap_or_else(|| config.listen.to_string()))
        }
        Some(Command::Check { files }) => check(&config, files),
        Some(Command::Config { show_secrets }) => {
            let shown = if show_secrets {
                serde_json::to_value(&config).expect("config serialises")
            } else {
                config.redacted()
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).expect("config serialises")
            );
            ExitCode::SUCCESS
        }
        None => run(config),
    }
}

fn check(config: &Config, files: Vec<PathBuf>) -> ExitCode {
    // With no files, what the server would run (built-in copies included).
    let (checked, errors) = if files.is_empty() {
        roomcast::script::check_config(config)
    } else {
        let errors = roomcast::script::check_files(&config.scripts.limits, &files);
        let names = files.iter().map(|f| f.display().to_string()).collect();
        (names, errors)
    };
    for e in &errors {
        eprintln!("{e}");
    }
    if errors.is_empty() {
        println!("{} script(s) OK: {}", checked.len(), checked.join(", "));
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(config: Config) -> ExitCode {
    let threads = match config.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roomcast: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::new(config) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("roomcast: {e}");
                return ExitCode::from(2);
            }
        };
        let (listener, listening) = match roomcast::server::listen(
            server.config().listen,
            server.config().listen_backlog,
        ) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("roomcast: cannot listen on {e}");
                return ExitCode::FAILURE;
            }
        };
        let local = listener.local_addr().ok();
        let addr = local.map(|a| a.to_string()).unwrap_or_default();
        let routes = server
            .config()
            .routes
            .iter()
            .map(|r| {
                let origin = match r.native {
                    Some(native) => format!("native:{native:?}").to_lowercase(),
                    None => server
                        .scripts()
                        .origins()
                        .into_iter()
                        .find(|(name, _)| *name == r.script)
                        .map(|(_, o)| o)
                        .unwrap_or_default(),
                };
                format!("/{}={}", r.name, origin)
            })
            .collect::<Vec<_>>()
            .join(" ");
        let socket = match listening {
            Listening::Bound { backlog } => format!("backlog: {backlog}"),
            Listening::Inherited => "socket: inherited (LISTEN_FDS)".to_owned(),
        };
        tracing::info!(
            "roomcast listening on http://{addr} routes: {routes} (default: /{}) {socket} threads: {threads}",
            server.config().default_route
        );
        match listening {
            Listening::Bound { backlog } if backlog < server.config().listen_backlog => {
                tracing::warn!(
                    "listen_backlog {} is above net.core.somaxconn: the kernel allows {backlog} (raise it with sysctl for reconnect storms)",
                    server.config().listen_backlog
                );
            }
            Listening::Inherited if local != Some(server.config().listen) => {
                tracing::warn!(
                    "the inherited socket is {addr} but `listen` says {}: `roomcast health` asks `listen`",
                    server.config().listen
                );
            }
            _ => {}
        }
        #[cfg(unix)]
        reload_on_sighup(server.clone());
        match server.serve(listener, roomcast::shutdown::signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("roomcast: {e}");
                // A configuration its store refused (credentials, a CA) is
                // a configuration error, as one found before the start.
                match e {
                    roomcast::Error::Config(_) => ExitCode::from(2),
                    _ => ExitCode::FAILURE,
                }
            }
        }
    })
}

/// SIGHUP (`systemctl reload roomcast`) re-reads every script and swaps in
/// the ones that changed, as a save does when the directory is watched: for
/// `scripts.watch = false`, or file systems without change notifications.
/// (Unhandled, SIGHUP would end the process.)
#[cfg(unix)]
fn reload_on_sighup(server: Server) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP (script reloads on demand): {e}");
            return;
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading changed scripts");
            server.reload_scripts().await;
        }
    });
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// GET /healthz with a plain socket: no HTTP client needed in a slim image.
fn health(addr: &str) -> ExitCode {
    use std::io::{Read, Write};
    use std::time::Duration;
    let answer = (|| -> std::io::Result<String> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        write!(
            s,
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })();
    match answer {
        Ok(a) if a.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(a) => {
            eprintln!("roomcast: unhealthy: {}", a.lines().next().unwrap_or(""));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("roomcast: unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}
