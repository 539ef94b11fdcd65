//! The images every container of a run starts from, built on this machine with no registry.
//!
//! Two layers, each tagged by a hash of what it is made of, so a change rebuilds exactly the
//! layers it touches and an unchanged input is never rebuilt:
//!
//! 1. **base** `shakedown-base:TAG`: Debian bookworm with the packages of `docker/packages.txt`,
//!    made by `mmdebstrap` from this host's own apt sources and streamed into `docker import`.
//!    TAG hashes `packages.txt`'s text and the mmdebstrap recipe (`MMDEBSTRAP_RECIPE`).
//!    About one to three minutes and ~470 MB.
//! 2. **node** `shakedown-node:TAG`: the base plus the `shakedown` binary (debug info stripped),
//!    `docker/node.sh` as `/usr/local/bin/shakedown-node` and `/usr/local/bin/s3s-fs`: the
//!    `objects` host's S3 server when it is found ([`s3s_fs_source`]), else a stub that says how
//!    to get it and fails. Built from `docker/Dockerfile.node` by Docker's legacy builder in a
//!    temporary context holding only those files. TAG hashes the base tag, node.sh,
//!    Dockerfile.node, the stripped binary and s3s-fs (or the stub). A few seconds.
//!
//! The three `docker/` files are compiled into the binary (`include_str!`), so it builds its
//! images from anywhere. Everything this module creates carries the label
//! [`PROJECT_LABEL`]; sweeps remove only what carries it.
//!
//! Must not: pull (there is no registry: `FROM` names the local base, which the legacy builder
//! resolves without pulling), buffer the base's ~600 MB tarball in memory (mmdebstrap's stdout is
//! `docker import`'s stdin), or start containers (that is the backend's job).

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The label on every image (and container, network, volume) shakedown creates.
pub const PROJECT_LABEL: &str = "shakedown.project=shakedown";
/// The repository name of the Debian base image.
pub const BASE_NAME: &str = "shakedown-base";
/// The repository name of the node image (base + binary + node.sh).
pub const NODE_NAME: &str = "shakedown-node";

const PACKAGES_TXT: &str = include_str!("../../docker/packages.txt");
const NODE_SH: &str = include_str!("../../docker/node.sh");
const DOCKERFILE_NODE: &str = include_str!("../../docker/Dockerfile.node");

/// Names the `s3s-fs` binary for the node image, overriding [`S3S_FS_DEFAULT`].
pub const S3S_FS_ENV: &str = "SHAKEDOWN_S3S_FS";
/// Where `scripts/real-services.sh s3s-fs` builds `s3s-fs` (`cargo install`, pinned): this
/// repository's `target/tools`, fixed when this binary was compiled.
pub const S3S_FS_DEFAULT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/tools/bin/s3s-fs");
/// What the node image has as `s3s-fs` when none was found. Not an empty `tools/` instead: the
/// legacy builder here fails to commit the image after a COPY of an empty directory ("failed to
/// get layer … layer does not exist").
const S3S_FS_STUB: &str = "#!/bin/sh\necho 'this image was built without s3s-fs: run scripts/real-services.sh s3s-fs, then shakedown image build' >&2\nexit 1\n";

/// Hex digits of SHA-256 kept in a tag: 64 bits, ample for the handful of images on one machine.
const TAG_HEX_LEN: usize = 16;
/// Lines of a failing command's stderr kept for its error message.
const STDERR_TAIL_LINES_MAX: usize = 20;
/// The Debian release of the base; node.sh assumes its PostgreSQL 15 and RabbitMQ 3.10.
const SUITE: &str = "bookworm";

/// mmdebstrap's options besides `--include` (the package list), the suite and the output.
/// Part of the base tag: editing any of them builds a new base.
///
/// No Recommends, and no man pages, docs or translations: ~100 MB less, nothing node.sh needs.
/// The cluster `postgresql-15`'s install creates in /var/lib/postgresql/15/main is removed:
/// node.sh creates its own in /var/lib/shakedown/pg. No mirror is named: mmdebstrap then uses
/// this host's apt sources, which is what makes the build work without a registry.
const MMDEBSTRAP_RECIPE: &[&str] = &[
    "--variant=apt",
    "--aptopt=APT::Install-Recommends \"false\"",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--customize-hook=rm -rf \"$1/var/lib/postgresql/15/main\" \"$1/etc/postgresql/15/main\"",
];

/// The image every container of a run starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeImage {
    /// Repository name: [`NODE_NAME`].
    pub name: String,
    /// Content hash, 16 hex digits.
    pub tag: String,
    /// Its `/usr/local/bin/s3s-fs` is the `objects` host's server (node.sh's `objects` role),
    /// not the stub.
    pub s3s_fs: bool,
}

impl NodeImage {
    /// `name:tag`, as `docker run` takes it.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

impl std::fmt::Display for NodeImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// Why the images could not be made; each message says what failed and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `docker version` failed or `docker` is not installed.
    #[error(
        "no Docker engine (DOCKER_HOST, or /var/run/docker.sock): `docker version` failed: {detail}\nhint: start it (`systemctl start docker`), or install it (`apt-get install docker.io`)"
    )]
    NoDocker {
        /// The tail of `docker version`'s stderr, or why it could not run.
        detail: String,
    },
    /// The base is missing and mmdebstrap, which builds it, is not installed.
    #[error("mmdebstrap not installed: run `make image` or `apt-get install mmdebstrap`")]
    NoMmdebstrap,
    /// The binary to put into the node image cannot be read.
    #[error("cannot read the binary {path} for the node image: {source}")]
    Binary {
        /// The binary given to [`ensure`].
        path: PathBuf,
        /// What reading it said.
        source: io::Error,
    },
    /// A command could not be started at all.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: &'static str,
        /// What spawning it said.
        source: io::Error,
    },
    /// A step of a build exited unsuccessfully.
    #[error("{step} failed ({status}) while building {image}:\n{stderr_tail}\nhint: {hint}")]
    Build {
        /// The image being built, `name:tag`.
        image: String,
        /// The failing command, e.g. `mmdebstrap`.
        step: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// Its last lines of stderr (at most `STDERR_TAIL_LINES_MAX`).
        stderr_tail: String,
        /// What usually fixes it.
        hint: &'static str,
    },
    /// The temporary build context could not be written.
    #[error(
        "cannot write the build context {path}: {source}\nhint: check space and permissions in the temp dir (TMPDIR)"
    )]
    Context {
        /// The file or directory.
        path: PathBuf,
        /// What writing it said.
        source: io::Error,
    },
}

impl ImageError {
    /// True when the machine needs setting up (Docker, mmdebstrap, a readable binary) rather
    /// than a build having failed: the CLI exits 254 for these, 255 for the rest.
    pub fn needs_setup(&self) -> bool {
        matches!(self, Self::NoDocker { .. } | Self::NoMmdebstrap | Self::Binary { .. })
    }
}

/// Make sure the base and the node image for `binary` exist, building what is missing; `say`
/// gets one progress line per step. Returns the node image.
pub fn ensure(binary: &Path, say: &mut dyn FnMut(&str)) -> Result<NodeImage, ImageError> {
    check_docker()?;
    // Before minutes of base build: a wrong path is the caller's mistake, not a failed build.
    let s3s_fs = s3s_fs_source();
    for path in std::iter::once(binary).chain(s3s_fs.as_deref()) {
        fs::File::open(path).map_err(|source| ImageError::Binary { path: path.to_owned(), source })?;
    }
    let base_hash = base_tag(PACKAGES_TXT);
    let base = format!("{BASE_NAME}:{base_hash}");
    if image_exists(&base)? {
        say(&format!("base image {base} present"));
    } else {
        check_mmdebstrap()?;
        say(&format!("building base image {base} (mmdebstrap, one to three minutes)"));
        let started = Instant::now();
        build_base(&base)?;
        say(&format!("built {base} in {:.0?}", started.elapsed()));
    }
    match &s3s_fs {
        Some(path) => say(&format!("s3s-fs from {}", path.display())),
        None => say(&format!(
            "no s3s-fs at {S3S_FS_DEFAULT} ({S3S_FS_ENV} unset): the node image has no S3 server; `scripts/real-services.sh s3s-fs` builds it"
        )),
    }
    let context = BuildContext::create()?;
    context.write_files(binary, s3s_fs.as_deref(), say)?;
    let tag = node_tag(&base_hash, &context.binary(), &context.s3s_fs())?;
    let node = NodeImage { name: NODE_NAME.to_owned(), tag, s3s_fs: s3s_fs.is_some() };
    if image_exists(&node.reference())? {
        say(&format!("node image {node} present"));
        return Ok(node);
    }
    say(&format!("building node image {node} (docker build)"));
    let started = Instant::now();
    build_node(&context, &base, &node)?;
    say(&format!("built {node} in {:.0?}", started.elapsed()));
    Ok(node)
}

/// The `s3s-fs` binary for the node image: the file [`S3S_FS_ENV`] names (a wrong path is then
/// an error of [`ensure`]), else [`S3S_FS_DEFAULT`] when it exists, else none.
pub fn s3s_fs_source() -> Option<PathBuf> {
    match std::env::var_os(S3S_FS_ENV) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => Some(PathBuf::from(S3S_FS_DEFAULT)).filter(|path| path.is_file()),
    }
}

/// The package names of a `packages.txt`: `#` starts a comment, blank lines are skipped.
pub(crate) fn packages(text: &str) -> Vec<&str> {
    text.lines()
        .map(|line| line.split_once('#').map_or(line, |(before, _)| before).trim())
        .filter(|line| !line.is_empty())
        .collect()
}

/// The base tag: a hash of `packages.txt`'s whole text (comments too, so any edit rebuilds)
/// and the mmdebstrap recipe.
pub(crate) fn base_tag(packages_txt: &str) -> String {
    let mut hasher = Sha256::new();
    hash_part(&mut hasher, SUITE.as_bytes());
    hash_part(&mut hasher, packages_txt.as_bytes());
    for option in MMDEBSTRAP_RECIPE {
        hash_part(&mut hasher, option.as_bytes());
    }
    tag_of(hasher)
}

/// The node tag: a hash of the base tag, node.sh, Dockerfile.node, the (stripped) binary and
/// s3s-fs (or its stub).
fn node_tag(base_tag: &str, binary: &Path, s3s_fs: &Path) -> Result<String, ImageError> {
    let mut hasher = Sha256::new();
    hash_node_inputs(&mut hasher, base_tag, NODE_SH, DOCKERFILE_NODE);
    hash_file(&mut hasher, binary)?;
    hash_file(&mut hasher, s3s_fs)?;
    Ok(tag_of(hasher))
}

/// A file's length and bytes.
fn hash_file(hasher: &mut Sha256, path: &Path) -> Result<(), ImageError> {
    let read_error = |source| ImageError::Binary { path: path.to_owned(), source };
    let mut file = fs::File::open(path).map_err(read_error)?;
    let length = file.metadata().map_err(read_error)?.len();
    hasher.update(length.to_le_bytes());
    io::copy(&mut file, hasher).map_err(read_error)?;
    Ok(())
}

/// The text inputs of the node tag, apart so the tests can vary each.
fn hash_node_inputs(hasher: &mut Sha256, base_tag: &str, node_sh: &str, dockerfile: &str) {
    hash_part(hasher, base_tag.as_bytes());
    hash_part(hasher, node_sh.as_bytes());
    hash_part(hasher, dockerfile.as_bytes());
}

/// Length-prefixed, so moving bytes from one part to the next changes the hash.
fn hash_part(hasher: &mut Sha256, part: &[u8]) {
    hasher.update((part.len() as u64).to_le_bytes());
    hasher.update(part);
}

fn tag_of(hasher: Sha256) -> String {
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    hex[..TAG_HEX_LEN].to_owned()
}

/// Whether a Docker engine answers (`docker version`).
pub(crate) fn check_docker() -> Result<(), ImageError> {
    let output = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output();
    match output {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Err(ImageError::NoDocker { detail: "the `docker` command is not installed".to_owned() })
        }
        Err(source) => Err(ImageError::Spawn { program: "docker", source }),
        Ok(output) if !output.status.success() => Err(ImageError::NoDocker { detail: tail(&output.stderr) }),
        Ok(_) => Ok(()),
    }
}

fn check_mmdebstrap() -> Result<(), ImageError> {
    match Command::new("mmdebstrap").arg("--version").stdout(Stdio::null()).status() {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(ImageError::NoMmdebstrap),
        Err(source) => Err(ImageError::Spawn { program: "mmdebstrap", source }),
        Ok(_) => Ok(()),
    }
}

/// Whether the engine has the image `name:tag`. `docker version` has answered before this runs,
/// so a failure here means "no such image".
fn image_exists(reference: &str) -> Result<bool, ImageError> {
    let status = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| ImageError::Spawn { program: "docker", source })?;
    Ok(status.success())
}

/// mmdebstrap's tarball streams into `docker import` through a pipe between the two children;
/// the import is tagged only once mmdebstrap has succeeded, so a truncated tarball never gets
/// the base's name.
fn build_base(reference: &str) -> Result<(), ImageError> {
    let mut mmdebstrap = Command::new("mmdebstrap")
        .args(MMDEBSTRAP_RECIPE)
        .arg(format!("--include={}", packages(PACKAGES_TXT).join(",")))
        .args([SUITE, "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ImageError::Spawn { program: "mmdebstrap", source })?;
    let mmdebstrap_stderr = spawn_tail(mmdebstrap.stderr.take().expect("stderr is piped"));
    let tarball = mmdebstrap.stdout.take().expect("stdout is piped");
    let import = Command::new("docker")
        .args(["import", "--change", &format!("LABEL {PROJECT_LABEL}"), "-"])
        .stdin(tarball)
        .output();
    let mmdebstrap_status = mmdebstrap.wait();
    let mmdebstrap_tail = mmdebstrap_stderr.join().unwrap_or_default();
    let import = import.map_err(|source| ImageError::Spawn { program: "docker", source })?;
    let mmdebstrap_status =
        mmdebstrap_status.map_err(|source| ImageError::Spawn { program: "mmdebstrap", source })?;
    let imported_id = String::from_utf8_lossy(&import.stdout).trim().to_owned();
    if !mmdebstrap_status.success() {
        if import.status.success() && !imported_id.is_empty() {
            // Our own half-image (it carries the label); nothing else refers to it yet.
            let _ = Command::new("docker").args(["image", "rm", &imported_id]).output();
        }
        return Err(ImageError::Build {
            image: reference.to_owned(),
            step: "mmdebstrap",
            status: mmdebstrap_status,
            stderr_tail: mmdebstrap_tail,
            hint: "mmdebstrap uses this host's apt sources: check `apt-get update` works; it needs root (or unprivileged user namespaces with subuids)",
        });
    }
    check_output(reference, "docker import", &import, "check the engine has space (`docker system df`)")?;
    let tag = docker(&["tag", &imported_id, reference])?;
    check_output(reference, "docker tag", &tag, "retry: the imported image vanished")
}

fn build_node(context: &BuildContext, base: &str, node: &NodeImage) -> Result<(), ImageError> {
    let reference = node.reference();
    let dockerfile = context.dir.join("Dockerfile.node");
    let output = Command::new("docker")
        // The engine here has no BuildKit and the CLI has no buildx: ask for the legacy builder
        // outright rather than rely on the CLI's fallback.
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--force-rm"])
        .args(["--build-arg", &format!("BASE={base}"), "-t", &reference, "-f"])
        .arg(&dockerfile)
        .arg(&context.dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn { program: "docker", source })?;
    check_output(
        &reference,
        "docker build",
        &output,
        "its output ends as shown above; the base must exist locally (`docker images shakedown-base`)",
    )
}

fn docker(args: &[&str]) -> Result<Output, ImageError> {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn { program: "docker", source })
}

fn check_output(
    image: &str,
    step: &'static str,
    output: &Output,
    hint: &'static str,
) -> Result<(), ImageError> {
    if output.status.success() {
        return Ok(());
    }
    // `docker build` (legacy) reports the failing step on stdout and the error on stderr.
    let mut text = output.stdout.clone();
    text.extend_from_slice(&output.stderr);
    Err(ImageError::Build {
        image: image.to_owned(),
        step,
        status: output.status,
        stderr_tail: tail(&text),
        hint,
    })
}

/// Read `reader` to its end on a thread, keeping only its last lines (a build's stderr can run
/// to thousands of lines; only the end explains a failure).
pub(crate) fn spawn_tail<R: Read + Send + 'static>(reader: R) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut lines: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL_LINES_MAX);
        for line in BufReader::new(reader).split(b'\n') {
            let Ok(line) = line else { break };
            if lines.len() == STDERR_TAIL_LINES_MAX {
                lines.pop_front();
            }
            lines.push_back(String::from_utf8_lossy(&line).into_owned());
        }
        Vec::from(lines).join("\n")
    })
}

/// The last `STDERR_TAIL_LINES_MAX` lines of `bytes`.
pub(crate) fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(STDERR_TAIL_LINES_MAX)..].join("\n")
}

/// A fresh directory under the temp dir holding exactly the node build's context; removed on
/// drop, so a failed build leaves no 100 MB binary behind.
struct BuildContext {
    dir: PathBuf,
}

impl BuildContext {
    fn create() -> Result<Self, ImageError> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
        let dir = std::env::temp_dir().join(format!("shakedown-image-{}-{nanos}", std::process::id()));
        // create_dir, not create_dir_all: the directory must be new, or it would not be ours.
        fs::create_dir(&dir).map_err(|source| ImageError::Context { path: dir.clone(), source })?;
        Ok(Self { dir })
    }

    fn binary(&self) -> PathBuf {
        self.dir.join("shakedown")
    }

    /// Where s3s-fs (or its stub) goes: `tools/`, which Dockerfile.node copies whole.
    fn s3s_fs(&self) -> PathBuf {
        self.dir.join("tools").join("s3s-fs")
    }

    /// The stripped binary, node.sh (as `shakedown-node`, its name in the image),
    /// Dockerfile.node, and `tools/s3s-fs`: the one given (built without debug info already), or
    /// the stub.
    fn write_files(
        &self,
        binary: &Path,
        s3s_fs: Option<&Path>,
        say: &mut dyn FnMut(&str),
    ) -> Result<(), ImageError> {
        let tools = self.dir.join("tools");
        fs::create_dir(&tools).map_err(|source| ImageError::Context { path: tools.clone(), source })?;
        match s3s_fs {
            Some(s3s_fs) => {
                fs::copy(s3s_fs, self.s3s_fs())
                    .map_err(|source| ImageError::Binary { path: s3s_fs.to_owned(), source })?;
                write_file(&self.s3s_fs(), None, 0o755)?;
            }
            None => write_file(&self.s3s_fs(), Some(S3S_FS_STUB), 0o755)?,
        }
        let target = self.binary();
        // Release builds carry debug info (profile.release debug = 1): stripping it makes the
        // copy several times smaller, and the image with it.
        match Command::new("strip").arg("--strip-debug").arg("-o").arg(&target).arg(binary).output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => {
                return Err(ImageError::Build {
                    image: NODE_NAME.to_owned(),
                    step: "strip --strip-debug",
                    status: output.status,
                    stderr_tail: tail(&output.stderr),
                    hint: "is the binary a Linux executable for this machine?",
                });
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                say("`strip` not found (binutils): the node image gets the binary with its debug info");
                fs::copy(binary, &target)
                    .map_err(|source| ImageError::Binary { path: binary.to_owned(), source })?;
            }
            Err(source) => return Err(ImageError::Spawn { program: "strip", source }),
        }
        write_file(&target, None, 0o755)?;
        write_file(&self.dir.join("shakedown-node"), Some(NODE_SH), 0o755)?;
        write_file(&self.dir.join("Dockerfile.node"), Some(DOCKERFILE_NODE), 0o644)
    }
}

/// Write `contents` (when given) to `path` and set its mode: COPY keeps the mode, and node.sh
/// must be executable in the image.
fn write_file(path: &Path, contents: Option<&str>, mode: u32) -> Result<(), ImageError> {
    let error = |source| ImageError::Context { path: path.to_owned(), source };
    if let Some(contents) = contents {
        fs::write(path, contents).map_err(error)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(error)
}

impl Drop for BuildContext {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_tag(tag: &str) -> bool {
        tag.len() == TAG_HEX_LEN && tag.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    }

    // Goal: the base tag names the content, so an unchanged packages.txt never rebuilds and any
    // edit does. Method: hash the same and slightly different texts.
    #[test]
    fn base_tag_is_stable_and_follows_packages_txt() {
        let tag = base_tag(PACKAGES_TXT);
        assert!(is_tag(&tag), "{tag}");
        assert_eq!(tag, base_tag(PACKAGES_TXT));
        assert_ne!(tag, base_tag(&format!("{PACKAGES_TXT}curl\n")));
        assert_ne!(tag, base_tag(&PACKAGES_TXT.replacen("redis-server", "redis-server # 7", 1)));
    }

    // Goal: every input of the node image moves its tag. Method: vary one input at a time,
    // including a binary differing by one byte.
    #[test]
    fn node_tag_follows_each_input() {
        let dir = std::env::temp_dir().join(format!("shakedown-image-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (one, other) = (dir.join("one"), dir.join("other"));
        fs::write(&one, b"binary 1").unwrap();
        fs::write(&other, b"binary 2").unwrap();
        let tag = node_tag("base", &one, &other).unwrap();
        assert!(is_tag(&tag), "{tag}");
        assert_eq!(tag, node_tag("base", &one, &other).unwrap());
        assert_ne!(tag, node_tag("base", &other, &other).unwrap());
        assert_ne!(tag, node_tag("base2", &one, &other).unwrap());
        assert_ne!(tag, node_tag("base", &one, &one).unwrap(), "s3s-fs's bytes count");
        let texts = |node_sh: &str, dockerfile: &str| {
            let mut hasher = Sha256::new();
            hash_node_inputs(&mut hasher, "base", node_sh, dockerfile);
            tag_of(hasher)
        };
        assert_ne!(texts(NODE_SH, DOCKERFILE_NODE), texts(&format!("{NODE_SH}\n"), DOCKERFILE_NODE));
        assert_ne!(texts(NODE_SH, DOCKERFILE_NODE), texts(NODE_SH, &format!("{DOCKERFILE_NODE}\n")));
        // Length prefixes: moving text from one input to the next is a different image.
        assert_ne!(texts("ab", "c"), texts("a", "bc"));
        assert!(matches!(node_tag("base", &dir.join("missing"), &one), Err(ImageError::Binary { .. })));
        assert!(matches!(node_tag("base", &one, &dir.join("missing")), Err(ImageError::Binary { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn packages_skip_comments_and_blank_lines() {
        let text = "# header\n\npostgresql-15\n  redis-server  # cache\n#iptables\n";
        assert_eq!(packages(text), ["postgresql-15", "redis-server"]);
        let shipped = packages(PACKAGES_TXT);
        for needed in ["postgresql-15", "rabbitmq-server", "redis-server", "iptables", "iproute2", "procps"] {
            assert!(shipped.contains(&needed), "docker/packages.txt lacks {needed}");
        }
    }

    // Goal: the shipped docker/ files keep the promises the build relies on. A `# syntax=` line
    // would make the engine pull a frontend (there is no registry); BASE must be declared before
    // FROM to be usable in it.
    #[test]
    fn docker_files_fit_the_registry_free_build() {
        assert!(!DOCKERFILE_NODE.to_ascii_lowercase().contains("# syntax="));
        let instructions: Vec<&str> = DOCKERFILE_NODE
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .collect();
        assert_eq!(instructions[..2], ["ARG BASE", "FROM ${BASE}"]);
        assert!(DOCKERFILE_NODE.contains(PROJECT_LABEL));
        assert!(NODE_SH.starts_with("#!/bin/bash\n"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let kept = tail(text.as_bytes());
        assert_eq!(kept.lines().count(), STDERR_TAIL_LINES_MAX);
        assert!(kept.ends_with("line 49"));
        let streamed = spawn_tail(io::Cursor::new(text.into_bytes())).join().unwrap();
        assert_eq!(streamed, kept);
    }
}
