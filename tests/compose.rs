//! The compose driver end to end on a real engine: a two-service stack from
//! `tests/fixtures/compose/` (busybox web servers on the local Debian base, two networks, a
//! named volume) is built, brought up with its ports published on loopback, cut and healed
//! both ways and one way, paused, killed and started, stopped — then removed, and nothing
//! labelled with the run may be left, whether the checks passed or not.
//!
//! Needs a Docker engine, a Compose CLI (`docker compose` or `docker-compose`) and, the first
//! time, mmdebstrap (the local base is built if missing).
#![cfg(feature = "containers")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::left_behind;
use shakedown::containers::compose::{Project, RunLabels};
use shakedown::scenario::compose_file::ComposeFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest a restarted server may take to answer again.
const ANSWER_AGAIN_MAX: Duration = Duration::from_secs(30);

/// `GET /` on 127.0.0.1:`port`, bounded by `timeout`: the body's first line.
async fn get(port: u16, timeout: Duration) -> Result<String, String> {
    let exchange = async {
        let mut stream =
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.map_err(|e| e.to_string())?;
        let body = answer.split("\r\n\r\n").nth(1).ok_or_else(|| format!("no body in {answer:?}"))?;
        Ok(body.trim().to_owned())
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| "timed out".to_owned())?
}

/// Whether `from` reaches `target`'s web server (a service name or an address) within 3 s.
/// (`timeout`, not wget's `-T`: Debian's busybox wget crashes with it.)
async fn reaches(project: &Project, from: &str, target: &str) -> bool {
    let url = format!("http://{target}:8080/");
    let argv = ["timeout", "3", "busybox", "wget", "-q", "-O", "-", &url];
    match project.exec(from, &argv).await {
        Ok((code, _)) => code == 0,
        Err(error) => panic!("exec in {from}: {error}"),
    }
}

async fn answers_again(port: u16, name: &str) {
    let deadline = Instant::now() + ANSWER_AGAIN_MAX;
    loop {
        match get(port, Duration::from_secs(1)).await {
            Ok(body) if body == name => return,
            other if Instant::now() > deadline => panic!("{name} did not answer again on {port}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The checks, run under `Project::guarded` (which removes the project however they end).
async fn exercise(project: &Project) {
    let (alpha, beta) = (project.host_port("alpha", 8080).unwrap(), project.host_port("beta", 8080).unwrap());
    assert_eq!(get(alpha, Duration::from_secs(2)).await.unwrap(), "alpha");
    assert_eq!(get(beta, Duration::from_secs(2)).await.unwrap(), "beta");
    assert_eq!(project.host_port("alpha", 9999), None);
    assert!(reaches(project, "alpha", "beta").await && reaches(project, "beta", "alpha").await);
    let beta_addresses = project.addresses("beta").await.unwrap();
    assert_eq!(beta_addresses.len(), 2, "beta is on two networks: {beta_addresses:?}");

    // A cut both ways: nothing passes, on either network; healing counts what was dropped.
    let names = |n: &str| vec![n.to_string()];
    let cut = project.partition(&names("alpha"), &names("beta"), false).await.unwrap();
    assert_eq!(cut.services(), ["alpha", "beta"]);
    assert!(!reaches(project, "alpha", "beta").await, "alpha reached beta through the cut");
    assert!(!reaches(project, "beta", "alpha").await, "beta reached alpha through the cut");
    for address in &beta_addresses {
        assert!(!reaches(project, "alpha", address).await, "alpha reached beta at {address}");
    }
    assert_eq!(get(beta, Duration::from_secs(2)).await.unwrap(), "beta", "the host still reaches beta");
    let dropped = project.heal(&cut).await;
    assert!(dropped > 0, "the rules dropped nothing");
    assert!(reaches(project, "alpha", "beta").await, "the heal did not restore alpha → beta");

    // One way: alpha's packets to beta are dropped (TCP then fails from both ends).
    let cut = project.partition(&names("alpha"), &names("beta"), true).await.unwrap();
    assert!(!reaches(project, "alpha", "beta").await);
    assert!(project.heal(&cut).await > 0);
    assert!(reaches(project, "alpha", "beta").await);

    // Frozen: the host's request gets no answer; thawed, it does.
    project.pause("beta").await.unwrap();
    assert!(get(beta, Duration::from_secs(1)).await.is_err(), "a paused server answered");
    project.unpause("beta").await.unwrap();
    assert_eq!(get(beta, Duration::from_secs(2)).await.unwrap(), "beta");

    // Killed during a cut, started again on the same host port: the heal finds beta's rules
    // gone with its old namespace and still removes alpha's.
    let cut = project.partition(&names("alpha"), &names("beta"), false).await.unwrap();
    project.kill("beta").await.unwrap();
    assert!(!project.running("beta").await.unwrap());
    assert!(get(beta, Duration::from_secs(1)).await.is_err(), "a killed server answered");
    project.start("beta").await.unwrap();
    answers_again(beta, "beta").await;
    project.heal(&cut).await;
    assert!(reaches(project, "alpha", "beta").await, "alpha still cut from the restarted beta");

    // A clean stop, then a start.
    project.stop("beta", Duration::from_secs(2)).await.unwrap();
    assert!(!project.running("beta").await.unwrap());
    project.start("beta").await.unwrap();
    answers_again(beta, "beta").await;
    let (code, output) = project.exec("alpha", &["sh", "-c", "echo out; exit 3"]).await.unwrap();
    assert_eq!((code, output.trim()), (3, "out"));
    assert!(project.logs_tail("alpha", 5).await.len() < 10_000);
    assert!(project.exec("nope", &["true"]).await.unwrap_err().to_string().contains("no service `nope`"));
}

// Goal: the driver's whole surface works on a real engine and leaves nothing of the run.
// Method: one stack, every primitive in turn under `guarded`; then list the run's label. Then
// a second project, dropped without `down`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_stack_comes_up_takes_faults_and_leaves_nothing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose/docker-compose.yml");
    let file = ComposeFile::load(&path).unwrap();
    let run = RunLabels::new(1);
    let publish = [("alpha".to_string(), 8080), ("beta".to_string(), 8080)];
    let project = Project::up(&file, &publish, &run, |line| eprintln!("  {line}")).await.unwrap();
    assert_eq!(project.services(), ["alpha", "beta"]);
    assert!(project.container("alpha").is_some() && project.container("nope").is_none());
    let labelled = left_behind(&run.run);
    assert!(
        labelled.iter().filter(|l| l.starts_with("ps")).count() == 2,
        "containers labelled: {labelled:?}"
    );
    assert!(
        labelled.iter().filter(|l| l.starts_with("network")).count() == 2,
        "networks labelled: {labelled:?}"
    );
    assert!(
        labelled.iter().filter(|l| l.starts_with("volume")).count() == 1,
        "volume labelled: {labelled:?}"
    );
    let outcome = project.guarded(exercise(&project)).await;
    drop(project);
    assert_eq!(left_behind(&run.run), Vec::<String>::new(), "the run left these behind");
    outcome.unwrap();

    // A project dropped without `down` (an early return, a panic) is removed by its Drop.
    let dropped = Project::up(&file, &[], &RunLabels::new(2), |_| {}).await.unwrap();
    let run = dropped.labels().run.clone();
    assert!(!left_behind(&run).is_empty());
    drop(dropped);
    assert_eq!(left_behind(&run), Vec::<String>::new(), "a dropped project left these behind");
}

/// A compose file written into a fresh temp dir.
fn compose_in_temp(text: &str) -> (tempfile::TempDir, ComposeFile) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker-compose.yml");
    std::fs::write(&path, text).unwrap();
    let file = ComposeFile::load(&path).unwrap();
    (dir, file)
}

// Goal: a stack that cannot come up fails with the service's name, what it did and its last
// log lines, and leaves nothing; an image that is not on the engine fails before anything
// starts. Method: a service that exits 3 at once; a service naming an absent image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_that_cannot_come_up_names_the_service_and_leaves_nothing() {
    let mut say = |line: &str| eprintln!("  {line}");
    shakedown::containers::compose::debian::ensure(&mut say).unwrap();
    let (_dir, file) = compose_in_temp(
        "version: \"2.4\"\nservices:\n  fine: { image: \"shakedown/debian:bookworm\", command: [sleep, \"600\"] }\n  \
         broken: { image: \"shakedown/debian:bookworm\", command: [sh, -c, \"echo starting; echo oops: no config >&2; exit 3\"] }\n",
    );
    let run = RunLabels::new(3);
    let error =
        Project::up(&file, &[], &run, |line| eprintln!("  {line}")).await.err().expect("it cannot come up");
    let message = error.to_string();
    assert!(message.starts_with("service `broken` exited with code 3"), "{message}");
    assert!(message.contains("oops: no config"), "its logs are in the error: {message}");
    assert_eq!(left_behind(&run.run), Vec::<String>::new());

    let (_dir, file) = compose_in_temp("services:\n  app: { image: \"shakedown-test/absent:none\" }\n");
    let run = RunLabels::new(4);
    let error = Project::up(&file, &[], &run, |_| {}).await.err().expect("no such image");
    assert!(error.needs_setup(), "{error}");
    assert!(
        error.to_string().contains("`shakedown-test/absent:none`, which is not on this engine"),
        "{error}"
    );
    assert_eq!(left_behind(&run.run), Vec::<String>::new());
}
