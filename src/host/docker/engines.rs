//! The run's engines: the default one (`DOCKER_HOST`, or the local socket) and the named ones
//! a fleet config declares (`engines: {edge: "ssh://root@edge"}`), each connected on first
//! use and then shared.
//!
//! **Which engine a call goes to** is a property of the *thread*: `docker::use_engine(name)`
//! sets it for the script thread or `parallel` worker that calls it, and a worker starts on
//! the engine of the thread that called `parallel`. Why not a run-wide setting like
//! `docker::use_project`: the rebuild runs services of different engines side by side, one
//! per worker, and each transaction must stay on its own service's engine from backup to
//! rollback; a shared setting would let one worker switch another's engine mid-transaction.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use indexmap::IndexMap;

use crate::docker as dk;
use crate::host::{HostCtx, HostResult, fail, invalid, lock};

/// One connected engine and its container table (`docker::ps` answers from it).
pub struct Engine {
    pub conn: dk::Connection,
    pub table: OnceLock<dk::table::Table>,
}

/// The declared names and the connected engines of one runtime.
#[derive(Default)]
pub struct Engines {
    /// name → address, in the order declared.
    declared: Mutex<IndexMap<String, String>>,
    /// address → engine (two names for one address share it).
    connected: Mutex<HashMap<String, Arc<Engine>>>,
}

thread_local! {
    /// The engine name this thread's calls go to; `None`: the default engine.
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The engine name of this thread (`None`: the default).
pub fn current_name() -> Option<String> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Sets this thread's engine name.
pub fn set_current(name: Option<String>) {
    CURRENT.with(|c| *c.borrow_mut() = name);
}

/// Makes `name` this thread's engine until the guard drops (a `parallel` worker takes its
/// caller's engine this way).
pub fn enter(name: Option<String>) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(name));
    EnterGuard { prev }
}

#[must_use = "the engine is only current while the guard lives"]
pub struct EnterGuard {
    prev: Option<String>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        set_current(self.prev.take());
    }
}

impl Engines {
    /// Declares `name` at `url`. The same name again must mean the same address (two configs
    /// loaded by one run may both declare `edge`, but not as two machines).
    pub fn declare(&self, name: &str, url: &str) -> Result<(), String> {
        if !dk::address::valid_engine_name(name) {
            return Err(format!(
                "engine name '{}' is not a name (letters, digits, '-', '_')",
                name.escape_default()
            ));
        }
        dk::address::Address::parse(url)?;
        let mut d = lock(&self.declared);
        match d.get(name) {
            Some(old) if old != url => Err(format!(
                "engine '{name}' is already {old}; one run cannot give it a second address ({url})"
            )),
            _ => {
                d.insert(name.to_string(), url.to_string());
                Ok(())
            }
        }
    }

    /// The address of `name` (`None`: the default engine, `DOCKER_HOST`).
    pub fn address_of(&self, name: Option<&str>) -> HostResult<String> {
        let Some(name) = name else {
            return Ok(dk::docker_host());
        };
        let d = lock(&self.declared);
        d.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = d.keys().map(String::as_str).collect();
            invalid(format!(
                "unknown engine '{name}' (declared: {}); declare it under `engines:` in the \
                 fleet config (and load it with config::load) or with \
                 docker::add_engine(name, address)",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// Every engine connected so far.
    pub fn connected(&self) -> Vec<Arc<Engine>> {
        lock(&self.connected).values().cloned().collect()
    }
}

/// The engine this thread's calls go to, connecting on first use. A failed connection is not
/// kept (the daemon may come up while a runbook waits); an ssh tunnel that ended is started
/// again on the next call.
pub fn engine(h: &HostCtx) -> HostResult<Arc<Engine>> {
    let url = h.engines.address_of(current_name().as_deref())?;
    let known = lock(&h.engines.connected).get(&url).cloned();
    if let Some(e) = known {
        match &e.conn.tunnel {
            Some(t) if !t.alive() => {
                // Same local socket: the client made before keeps working once it is back.
                let target = match dk::address::Address::parse(&url) {
                    Ok(dk::address::Address::Ssh(t)) => t,
                    _ => return Ok(e),
                };
                h.block_on(async move { dk::ssh::tunnel(&target).await })?
                    .map_err(fail)?;
            }
            _ => {}
        }
        return Ok(e);
    }
    let target = url.clone();
    let conn = h
        .block_on(async move { dk::connect_to(&target).await })?
        .map_err(fail)?;
    let mut c = lock(&h.engines.connected);
    let e = c.entry(url).or_insert_with(|| {
        Arc::new(Engine {
            conn,
            table: OnceLock::new(),
        })
    });
    Ok(e.clone())
}

/// `use_engine`'s argument: a name, or `()` / `""` for the default engine.
fn name_arg(name: &rhai::Dynamic) -> HostResult<Option<String>> {
    if name.is_unit() {
        return Ok(None);
    }
    let Some(s) = name.clone().into_immutable_string().ok() else {
        return Err(invalid(format!(
            "docker::use_engine takes an engine name or (), not {}",
            name.type_name()
        )));
    };
    Ok((!s.is_empty()).then(|| s.to_string()))
}

/// `docker::reach`: `ip:port` itself on a local engine; through the tunnel on an ssh engine.
pub(in crate::host) fn reach(h: &HostCtx, ip: &str, port: rhai::INT) -> HostResult<String> {
    let addr: std::net::IpAddr = ip.parse().map_err(|_| {
        invalid(format!(
            "docker::reach: '{}' is not an IP address (give a container's address, like \
             the IPAddress of its network in docker::inspect)",
            ip.escape_default()
        ))
    })?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid(format!("docker::reach: {port} is not a port (1–65535)")))?;
    let e = engine(h)?;
    match dk::address::Address::parse(&e.conn.url) {
        Ok(dk::address::Address::Ssh(target)) => {
            let at = h
                .block_on(async move { dk::ssh::forward(&target, addr, port).await })?
                .map_err(fail)?;
            Ok(at.to_string())
        }
        _ => Ok(std::net::SocketAddr::new(addr, port).to_string()),
    }
}

#[rhai::plugin::export_module]
pub mod engines_api {
    use rhai::plugin::*;
    use rhai::{Dynamic, EvalAltResult, Map};

    use crate::host::with_host;

    /// Sends this thread's following `docker::` calls (and the builds they start) to the
    /// engine `name`, declared under `engines:` in the fleet config or with
    /// `docker::add_engine`; `()` or `""` goes back to the default engine (`DOCKER_HOST`).
    /// Each `parallel` worker starts on its caller's engine and may switch on its own. Returns
    /// the address it now uses. An unknown name is an error; the engine is connected on its
    /// first call.
    #[rhai_fn(return_raw)]
    pub fn use_engine(ctx: NativeCallContext, name: Dynamic) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let name = super::name_arg(&name)?;
            let url = h.engines.address_of(name.as_deref())?;
            super::set_current(name);
            Ok(url)
        })
    }

    /// Declares an engine `name` at `address` (`ssh://user@host[:port]`, `unix:///path`,
    /// `tcp://host:port`) for `docker::use_engine`, as a fleet config's `engines:` does.
    #[rhai_fn(return_raw)]
    pub fn add_engine(
        ctx: NativeCallContext,
        name: &str,
        address: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            h.engines
                .declare(name, address)
                .map_err(crate::host::invalid)
        })
    }

    /// `"host:port"` at which this machine reaches port `port` of a container whose address
    /// is `ip` on this thread's engine: `ip:port` itself on a local engine; on an ssh engine,
    /// a loopback port forwarded through its tunnel (a remote bridge network is not routed
    /// here). The rebuild's gate probes `http://${docker::reach(ip, port)}/health`.
    #[rhai_fn(return_raw)]
    pub fn reach(
        ctx: NativeCallContext,
        ip: &str,
        port: rhai::INT,
    ) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| super::reach(h, ip, port))
    }

    /// This thread's engine: `#{name, address}` (`name` is `()` for the default engine).
    #[rhai_fn(return_raw)]
    pub fn engine(ctx: NativeCallContext) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let name = super::current_name();
            let mut m = Map::new();
            m.insert(
                "address".into(),
                h.engines.address_of(name.as_deref())?.into(),
            );
            m.insert("name".into(), name.map_or(Dynamic::UNIT, Dynamic::from));
            Ok(m)
        })
    }
}

pub fn module() -> rhai::Module {
    rhai::exported_module!(engines_api)
}
