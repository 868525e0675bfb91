//! `dockhand lab up|down|status`: the HomeIQ lab fleet on this machine's Docker engine.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use super::GlobalOpts;
use crate::error::{Error, Result};
use crate::lab::{self, LabOptions};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab images from nothing and start the fleet, waiting until it is healthy.
    Up {
        /// Start only the first N services of services.yaml (InfluxDB always starts).
        #[arg(long, value_name = "N")]
        services: Option<usize>,
        /// Start only these services (comma-separated or repeated; InfluxDB always starts).
        #[arg(long, value_name = "SERVICE", value_delimiter = ',')]
        only: Vec<String>,
        /// Inject a fault: SERVICE=KIND, KIND one of none, unhealthy, crash-loop,
        /// slow-start, error-logs, slow-health. Repeatable.
        #[arg(long, value_name = "SERVICE=KIND", value_parser = lab::parse_fault)]
        fault: Vec<(String, String)>,
        /// Publish the seeds' ports on 127.0.0.1 (one lab at a time can do this).
        #[arg(long)]
        ports: bool,
        /// Give up waiting for health after this long.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::parse_duration)]
        wait: Duration,
    },
    /// Stop and remove the lab (containers, networks, volumes, its service images).
    Down,
    /// Show the lab's containers and their health.
    Status,
}

/// Options shared by the lab subcommands.
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// The lab directory.
    #[arg(long, default_value = "examples/homeiq", value_name = "DIR")]
    pub dir: PathBuf,
    /// Compose project name (run several labs side by side with different names).
    #[arg(long, default_value = "homeiq", value_name = "NAME")]
    pub project: String,
    #[command(subcommand)]
    pub command: LabCommand,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

pub fn lab(global: &GlobalOpts, args: LabArgs) -> Result<i32> {
    let rt = runtime()?;
    let root = global.root.clone().unwrap_or_else(|| PathBuf::from("."));
    let state_dir = std::path::absolute(root.join(".dockhand/lab"))
        .unwrap_or_else(|_| root.join(".dockhand/lab"));
    let progress = |line: &str| tracing::info!(target: "dockhand::lab", "{line}");
    let dir = args.dir.canonicalize().map_err(|source| Error::Io {
        path: args.dir.clone(),
        source,
    })?;
    let opts = |services, only, faults, ports, timeout| LabOptions {
        dir: dir.clone(),
        project: args.project.clone(),
        services,
        only,
        faults,
        ports,
        timeout,
    };
    if !args.dir.join("docker-compose.yml").is_file() {
        return Err(Error::Usage(format!(
            "{} has no docker-compose.yml; run from the dockhand checkout or pass --dir",
            args.dir.display()
        )));
    }
    match args.command {
        LabCommand::Up {
            services,
            only,
            fault,
            ports,
            wait,
        } => {
            let o = opts(services, only, fault, ports, wait);
            let states = lab::up(rt.handle(), &o, &state_dir, &progress).map_err(Error::Usage)?;
            if global.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&states).unwrap_or_default()
                );
            } else {
                println!("{:<32} {:<10} {:>8}", "SERVICE", "STATUS", "READY MS");
                for s in &states {
                    println!("{:<32} {:<10} {:>8}", s.service, s.status, s.ms);
                }
            }
            let injected: Vec<&String> = o
                .faults
                .iter()
                .filter(|(_, k)| k != "none")
                .map(|(s, _)| s)
                .collect();
            let bad = states
                .iter()
                .filter(|s| s.status != "healthy" && !injected.contains(&&s.service))
                .count();
            Ok(if bad == 0 { 0 } else { 1 })
        }
        LabCommand::Down => {
            lab::down(
                &opts(None, vec![], vec![], false, Duration::ZERO),
                &state_dir,
                &progress,
            )
            .map_err(Error::Usage)?;
            Ok(0)
        }
        LabCommand::Status => {
            let list = lab::status(rt.handle(), &args.project).map_err(Error::Usage)?;
            if global.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else {
                println!(
                    "{:<32} {:<10} {:<10} {:<18} STATUS",
                    "SERVICE", "STATE", "HEALTH", "CATEGORY"
                );
                for c in &list {
                    println!(
                        "{:<32} {:<10} {:<10} {:<18} {}",
                        c.service, c.state, c.health, c.category, c.status
                    );
                }
            }
            Ok(if list.is_empty() { 1 } else { 0 })
        }
    }
}
