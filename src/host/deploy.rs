//! The start-first half of `docker::` (zero-downtime deploys); merged into the `docker`
//! module, so scripts call `docker::start_next(...)` like every other Docker primitive.
//!
//! ```rhai
//! let n = docker::start_next("data-api");          // new container next to the old one
//! let w = docker::wait_healthy(n.next_name);        // gate it by its own name
//! if w.status == "healthy" { docker::promote("data-api") } else { docker::discard("data-api") }
//! ```
//!
//! Why three calls and not one: the gate between them is the playbook's (health, probes,
//! settle, logs), exactly as after a stop-first `docker::recreate`. `docker::recover(name)`
//! mends a deploy interrupted between any two of them. See `src/docker/start_first.rs`.

use rhai::plugin::*;
use rhai::{EvalAltResult, Map};

use super::docker::conn::{changed, client, project, to_dyn};
use super::{HostResult, fail, with_host};
use crate::docker::start_first;

/// One of the three steps: planned or refused (`--dry-run`, `--read-only`) before the engine
/// is contacted, then run on the engine.
fn step<T, F>(
    ctx: &NativeCallContext,
    what: &str,
    name: &str,
    detail: &str,
    run: impl FnOnce(bollard::Docker, Option<String>) -> F,
) -> HostResult<Map>
where
    T: serde::Serialize,
    F: std::future::Future<Output = Result<T, String>>,
{
    with_host(ctx, |h| {
        if !h.mutation(what, name, detail)? {
            let mut m = Map::new();
            m.insert("name".into(), name.into());
            m.insert("planned".into(), true.into());
            return Ok(m);
        }
        let d = client(h)?;
        let p = project(h);
        let r = h.block_on(run(d, p))?;
        changed(h);
        match to_dyn(&r.map_err(fail)?)? {
            v if v.is_unit() => Ok(Map::new()),
            v => v
                .try_cast::<Map>()
                .ok_or_else(|| fail(format!("internal: {what} result"))),
        }
    })
}

#[export_module]
pub mod deploy_api {
    use super::*;

    /// Start-first, step 1: creates and starts the new container for `name` on the image it
    /// was created with (after a rebuild: the new build) next to the old one, under a
    /// temporary name, with the old one's configuration and networks but not yet the
    /// service's aliases (so DNS does not name it before it listens). Returns
    /// `#{name, next_name, next_id, old_id, old_image_id, new_image_id, ms}`; gate the new
    /// container by `next_name`, then `docker::promote` or `docker::discard`. Refused for a
    /// container that publishes host ports (two containers cannot share them).
    #[rhai_fn(return_raw)]
    pub fn start_next(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        step(
            &ctx,
            "docker::start_next",
            name,
            "new container next to the old",
            |d, p| async move { start_first::start_next(&d, p.as_deref(), name, None).await },
        )
    }

    /// Start-first, step 3 after a passed gate: the new container takes the service's aliases,
    /// the old one leaves its networks, drains briefly, is stopped and removed, and the new one
    /// takes the compose name. Returns `#{name, id, ms}`.
    #[rhai_fn(return_raw)]
    pub fn promote(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        step(
            &ctx,
            "docker::promote",
            name,
            "old container out, new one in",
            |d, p| async move { start_first::promote(&d, p.as_deref(), name).await },
        )
    }

    /// Start-first, step 3 after a failed gate: removes the new container; the old one was
    /// never stopped. Returns `#{name, id, ms}`, or `#{}` when there was none.
    #[rhai_fn(return_raw)]
    pub fn discard(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        step(
            &ctx,
            "docker::discard",
            name,
            "remove the new container",
            |d, p| async move { start_first::discard(&d, p.as_deref(), name).await },
        )
    }
}

/// The start-first functions, for the `docker` module to merge.
pub fn module() -> rhai::Module {
    exported_module!(deploy_api)
}
