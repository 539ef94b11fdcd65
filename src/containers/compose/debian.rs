//! `shakedown/debian:bookworm`: plain Debian bookworm, made here with no registry, so a user's
//! Dockerfile can start `FROM` it; it doubles as the helper image that applies network cuts
//! (`net.rs`), hence iptables, iproute2 and procps. Made like the built-in backend's base
//! (`containers/image.rs`): `mmdebstrap` with this host's apt sources — no mirror is named
//! anywhere — piped into `docker import`. About 30 s and 140 MB here.
//!
//! The image keeps the host's apt sources, so `RUN apt-get update && apt-get install …` works in
//! a Dockerfile built here. Like Docker Hub's `debian:bookworm-slim` it has no man pages, docs or
//! translations; unlike it, no apt lists (run `apt-get update` first, as one does anyway).
//! Registry users keep one Dockerfile for both with an `ARG`:
//!
//! ```dockerfile
//! ARG BASE=shakedown/debian:bookworm
//! FROM ${BASE}
//! ```
//!
//! and `BASE=debian:bookworm-slim` as a build argument. Its label `shakedown.recipe` hashes the
//! recipe below; an image made by another recipe is rebuilt. Also here: which bases a
//! Dockerfile starts from (so `Project::up` builds this one first when a build needs it).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::super::image::{ImageError, check_docker, spawn_tail, tail};
use super::super::layout::PROJECT_LABEL;

/// The image's name.
pub const DEBIAN_IMAGE: &str = "shakedown/debian:bookworm";
/// The label holding the hash of the recipe that made it.
pub const RECIPE_LABEL: &str = "shakedown.recipe";
/// What it has beyond Debian's required packages and apt.
const PACKAGES: &[&str] = &["iptables", "iproute2", "procps", "ca-certificates"];
/// mmdebstrap's options besides the packages, the suite and the output; no mirror (the host's
/// sources). The dpkg path filters stay in the image (`/etc/dpkg/dpkg.cfg.d`), as in Docker
/// Hub's slim images: later installs skip docs too.
const RECIPE: &[&str] = &[
    "--variant=apt",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
];
const SUITE: &str = "bookworm";

/// The hash of the recipe (suite, options, packages), 16 hex digits.
pub fn recipe_hash() -> String {
    let mut hasher = Sha256::new();
    for part in std::iter::once(SUITE).chain(RECIPE.iter().copied()).chain(PACKAGES.iter().copied()) {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Make sure [`DEBIAN_IMAGE`] exists and was made by this recipe, building it otherwise;
/// `say` gets a progress line per step.
pub fn ensure(say: &mut dyn FnMut(&str)) -> Result<(), ImageError> {
    check_docker()?;
    let want = recipe_hash();
    match recipe_of_existing()? {
        Some(have) if have == want => return Ok(()),
        Some(_) => say(&format!("{DEBIAN_IMAGE} was made by another recipe: building it again")),
        None => {}
    }
    if Command::new("mmdebstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err(ImageError::NoMmdebstrap);
    }
    say(&format!("building {DEBIAN_IMAGE} (mmdebstrap with this host's apt sources, about half a minute)"));
    let started = Instant::now();
    build(&want)?;
    say(&format!("built {DEBIAN_IMAGE} in {:.0?}", started.elapsed()));
    Ok(())
}

/// The recipe label of the existing image (`Some("")` for one without it), `None` if absent.
fn recipe_of_existing() -> Result<Option<String>, ImageError> {
    let format = format!("{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}");
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", &format, DEBIAN_IMAGE])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn { program: "docker", source })?;
    if !output.status.success() {
        return Ok(None);
    }
    let label = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(Some(if label == "<no value>" { String::new() } else { label }))
}

/// Whether the engine has `reference` (an image name or id).
pub fn image_present(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// mmdebstrap's tarball straight into `docker import`; tagged only once mmdebstrap succeeded,
/// so a truncated tarball never gets the name.
fn build(recipe: &str) -> Result<(), ImageError> {
    let mut mmdebstrap = Command::new("mmdebstrap")
        .args(RECIPE)
        .arg(format!("--include={}", PACKAGES.join(",")))
        .args([SUITE, "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ImageError::Spawn { program: "mmdebstrap", source })?;
    let stderr = spawn_tail(mmdebstrap.stderr.take().expect("stderr is piped"));
    let tarball = mmdebstrap.stdout.take().expect("stdout is piped");
    let import = Command::new("docker")
        .args(["import", "--change", &format!("LABEL {PROJECT_LABEL}=shakedown {RECIPE_LABEL}={recipe}")])
        .args(["--change", "CMD [\"bash\"]", "-"])
        .stdin(tarball)
        .output();
    let status = mmdebstrap.wait().map_err(|source| ImageError::Spawn { program: "mmdebstrap", source })?;
    let mmdebstrap_tail = stderr.join().unwrap_or_default();
    let import = import.map_err(|source| ImageError::Spawn { program: "docker", source })?;
    let id = String::from_utf8_lossy(&import.stdout).trim().to_owned();
    let failed = |step, status, stderr_tail, hint| ImageError::Build {
        image: DEBIAN_IMAGE.to_owned(),
        step,
        status,
        stderr_tail,
        hint,
    };
    if !status.success() {
        if import.status.success() && !id.is_empty() {
            // Our own half-image (it carries our label); nothing refers to it yet.
            let _ = Command::new("docker").args(["image", "rm", &id]).output();
        }
        let hint = "mmdebstrap uses this host's apt sources: check `apt-get update` works; it needs root (or unprivileged user namespaces with subuids)";
        return Err(failed("mmdebstrap", status, mmdebstrap_tail, hint));
    }
    if !import.status.success() {
        return Err(failed(
            "docker import",
            import.status,
            tail(&import.stderr),
            "check the engine has space (`docker system df`)",
        ));
    }
    let tag = Command::new("docker")
        .args(["tag", &id, DEBIAN_IMAGE])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn { program: "docker", source })?;
    if !tag.status.success() {
        return Err(failed(
            "docker tag",
            tag.status,
            tail(&tag.stderr),
            "retry: the imported image vanished",
        ));
    }
    Ok(())
}

/// The images a Dockerfile's stages start from, with `ARG`s declared before the first `FROM`
/// resolved (their defaults, overridden by `args`, the build's arguments); stage names and
/// `scratch` are not images and are left out.
pub fn dockerfile_bases(text: &str, args: &BTreeMap<String, String>) -> Vec<String> {
    let mut globals: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut bases = Vec::new();
    for instruction in instructions(text) {
        let mut words = instruction.split_whitespace();
        let Some(keyword) = words.next() else { continue };
        if keyword.eq_ignore_ascii_case("ARG") && stages.is_empty() && bases.is_empty() {
            for declared in words {
                let (name, default) = declared.split_once('=').unwrap_or((declared, ""));
                let value = args.get(name).cloned().unwrap_or_else(|| unquote(default).to_owned());
                globals.insert(name.to_owned(), value);
            }
        } else if keyword.eq_ignore_ascii_case("FROM") {
            let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
            let Some(image) = rest.first() else { continue };
            let image = substitute(image, &globals);
            if let [_, as_word, stage] = rest.as_slice()
                && as_word.eq_ignore_ascii_case("as")
            {
                stages.push(stage.to_ascii_lowercase());
            }
            let earlier_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
            if !earlier_stage && image != "scratch" && !bases.contains(&image) {
                bases.push(image);
            }
        }
    }
    bases
}

/// A Dockerfile's instructions: continuation lines joined, comments and blank lines dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alt}` from `vars`.
fn substitute(word: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (body, after) = match rest.strip_prefix('{').and_then(|b| b.split_once('}')) {
            Some((body, after)) => (body, after),
            None => {
                let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                (&rest[..len], &rest[len..])
            }
        };
        let value = match body
            .split_once(":-")
            .map(|(n, d)| (n, d, true))
            .or_else(|| body.split_once(":+").map(|(n, d)| (n, d, false)))
        {
            Some((name, default, true)) => {
                vars.get(name).filter(|v| !v.is_empty()).cloned().unwrap_or_else(|| default.to_owned())
            }
            Some((name, alt, false)) => {
                if vars.get(name).is_some_and(|v| !v.is_empty()) {
                    alt.to_owned()
                } else {
                    String::new()
                }
            }
            None => vars.get(body).cloned().unwrap_or_default(),
        };
        out.push_str(&value);
        rest = after;
    }
    out.push_str(rest);
    unquote(&out).to_owned()
}

fn unquote(text: &str) -> &str {
    ['"', '\''].iter().find_map(|q| text.strip_prefix(*q)?.strip_suffix(*q)).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use indoc::indoc;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn bases_follow_args_stages_and_continuations() {
        let dockerfile = indoc! {r#"
            # syntax is never pulled here
            ARG BASE=shakedown/debian:bookworm
            ARG TOOLS="busybox:1"
            FROM --platform=linux/amd64 ${BASE} AS build
            RUN apt-get update \
             && apt-get install -y make
            FROM build AS test
            FROM $TOOLS
            FROM scratch
            COPY --from=build /x /x
        "#};
        assert_eq!(dockerfile_bases(dockerfile, &BTreeMap::new()), [DEBIAN_IMAGE, "busybox:1"]);
        let registry = args(&[("BASE", "debian:bookworm-slim")]);
        assert_eq!(dockerfile_bases(dockerfile, &registry)[0], "debian:bookworm-slim");
        assert_eq!(
            dockerfile_bases("FROM ${IMG:-shakedown/debian:bookworm}\n", &BTreeMap::new()),
            [DEBIAN_IMAGE]
        );
        assert_eq!(
            dockerfile_bases("from debian:bookworm-slim as b\nfrom B\n", &BTreeMap::new()),
            ["debian:bookworm-slim"]
        );
    }

    // Goal: the recipe never names a mirror (the host's own apt sources make the build work
    // with no registry), and every package the helper role needs is in it.
    #[test]
    fn the_recipe_names_no_mirror_and_has_the_helper_tools() {
        assert!(RECIPE.iter().chain(PACKAGES).all(|o| !o.contains("://")));
        for needed in ["iptables", "iproute2", "procps"] {
            assert!(PACKAGES.contains(&needed));
        }
        assert_eq!(recipe_hash(), recipe_hash());
        assert_eq!(recipe_hash().len(), 16);
    }
}
