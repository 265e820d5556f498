//! `scripts/build-image`: the OCI archive it writes is a valid image layout tagged
//! `stash-rs/stash:<version>` whose config runs `/usr/local/bin/stash` as nobody, and whose one layer
//! holds a static binary that prints that version when extracted and run here, the host's CA bundle,
//! the user entries and a world-writable `/tmp`. Needs musl-tools, umoci and skopeo (`scripts/setup`).
//!
//! It builds with `--quick` (an unoptimised binary): a cold release build for musl takes much longer
//! and this test checks how the image is put together, which is the same for both.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use stash_testenv::paths;

/// The test's build names this time, so `created` is known (the layer's mtimes are the same).
const SOURCE_DATE_EPOCH: &str = "1700000000";
const CREATED: &str = "2023-11-14T22:13:20Z";

/// Runs `command`, panicking with its output unless it succeeds; returns stdout.
fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs `scripts/build-image --quick` and returns the OCI archive it printed last.
fn build_image() -> PathBuf {
    let stdout = run(Command::new(paths::repo_root().join("scripts/build-image"))
        .arg("--quick")
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH));
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("build-image prints the archive"),
    )
}

/// The version the image must carry: stash-cli's, which is the workspace's like this crate's.
fn version() -> &'static str {
    let manifest = std::fs::read_to_string(paths::repo_root().join("crates/stash-cli/Cargo.toml"))
        .expect("read crates/stash-cli/Cargo.toml");
    assert!(
        manifest.contains("version.workspace = true"),
        "crates/stash-cli/Cargo.toml no longer takes the workspace version: read it here"
    );
    env!("CARGO_PKG_VERSION")
}

fn sha256_hex(path: &Path) -> String {
    run(Command::new("sha256sum").arg(path))
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_owned()
}

/// An OCI image layout unpacked from its archive.
struct Layout(PathBuf);

impl Layout {
    fn unpack(archive: &Path, into: &Path) -> Self {
        std::fs::create_dir_all(into).unwrap();
        run(Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(into));
        Layout(into.to_owned())
    }

    fn json(&self, file: &str) -> Value {
        let path = self.0.join(file);
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    }

    /// The blob a descriptor names, after checking that its content has that digest and size.
    fn blob(&self, descriptor: &Value) -> PathBuf {
        let digest = descriptor["digest"]
            .as_str()
            .expect("a descriptor has a digest");
        let hex = digest.strip_prefix("sha256:").expect("sha256 digests");
        let path = self.0.join("blobs/sha256").join(hex);
        assert_eq!(
            sha256_hex(&path),
            hex,
            "blob {digest} does not hash to its name"
        );
        assert_eq!(
            Some(std::fs::metadata(&path).unwrap().len()),
            descriptor["size"].as_u64(),
            "blob {digest} has another size than its descriptor says"
        );
        path
    }

    fn blob_json(&self, descriptor: &Value) -> Value {
        serde_json::from_slice(&std::fs::read(self.blob(descriptor)).unwrap()).expect("a JSON blob")
    }
}

/// What an ELF executable needs from a dynamic loader: its `PT_INTERP` and its `DT_NEEDED` count.
/// A static-pie has a `PT_DYNAMIC` segment (for its own relocations) but neither of these.
fn elf_loader_needs(binary: &[u8]) -> (Option<String>, usize) {
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    let u16_at = |at: usize| u16::from_le_bytes(binary[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(binary[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(binary[at..at + 8].try_into().unwrap());
    let usize_at = |at: usize| usize::try_from(u64_at(at)).unwrap();
    assert_eq!(&binary[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(
        (binary[4], binary[5]),
        (2, 1),
        "not a 64-bit little-endian ELF"
    );
    assert_eq!(u16_at(0x12), 0x3e, "not an x86-64 ELF");
    let (phoff, phentsize, phnum) = (usize_at(0x20), usize::from(u16_at(0x36)), u16_at(0x38));
    let (mut interp, mut needed) = (None, 0);
    for header in (0..usize::from(phnum)).map(|i| phoff + i * phentsize) {
        let (offset, size) = (usize_at(header + 8), usize_at(header + 0x20));
        match u32_at(header) {
            PT_INTERP => {
                let path = &binary[offset..offset + size];
                interp = Some(
                    String::from_utf8_lossy(path)
                        .trim_end_matches('\0')
                        .to_owned(),
                );
            }
            PT_DYNAMIC => {
                needed += (offset..offset + size)
                    .step_by(16)
                    .filter(|&entry| u64_at(entry) == DT_NEEDED)
                    .count();
            }
            _ => {}
        }
    }
    (interp, needed)
}

/// Checks the image config (platform, created, entrypoint, user, environment); returns the user.
fn check_config(config: &Value) -> (String, String) {
    assert_eq!(
        (&config["os"], &config["architecture"]),
        (&Value::from("linux"), &Value::from("amd64"))
    );
    assert_eq!(config["created"], CREATED, "created is SOURCE_DATE_EPOCH");
    let run_config = &config["config"];
    assert_eq!(
        run_config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/stash"])
    );
    assert_eq!(run_config["Cmd"], Value::Null, "no default arguments");
    let user = run_config["User"]
        .as_str()
        .expect("the config names a user");
    let (uid, gid) = user.split_once(':').expect("User is numeric uid:gid");
    assert_eq!(
        (uid, gid),
        ("65534", "65534"),
        "the image runs as nobody:nogroup, not root"
    );
    let env: Vec<&str> = run_config["Env"]
        .as_array()
        .expect("the config has an environment")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"PATH=/usr/local/bin"), "{env:?}");
    assert!(
        env.contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "{env:?}"
    );
    (uid.to_owned(), gid.to_owned())
}

/// Checks the one layer against the config's `diff_id` and its owners and modes as recorded (an
/// unprivileged extraction would not keep them); returns the layer blob.
fn check_layer(layout: &Layout, manifest: &Value, config: &Value) -> PathBuf {
    let layers = manifest["layers"]
        .as_array()
        .expect("the manifest lists layers");
    assert_eq!(layers.len(), 1, "FROM scratch plus one layer: {manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer = layout.blob(&layers[0]);
    let diff_id = run(Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$0\" | sha256sum")
        .arg(&layer));
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([format!(
            "sha256:{}",
            diff_id.split_whitespace().next().unwrap()
        )]),
        "the config's diff_id is the uncompressed layer's digest"
    );

    let listing = run(Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&layer));
    for line in listing.lines() {
        assert!(
            line.split_whitespace().nth(1) == Some("0/0"),
            "not owned by root: {line}"
        );
    }
    let mode_of = |path: &str| {
        listing
            .lines()
            .find(|l| {
                l.trim_end()
                    .trim_end_matches('/')
                    .ends_with(&format!(" {path}"))
            })
            .unwrap_or_else(|| panic!("{path} is not in the layer:\n{listing}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        mode_of("tmp"),
        "drwxrwxrwt",
        "/tmp is world-writable and sticky"
    );
    assert_eq!(mode_of("usr/local/bin/stash"), "-rwxr-xr-x");
    layer
}

/// Extracts the layer with GNU tar (which, unlike Go's archive/tar, rejects a layer without its
/// end-of-archive blocks) and checks the user entries, the CA bundle and the binary.
fn check_extracted_layer(layer: &Path, rootfs: &Path, (uid, gid): (&str, &str), version: &str) {
    std::fs::create_dir_all(rootfs).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(layer)
        .arg("-C")
        .arg(rootfs));
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.split(':').nth(2) == Some(uid) && l.starts_with("nobody:")),
        "/etc/passwd has the config's user {uid}:\n{passwd}"
    );
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.split(':').nth(2) == Some(gid)),
        "/etc/group has the config's group {gid}:\n{group}"
    );
    assert_eq!(
        std::fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap(),
        std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap(),
        "the image carries the host's CA bundle"
    );

    let stash = rootfs.join("usr/local/bin/stash");
    assert_eq!(
        elf_loader_needs(&std::fs::read(&stash).unwrap()),
        (None, 0),
        "the image's stash needs no dynamic loader or library"
    );
    let ldd = Command::new("ldd").arg(&stash).output().expect("run ldd");
    let ldd_says = String::from_utf8_lossy(&ldd.stdout) + String::from_utf8_lossy(&ldd.stderr);
    assert!(
        ldd_says.contains("statically linked") || ldd_says.contains("not a dynamic executable"),
        "ldd finds libraries in the image's stash:\n{ldd_says}"
    );
    let printed = run(Command::new(&stash).arg("--version").env_clear());
    assert_eq!(printed.trim(), format!("stash {version}"));
}

/// skopeo finds the tag in the OCI archive, and the docker-archive beside it carries it too.
fn check_other_readers(archive: &Path, version: &str, manifest_digest: &Value) {
    let inspected: Value = serde_json::from_str(&run(Command::new("skopeo").arg("inspect").arg(
        format!("oci-archive:{}:stash-rs/stash:{version}", archive.display()),
    )))
    .expect("skopeo inspect prints JSON");
    assert_eq!(&inspected["Digest"], manifest_digest);
    let docker_archive = archive.with_file_name(
        archive
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".oci.tar", ".docker.tar"),
    );
    let docker_manifest: Value = serde_json::from_str(&run(Command::new("tar")
        .arg("-xOf")
        .arg(&docker_archive)
        .arg("manifest.json")))
    .expect("the docker-archive has a manifest.json");
    assert_eq!(
        docker_manifest[0]["RepoTags"],
        serde_json::json!([format!("docker.io/stash-rs/stash:{version}")]),
        "skopeo writes the tag fully qualified; `docker load` shows it as stash-rs/stash"
    );
}

#[test]
fn build_image_writes_an_oci_archive_whose_static_stash_runs_as_nobody_and_prints_its_version() {
    let version = version();
    let archive = build_image();
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::unpack(&archive, &dir.path().join("layout"));

    assert_eq!(layout.json("oci-layout")["imageLayoutVersion"], "1.0.0");
    let index = layout.json("index.json");
    let manifests = index["manifests"]
        .as_array()
        .expect("index.json lists manifests");
    assert_eq!(manifests.len(), 1, "one image in the archive: {index}");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        format!("stash-rs/stash:{version}"),
        "the archive's image is tagged with stash-cli's version"
    );
    assert_eq!(
        manifests[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest = layout.blob_json(&manifests[0]);
    let config = layout.blob_json(&manifest["config"]);
    let (uid, gid) = check_config(&config);
    let layer = check_layer(&layout, &manifest, &config);
    check_extracted_layer(&layer, &dir.path().join("rootfs"), (&uid, &gid), version);
    check_other_readers(&archive, version, &manifests[0]["digest"]);
}
