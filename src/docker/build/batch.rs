//! Builds that arrive together, done as one BuildKit solve.
//!
//! **Why.** `docker compose build` hands BuildKit every service of the project in one solve:
//! one compose process, one BuildKit session, the shared base stages resolved once, and
//! BuildKit schedules the steps itself. A rebuild that builds each service by its own
//! `docker compose build SERVICE` pays a compose process, a project load and a session per
//! service, and on a 2-core host those builds compete with each other for the CPU the
//! solves need: measured here, 12 services as 12 compose builds at once took 1.2–2.2× the
//! wall time of the same 12 in one `docker compose build`.
//!
//! **How.** Like a database's group commit. A build asked for with `batch` joins the queue
//! of its compose project (same engine, same files, same build args, same `--no-cache`). If
//! no solve of that queue is running, one starts once the burst is over (no build joined for
//! 200 ms, at most 3 s) with everything queued; builds that arrive while it runs wait and go
//! together in the next one. So the batch size follows the caller's own concurrency (the
//! rebuild's build slots) and there is no fixed count: a lone build starts after 200 ms, a
//! burst becomes one solve.
//!
//! **Priority.** A caller may say its build is wanted sooner (`priority`, higher first): a
//! solve takes only the highest priority among the builds waiting, and the others go in the
//! next solve. The rebuild uses it for the categories whose deploys must go a few at a time
//! (their chain of turns is the longest), so those turns start while the rest still build
//! instead of after the last image of one solve of everything.
//!
//! **Memory.** A solve does not start while the host is short of memory (`wait_for_memory`):
//! a build count that suits one machine can exhaust another, and the waiting shows up as the
//! builds' queue time, not as an OOM-killed engine.
//!
//! **No CPU gate, on purpose.** CPU is not used up the way memory is: a solve on busy cores
//! runs slower, it does not fail, and BuildKit already spreads one solve's steps over the
//! cores there are. Holding a solve back while the CPU is busy would only add its wait to
//! the rebuild when the CPU is busy for other reasons: the lab's idle fleet alone keeps 1.76
//! of this machine's 2 cores busy (46 healthchecks a second, each a `runc exec`; 35.2
//! CPU-seconds in 20 s, read from /proc/stat), so such a gate would never open there.
//!
//! **Failures stay per service.** A solve that fails says little about which target failed
//! and stops the rest, so a failed batch is built again one service at a time (concurrently):
//! each caller gets its own verdict, its own failure kind and its own log, and the services
//! that were fine come out of BuildKit's cache in a moment. A caller that stops waiting
//! (time-out, cancel) leaves the solve to the others; when every caller of a solve is gone
//! the compose process is killed.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use tokio::sync::oneshot;

use super::{BuildError, BuildSpec, Built, FailureKind, compose_cli, open_log};

/// How long a queue waits after the last build joined it before its solve starts: the
/// rebuild's workers ask within milliseconds of each other on a quiet host, but each first
/// tags its backup and writes its journal, and on a busy one (load 70 here) a burst of 44
/// spread over seconds with gaps of 100 ms and more, so a fixed 30 ms pause split it into
/// several solves (each paying a compose process and a BuildKit session).
const GATHER: Duration = Duration::from_millis(200);
/// The longest a solve waits for a burst to end.
const GATHER_MAX: Duration = Duration::from_secs(3);

/// What builds can share a solve: the same engine, project, files, args and cache setting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    docker_host: Option<String>,
    project: String,
    files: Vec<PathBuf>,
    args: Vec<(String, String)>,
    no_cache: bool,
}

/// One caller's build waiting in a queue.
struct Job {
    spec: BuildSpec,
    /// Higher goes in an earlier solve.
    priority: i64,
    log: Option<PathBuf>,
    asked: Instant,
    /// Set when its build begins (its solve's header, or its own build), so a caller that
    /// gives up can say in the log whether anything of it ran.
    began: Arc<AtomicBool>,
    /// Taken when the caller is answered (as soon as its image is named, or at the end).
    reply: Mutex<Option<Reply>>,
}

type Reply = oneshot::Sender<Result<Built, BuildError>>;

impl Job {
    fn reply(&self) -> std::sync::MutexGuard<'_, Option<Reply>> {
        self.reply.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the caller still waits for an answer.
    fn waiting(&self) -> bool {
        self.reply().as_ref().is_some_and(|r| !r.is_closed())
    }

    fn answer(&self, r: Result<Built, BuildError>) {
        if let Some(tx) = self.reply().take() {
            let _ = tx.send(r);
        }
    }
}

/// The queues, by key. A key is present while its driver task runs.
static QUEUES: LazyLock<Mutex<HashMap<Key, Vec<Job>>>> = LazyLock::new(Default::default);

fn queues() -> std::sync::MutexGuard<'static, HashMap<Key, Vec<Job>>> {
    QUEUES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds `spec` (a compose service's build) in one solve with the other batched builds of
/// its project that are waiting at the same time. Anything else — not a compose service, or
/// no Compose v2 to solve with — is built on its own by [`super::build`].
pub async fn build_batched(
    docker: &Docker,
    spec: &BuildSpec,
    log: Option<&std::path::Path>,
    priority: i64,
) -> Result<Built, BuildError> {
    let (Some(src), Some(_)) = (&spec.compose, compose_cli::buildkit()) else {
        return super::build(docker, spec, log).await;
    };
    let mut args: Vec<(String, String)> = spec.args.clone().into_iter().collect();
    args.sort();
    let key = Key {
        docker_host: spec.docker_host.clone(),
        project: src.project.clone(),
        files: src.files.clone(),
        args,
        no_cache: spec.no_cache,
    };
    let (reply, answer) = oneshot::channel();
    let job = Job {
        spec: spec.clone(),
        priority,
        log: log.map(PathBuf::from),
        asked: Instant::now(),
        began: Arc::default(),
        reply: Mutex::new(Some(reply)),
    };
    let began = job.began.clone();
    let start_driver = {
        let mut q = queues();
        let first = !q.contains_key(&key);
        q.entry(key.clone()).or_default().push(job);
        first
    };
    if start_driver {
        tokio::spawn(drive(key, docker.clone()));
    }
    let mut gave_up = GaveUp {
        log,
        began,
        waiting: true,
    };
    let r = answer.await;
    gave_up.waiting = false;
    r.unwrap_or_else(|_| {
        Err(BuildError::failed(
            FailureKind::Engine,
            format!("the batched build of {} ended without an answer", spec.tag),
        ))
    })
}

/// Closes a build log with a line saying its caller stopped waiting (time-out, cancel: the
/// caller's future is dropped) before its image was named, so a log that ends mid-step says
/// why; from then on the solve writes no more to it. A build still queued for its solve
/// says so instead: its log has nothing above.
struct GaveUp<'a> {
    log: Option<&'a std::path::Path>,
    began: Arc<AtomicBool>,
    waiting: bool,
}

impl Drop for GaveUp<'_> {
    fn drop(&mut self) {
        if !self.waiting {
            return;
        }
        if let Ok(Some(mut f)) = open_log(self.log) {
            let _ = if self.began.load(Ordering::SeqCst) {
                writeln!(
                    f,
                    "dockhand: stopped waiting for this build (time-out or cancel); its output until then is above"
                )
            } else {
                writeln!(
                    f,
                    "dockhand: stopped waiting for this build (time-out or cancel) while it was still queued for a solve; none of it ran"
                )
            };
        }
    }
}

/// Runs the solves of one queue until it is empty, then removes it (under the same lock a
/// new caller checks, so no job is left without a driver).
async fn drive(key: Key, docker: Docker) {
    loop {
        gather(&key).await;
        let jobs = {
            let mut q = queues();
            let waiting = q.get_mut(&key).map(std::mem::take).unwrap_or_default();
            if waiting.is_empty() {
                q.remove(&key);
                return;
            }
            let (jobs, later) = first_class(waiting);
            if !later.is_empty() {
                q.entry(key.clone()).or_default().extend(later);
            }
            jobs
        };
        solve(&docker, jobs, true).await;
    }
}

/// Waits until no build has joined `key`'s queue for [`GATHER`] (at most [`GATHER_MAX`]), so
/// a burst goes in one solve. A lone build waits [`GATHER`] only.
async fn gather(key: &Key) {
    let since = Instant::now();
    let mut seen = usize::MAX;
    loop {
        let n = queues().get(key).map_or(0, Vec::len);
        if n == seen || since.elapsed() >= GATHER_MAX {
            return;
        }
        seen = n;
        tokio::time::sleep(GATHER).await;
    }
}

/// Splits the waiting builds into those of the highest priority (this solve) and the rest
/// (the next ones), each in the order they were asked for.
fn first_class(waiting: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let top = waiting.iter().map(|j| j.priority).max().unwrap_or(0);
    waiting.into_iter().partition(|j| j.priority == top)
}

/// A solve does not start while the host has less than this much memory available...
const MIN_FREE_BYTES: u64 = 512 << 20;
/// ...or less than this percentage of its memory.
const MIN_FREE_PERCENT: u64 = 5;
/// How long a solve waits for memory before it starts anyway (and says so).
const MEMORY_WAIT: Duration = Duration::from_secs(300);

/// Waits while the host is short of memory (see the constants above): the builds are the
/// part of a rebuild that can exhaust it, and the fixed build count cannot know the host.
async fn wait_for_memory(n: usize) {
    let since = Instant::now();
    let mut said = false;
    while let Some(m) = crate::util::meminfo::Memory::read() {
        if !m.below(MIN_FREE_BYTES, MIN_FREE_PERCENT) {
            return;
        }
        if since.elapsed() > MEMORY_WAIT {
            tracing::warn!("starting {n} build(s) anyway after {MEMORY_WAIT:?} of low memory");
            return;
        }
        if !said {
            tracing::warn!(
                "{n} build(s) wait: {} MiB of {} MiB available, under the build floor",
                m.available >> 20,
                m.total >> 20
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One solve of `jobs`, each caller answered: as soon as BuildKit names its image (the
/// solve goes on for the others), or when the solve ends. A solve the engine failed (not a
/// step: `flightcontrol`, a closed transport) is tried once more as a whole when `retry`.
async fn solve(docker: &Docker, mut jobs: Vec<Job>, retry: bool) {
    wait_for_memory(jobs.len()).await;
    // A caller that stopped waiting while queued (or while the host was short of memory) has
    // closed its log saying none of its build ran (`GaveUp`): it joins no solve, so that
    // stays true, and nothing is built for nobody.
    jobs.retain(Job::waiting);
    if jobs.is_empty() {
        return;
    }
    let started = Instant::now();
    let cli = compose_cli::buildkit();
    let (Some(cli), true) = (cli, jobs.len() > 1) else {
        return one_by_one(docker, jobs).await;
    };
    let names: Vec<String> = jobs.iter().map(|j| j.spec.tag.clone()).collect();
    let job = together(&jobs);
    // The solve's output goes to each job's build log line by line as it comes, until that
    // job's image is named or its caller stops waiting (`GaveUp` then closes the log with a
    // line saying so): a solve that hangs in the engine leaves what it printed, the step it
    // hung in, where it used to leave an empty log (its output was written when it ended).
    let logs = open_logs(&jobs, &names);
    let (logs_ref, jobs_ref) = (&logs, &jobs);
    let (named_tx, mut named_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Dropped with the build future when compose ends, which ends `early` below.
    let watch = move |l: &str| {
        for (j, f) in jobs_ref.iter().zip(logs_ref) {
            if let Some(mut f) = f.as_ref().filter(|_| j.waiting()) {
                let _ = writeln!(f, "{l}");
            }
        }
        if let Some(r) = named(l) {
            let _ = named_tx.send(r);
        }
    };
    let build = async move { compose_cli::run_build(cli, &job, None, Some(&watch)).await };
    let early = async {
        while let Some(r) = named_rx.recv().await {
            let Some(j) = jobs
                .iter()
                .find(|j| same_image(&j.spec.tag, &r) && j.waiting())
            else {
                continue;
            };
            // Not named after all (the engine has no such image yet): answered at the end.
            if let Ok(b) = built(docker, j, started, names.len()).await {
                j.answer(Ok(b));
            }
        }
    };
    let outcome = tokio::select! {
        (r, ()) = async { tokio::join!(build, early) } => Some(r),
        () = abandoned(&jobs) => None,
    };
    let Some(outcome) = outcome else { return };
    let (ok, lines) = outcome.unwrap_or_else(|e| {
        for mut f in logs.iter().flatten() {
            let _ = writeln!(f, "dockhand: {e}");
        }
        (false, vec![e])
    });
    let rest: Vec<Job> = jobs.into_iter().filter(Job::waiting).collect();
    if !ok && retry && compose_cli::classify(&lines.join("\n")) == FailureKind::Engine {
        tracing::info!(
            "the engine failed a solve of {} builds; trying it once more",
            rest.len()
        );
        return Box::pin(solve(docker, rest, false)).await;
    }
    if !ok {
        let (culprit, verdict) = compose_cli::culprit(&lines);
        tracing::info!(
            "the solve of {} builds together failed ({culprit} — {verdict}); building the {} \
             not named yet each alone to find which",
            names.len(),
            rest.len()
        );
        return one_by_one(docker, rest).await;
    }
    for j in rest {
        let r = built(docker, &j, started, names.len()).await;
        j.answer(r);
    }
}

/// The image a `naming to REF done` line of BuildKit's plain progress names, if it is one.
fn named(line: &str) -> Option<String> {
    let rest = line.split_once(" naming to ")?.1;
    let (image, tail) = rest.split_once(' ')?;
    tail.trim_end().ends_with("done").then(|| image.to_string())
}

/// Whether two image references name the same image (`docker.io/library/x:latest` is `x`).
fn same_image(a: &str, b: &str) -> bool {
    fn norm(r: &str) -> String {
        let r = r
            .strip_prefix("docker.io/library/")
            .or_else(|| r.strip_prefix("docker.io/"))
            .unwrap_or(r);
        let last = r.rsplit('/').next().unwrap_or(r);
        if last.contains(':') || last.contains('@') {
            r.to_string()
        } else {
            format!("{r}:latest")
        }
    }
    norm(a) == norm(b)
}

/// `j`'s image, built by the solve that started at `started` with `n` builds.
async fn built(docker: &Docker, j: &Job, started: Instant, n: usize) -> Result<Built, BuildError> {
    let image_id = inspect(docker, &j.spec.tag).await?;
    Ok(Built {
        image_id,
        tag: j.spec.tag.clone(),
        ms: started.elapsed().as_millis() as u64,
        queued_ms: started.duration_since(j.asked).as_millis() as u64,
        together: n,
        lines: 0,
        builder: "buildkit".into(),
    })
}

/// The compose build of every job's service in one call, each with its caller's image name.
fn together(jobs: &[Job]) -> compose_cli::ComposeBuild {
    let mut job = super::compose_job(&jobs[0].spec);
    let mut over = String::from("services:\n");
    job.services.clear();
    for j in jobs {
        if let Some(src) = &j.spec.compose {
            over += &super::image_override(src, &j.spec);
            job.services.push(src.service.clone());
        }
    }
    job.stdin_file = Some(over);
    job
}

/// Each job built on its own, all at once; each caller gets its own answer.
async fn one_by_one(docker: &Docker, jobs: Vec<Job>) {
    let builds = jobs.into_iter().map(|j| async move {
        if !j.waiting() {
            return;
        }
        j.began.store(true, Ordering::SeqCst);
        let r = super::build(docker, &j.spec, j.log.as_deref()).await;
        j.answer(r);
    });
    futures_util::future::join_all(builds).await;
}

/// Resolves once every caller of `jobs` has stopped waiting (timed out, cancelled).
async fn abandoned(jobs: &[Job]) {
    loop {
        if !jobs.iter().any(Job::waiting) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each job's build log (appended to), opened with a line naming the services of the solve
/// it is built in; `None` for a job without a log or whose log cannot be opened.
fn open_logs(jobs: &[Job], tags: &[String]) -> Vec<Option<std::fs::File>> {
    jobs.iter()
        .map(|j| {
            j.began.store(true, Ordering::SeqCst);
            let mut f = open_log(j.log.as_deref()).ok().flatten()?;
            let _ = writeln!(
                f,
                "dockhand: {} builds in one BuildKit solve with {} others: {}",
                j.spec.tag,
                tags.len() - 1,
                tags.join(", ")
            );
            Some(f)
        })
        .collect()
}

async fn inspect(docker: &Docker, tag: &str) -> Result<String, BuildError> {
    docker
        .inspect_image(tag)
        .await
        .ok()
        .and_then(|i| i.id)
        .ok_or_else(|| {
            let what =
                format!("the build of {tag} reported success but the engine has no image {tag}");
            BuildError::failed(FailureKind::Engine, what)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tag: &str, priority: i64) -> Job {
        Job {
            spec: BuildSpec {
                tag: tag.into(),
                ..Default::default()
            },
            priority,
            log: None,
            asked: Instant::now(),
            began: Arc::default(),
            reply: Mutex::new(None),
        }
    }

    /// A caller that gives up says in its log whether its build had begun: a log with only
    /// that line must not point at output above it that does not exist.
    #[test]
    fn a_caller_that_gives_up_says_whether_its_build_had_begun() {
        let dir = tempfile::tempdir().unwrap();
        for began in [false, true] {
            let log = dir.path().join(format!("{began}.log"));
            drop(GaveUp {
                log: Some(&log),
                began: Arc::new(AtomicBool::new(began)),
                waiting: true,
            });
            drop(GaveUp {
                log: Some(&log),
                began: Arc::new(AtomicBool::new(began)),
                waiting: false,
            });
            let text = std::fs::read_to_string(&log).unwrap();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert_eq!(text.contains("output until then is above"), began, "{text}");
            assert_eq!(text.contains("still queued for a solve"), !began, "{text}");
        }
    }

    /// Builds whose callers stopped waiting before their solve began are left out of it:
    /// their logs, closed with "none of it ran", get no solve header after that line.
    #[tokio::test]
    async fn a_solve_of_callers_that_all_gave_up_builds_nothing_and_writes_no_log() {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<Job> = ["a", "b"]
            .iter()
            .map(|t| Job {
                log: Some(dir.path().join(format!("{t}.log"))),
                ..job(t, 0)
            })
            .collect();
        let docker = Docker::connect_with_local_defaults().unwrap();
        solve(&docker, jobs, true).await;
        for t in ["a", "b"] {
            let log = dir.path().join(format!("{t}.log"));
            assert!(!log.exists(), "{}", std::fs::read_to_string(&log).unwrap());
        }
    }

    #[test]
    fn a_solve_takes_the_highest_priority_and_leaves_the_rest_in_order() {
        let tags = |jobs: &[Job]| jobs.iter().map(|j| j.spec.tag.clone()).collect::<Vec<_>>();
        let (now, later) = first_class(vec![job("a", 0), job("b", 1), job("c", 0), job("d", 1)]);
        assert_eq!(tags(&now), ["b", "d"]);
        assert_eq!(tags(&later), ["a", "c"]);
        let (now, later) = first_class(vec![job("a", -3), job("b", -3)]);
        assert_eq!(
            tags(&now),
            ["a", "b"],
            "one class: one solve, whatever its number"
        );
        assert!(later.is_empty());
        let (now, later) = first_class(vec![job("a", i64::MIN), job("b", i64::MAX)]);
        assert_eq!(
            (tags(&now), tags(&later)),
            (vec!["b".to_string()], vec!["a".to_string()])
        );
        let (now, later) = first_class(Vec::new());
        assert!(now.is_empty() && later.is_empty());
    }

    #[test]
    fn reads_the_named_image_off_buildkit_progress() {
        let l = "#101 naming to docker.io/library/p14-ml-service:latest 0.0s done";
        assert_eq!(
            named(l).as_deref(),
            Some("docker.io/library/p14-ml-service:latest")
        );
        assert_eq!(
            named("#101 naming to docker.io/library/x:latest"),
            None,
            "not done yet"
        );
        assert_eq!(named("#9 [x 2/2] RUN echo naming to nothing"), None);
        assert_eq!(named(""), None);
    }

    #[test]
    fn compares_references_as_the_engine_does() {
        assert!(same_image(
            "p14-ml-service:latest",
            "docker.io/library/p14-ml-service:latest"
        ));
        assert!(same_image(
            "p14-ml-service",
            "docker.io/library/p14-ml-service:latest"
        ));
        assert!(same_image("127.0.0.1:5000/a/b:r1", "127.0.0.1:5000/a/b:r1"));
        assert!(same_image(
            "127.0.0.1:5000/a/b",
            "127.0.0.1:5000/a/b:latest"
        ));
        assert!(!same_image(
            "p14-ml-service:v2",
            "docker.io/library/p14-ml-service:latest"
        ));
        assert!(!same_image(
            "p14-ml",
            "docker.io/library/p14-ml-service:latest"
        ));
    }
}
