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
        /// Start only the first N services of services.yaml (the infrastructure, InfluxDB and
        /// the Jaeger stand-in, always starts).
        #[arg(long, value_name = "N")]
        services: Option<usize>,
        /// Start only these services (comma-separated or repeated; the infrastructure always
        /// starts).
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
        /// Run the services as one Docker Swarm stack (no infrastructure): starts a registry
        /// on 127.0.0.1:5000 (Debian's docker-registry) and a single-node Swarm if there is
        /// none, pushes the images there and deploys them with `docker stack deploy`.
        #[arg(long)]
        swarm: bool,
    },
    /// Stop and remove the lab (containers, networks, volumes, its service images).
    Down {
        /// Remove the Swarm lab: the stack, its images, the registry and its data, and the
        /// Swarm if `lab up --swarm` created it.
        #[arg(long)]
        swarm: bool,
    },
    /// Show the lab's containers and their health.
    Status {
        /// Show the Swarm lab's services: image, last update, running tasks.
        #[arg(long)]
        swarm: bool,
    },
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

pub fn lab(global: &GlobalOpts, args: LabArgs) -> Result<i32> {
    let rt = lab::async_runtime()?;
    let state_dir = lab::state_dir(&global.root.clone().unwrap_or_else(|| PathBuf::from(".")));
    let progress = |line: &str| tracing::info!(target: "dockhand::lab", "{line}");
    let base = LabOptions::open(&args.dir, &args.project)?;
    match args.command {
        LabCommand::Up {
            services,
            only,
            fault,
            ports,
            wait,
            swarm,
        } => {
            let o = LabOptions {
                services,
                only,
                faults: fault,
                ports,
                timeout: wait,
                ..base
            };
            let states = if swarm {
                lab::swarm::up(rt.handle(), &o, &state_dir, &progress)
            } else {
                lab::up(rt.handle(), &o, &state_dir, &progress)
            }
            .map_err(Error::Usage)?;
            print(global.json, &states, || lab::up_table(&states));
            Ok(o.up_exit_code(&states))
        }
        LabCommand::Down { swarm } => {
            if swarm {
                lab::swarm::down(rt.handle(), &base, &state_dir, &progress)
            } else {
                lab::down(&base, &state_dir, &progress)
            }
            .map_err(Error::Usage)?;
            Ok(0)
        }
        LabCommand::Status { swarm: true } => {
            let list = lab::swarm::status(rt.handle(), &args.project).map_err(Error::Usage)?;
            print(global.json, &list, || lab::swarm::status_table(&list));
            Ok(if list.is_empty() { 1 } else { 0 })
        }
        LabCommand::Status { swarm: false } => {
            let list = lab::status(rt.handle(), &args.project).map_err(Error::Usage)?;
            print(global.json, &list, || lab::status_table(&list));
            Ok(if list.is_empty() { 1 } else { 0 })
        }
    }
}

/// `data` as JSON with `--json`, else the table `text` makes.
fn print<T: serde::Serialize + ?Sized>(json: bool, data: &T, text: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(data).unwrap_or_default());
    } else {
        print!("{}", text());
    }
}
