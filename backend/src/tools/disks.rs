//! `disk_usage`: size, used and available space of the node's filesystems.
//!
//! The mount table is the host's (`HOST_PROC/1/mounts`: PID 1's mount
//! namespace, which under hostPID is the host's; `HOST_PROC/self/mounts` if
//! that is unreadable). Space comes from `statvfs(2)` on the mount point
//! under `HOST_ROOT`. A mount point mounted more than once is listed once,
//! with what is visible there (the last mount); further mounts of a
//! filesystem already listed (bind mounts: same source, same device number)
//! are merged into the one with the shortest mount point, as df(1) does.
//! `statvfs` can hang on a dead
//! network filesystem, so the whole tool runs on the blocking pool and gives
//! up when the call is cancelled.
//!
//! Pseudo filesystems ([`PSEUDO_FS_TYPES`]) are left out unless asked for:
//! those with no disk of their own, i.e. kernel-virtual ones (proc, sysfs,
//! cgroup, ...), memory-backed ones (tmpfs, ramfs, devtmpfs, ...) and
//! container union mounts (overlay, aufs), whose space is that of a disk
//! already listed.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::{
    CallError, HostPaths, ToolContext, ToolOutput, human_bytes, output, round1, run_blocking,
};

/// The tool's name.
pub(super) const NAME: &str = "disk_usage";

/// Filesystem types with no disk of their own (sorted).
pub(super) const PSEUDO_FS_TYPES: &[&str] = &[
    "aufs",
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "cpuset",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.lxcfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nfsd",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// The Tool object for `tools/list`.
pub(super) fn definition() -> Value {
    let bytes =
        |description: &str| json!({"type": "integer", "minimum": 0, "description": description});
    super::tool_definition(
        NAME,
        "Disk usage",
        "Mounted filesystems of this node with size, used and available bytes and percentage \
         used (as df(1) reports them). Pseudo filesystems without a disk of their own (proc, \
         sysfs, cgroup, tmpfs, devtmpfs, overlay and similar) are left out unless include_pseudo \
         is true.",
        json!({
            "type": "object",
            "properties": {
                "include_pseudo": {
                    "type": "boolean",
                    "description": format!(
                        "Also list pseudo filesystems: {}.",
                        PSEUDO_FS_TYPES.join(", ")
                    ),
                    "default": false,
                },
            },
            "additionalProperties": false,
        }),
        json!({
            "type": "object",
            "properties": {
                "include_pseudo": {"type": "boolean"},
                "filesystems": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "device": {"type": "string", "description": "Source device or pseudo source name."},
                            "mount_point": {"type": "string", "description": "Where it is mounted on the host."},
                            "fs_type": {"type": "string"},
                            "pseudo": {"type": "boolean", "description": "Whether the type is a pseudo filesystem."},
                            "size_bytes": bytes("Total size."),
                            "used_bytes": bytes("Used space."),
                            "available_bytes": bytes("Space available to unprivileged users."),
                            "used_percent": {"type": "number", "minimum": 0, "maximum": 100, "description": "used / (used + available), as df(1) computes Use%."},
                        },
                        "required": ["device", "mount_point", "fs_type", "pseudo", "size_bytes", "used_bytes", "available_bytes", "used_percent"],
                        "additionalProperties": false,
                    },
                },
                "pseudo_excluded": {"type": "integer", "minimum": 0, "description": "Pseudo filesystems left out."},
                "duplicates_merged": {"type": "integer", "minimum": 0, "description": "Further mounts of a filesystem already listed (bind mounts), left out."},
                "statvfs_failed": {"type": "integer", "minimum": 0, "description": "Mounts left out because their space could not be read (e.g. mount point not visible from this pod)."},
            },
            "required": ["include_pseudo", "filesystems", "pseudo_excluded", "duplicates_merged", "statvfs_failed"],
            "additionalProperties": false,
        }),
        true,
    )
}

/// The structured result.
#[derive(Debug, Serialize)]
struct DiskUsage {
    /// The argument, echoed.
    include_pseudo: bool,
    /// Filesystems in mount-table order.
    filesystems: Vec<Filesystem>,
    /// Pseudo filesystems not listed.
    pseudo_excluded: usize,
    /// Bind mounts merged into another entry.
    duplicates_merged: usize,
    /// Mounts whose statvfs failed.
    statvfs_failed: usize,
}

/// One filesystem.
#[derive(Debug, Serialize)]
struct Filesystem {
    /// Mount source.
    device: String,
    /// Mount point (host view).
    mount_point: String,
    /// Filesystem type.
    fs_type: String,
    /// Type is in [`PSEUDO_FS_TYPES`].
    pseudo: bool,
    /// f_blocks * f_frsize.
    size_bytes: u64,
    /// (f_blocks - f_bfree) * f_frsize.
    used_bytes: u64,
    /// f_bavail * f_frsize.
    available_bytes: u64,
    /// used / (used + available) * 100.
    used_percent: f64,
}

/// One line of a mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// Source, unescaped.
    device: String,
    /// Mount point, unescaped.
    mount_point: String,
    /// Filesystem type.
    fs_type: String,
}

/// Checks the arguments and runs the survey on the blocking pool.
pub(super) async fn call(
    ctx: &ToolContext,
    arguments: &Map<String, Value>,
    cancel: &CancellationToken,
) -> Result<ToolOutput, CallError> {
    let args = Args::new(NAME, arguments, &["include_pseudo"])?;
    let include_pseudo = args.boolean("include_pseudo", false)?;
    let host = ctx.host.clone();
    let usage = run_blocking(cancel, move |token| survey(&host, include_pseudo, &token)).await?;
    let text = render(&usage);
    output(&usage, text)
}

/// Reads the mount table and stats every mount that is to be listed.
fn survey(
    host: &HostPaths,
    include_pseudo: bool,
    cancel: &CancellationToken,
) -> Result<DiskUsage, CallError> {
    let table = ["1/mounts", "self/mounts"]
        .iter()
        .find_map(|rel| super::procfs::read_string(&host.proc.join(rel)))
        .ok_or_else(|| {
            CallError::Failed(format!(
                "could not read the mount table ({0}/1/mounts or {0}/self/mounts); is HOST_PROC the host's procfs?",
                host.proc.display()
            ))
        })?;
    let mut usage = DiskUsage {
        include_pseudo,
        filesystems: Vec::new(),
        pseudo_excluded: 0,
        duplicates_merged: 0,
        statvfs_failed: 0,
    };
    // (device number, source, index in filesystems) of each listed entry.
    let mut seen: Vec<(u64, String, usize)> = Vec::new();
    for mount in parse_mounts(&table) {
        if cancel.is_cancelled() {
            return Err(CallError::Cancelled);
        }
        let pseudo = PSEUDO_FS_TYPES
            .binary_search(&mount.fs_type.as_str())
            .is_ok();
        if pseudo && !include_pseudo {
            usage.pseudo_excluded += 1;
            continue;
        }
        let target = host.root.join(mount.mount_point.trim_start_matches('/'));
        let space = match statvfs(&target) {
            Ok(space) => space,
            Err(err) => {
                tracing::debug!(mount_point = %mount.mount_point, path = %target.display(), %err, "statvfs failed");
                usage.statvfs_failed += 1;
                continue;
            }
        };
        let counted = space.used.saturating_add(space.available);
        let used_percent = if counted == 0 {
            0.0
        } else {
            round1(space.used as f64 * 100.0 / counted as f64)
        };
        let filesystem = Filesystem {
            device: mount.device,
            mount_point: mount.mount_point,
            fs_type: mount.fs_type,
            pseudo,
            size_bytes: space.size,
            used_bytes: space.used,
            available_bytes: space.available,
            used_percent,
        };
        let Ok(dev) = std::fs::metadata(&target).map(|m| m.dev()) else {
            usage.filesystems.push(filesystem);
            continue;
        };
        let same = seen
            .iter()
            .find(|(d, source, _)| *d == dev && *source == filesystem.device)
            .map(|(_, _, index)| *index);
        match same {
            Some(index) => {
                usage.duplicates_merged += 1;
                if filesystem.mount_point.len() < usage.filesystems[index].mount_point.len() {
                    usage.filesystems[index] = filesystem;
                }
            }
            None => {
                seen.push((dev, filesystem.device.clone(), usage.filesystems.len()));
                usage.filesystems.push(filesystem);
            }
        }
    }
    Ok(usage)
}

/// Parses a `/proc/<pid>/mounts` table, skipping malformed lines. A mount
/// point that appears more than once keeps its first position and takes the
/// values of its last line (the mount that is visible there).
fn parse_mounts(table: &str) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for line in table.lines() {
        let mut fields = line.split_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mount = Mount {
            device: unescape(device),
            mount_point: unescape(mount_point),
            fs_type: fs_type.to_owned(),
        };
        match mounts
            .iter_mut()
            .find(|m| m.mount_point == mount.mount_point)
        {
            Some(existing) => *existing = mount,
            None => mounts.push(mount),
        }
    }
    mounts
}

/// Undoes the kernel's octal escapes in mount fields (`\040` for a space,
/// `\011` tab, `\012` newline, `\134` backslash).
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Space figures of one filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Space {
    /// Total size.
    size: u64,
    /// Used: total minus free (as df(1) counts it).
    used: u64,
    /// Available to unprivileged users.
    available: u64,
}

/// `statvfs(2)` of `path`, in bytes.
// The statvfs field types differ between libc targets (u32 / u64), so the
// casts are needed somewhere even where they are no-ops.
#[allow(clippy::unnecessary_cast)]
fn statvfs(path: &Path) -> io::Result<Space> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is NUL-terminated and `st` is writable memory of the
    // size statvfs expects.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the (already zeroed) struct.
    let st = unsafe { st.assume_init() };
    let fragment = if st.f_frsize > 0 {
        st.f_frsize as u64
    } else {
        st.f_bsize as u64
    };
    let size = (st.f_blocks as u64).saturating_mul(fragment);
    let free = (st.f_bfree as u64).saturating_mul(fragment);
    let available = (st.f_bavail as u64).saturating_mul(fragment);
    Ok(Space {
        size,
        used: size.saturating_sub(free),
        available,
    })
}

/// A summary line and one line per filesystem.
fn render(usage: &DiskUsage) -> String {
    use std::fmt::Write;
    let mut text = format!("{} filesystems", usage.filesystems.len());
    let mut notes = Vec::new();
    if usage.pseudo_excluded > 0 {
        notes.push(format!("{} pseudo left out", usage.pseudo_excluded));
    }
    if usage.duplicates_merged > 0 {
        notes.push(format!("{} bind mounts merged", usage.duplicates_merged));
    }
    if usage.statvfs_failed > 0 {
        notes.push(format!("{} unreadable", usage.statvfs_failed));
    }
    if !notes.is_empty() {
        let _ = write!(text, " ({})", notes.join(", "));
    }
    text.push(':');
    for fs in &usage.filesystems {
        let _ = write!(
            text,
            "\n{} ({} on {}): {} used of {} ({}%), {} available",
            fs.mount_point,
            fs.fs_type,
            fs.device,
            human_bytes(fs.used_bytes),
            human_bytes(fs.size_bytes),
            fs.used_percent,
            human_bytes(fs.available_bytes)
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testutil::{FIXTURE_MOUNTS, Fixture, args, real_ctx};

    async fn run(ctx: &ToolContext, arguments: Value) -> Result<ToolOutput, CallError> {
        call(ctx, &args(arguments), &CancellationToken::new()).await
    }

    fn listed(out: &ToolOutput) -> Vec<(String, String, String)> {
        out.structured["filesystems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["device"].as_str().unwrap().to_owned(),
                    f["mount_point"].as_str().unwrap().to_owned(),
                    f["fs_type"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn triple(d: &str, m: &str, t: &str) -> (String, String, String) {
        (d.into(), m.into(), t.into())
    }

    #[test]
    fn pseudo_list_is_sorted_for_binary_search() {
        assert!(PSEUDO_FS_TYPES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn mount_tables_parse_with_escapes_and_duplicates() {
        let mounts = parse_mounts(FIXTURE_MOUNTS);
        let points: Vec<&str> = mounts.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(
            points,
            [
                "/",
                "/proc",
                "/run",
                "/mnt/my disk",
                "/var/lib/kubelet",
                "/missing"
            ]
        );
        let over = parse_mounts("a /x ext4 rw 0 0\nb /y xfs rw 0 0\nc /x btrfs rw 0 0\n");
        assert_eq!(over[0].device, "c");
        assert_eq!(over[0].fs_type, "btrfs");
        assert_eq!(over.len(), 2);
        assert!(parse_mounts("").is_empty());
        assert!(parse_mounts("only two\n\n").is_empty());
    }

    #[test]
    fn escapes_are_undone_and_odd_ones_kept() {
        assert_eq!(unescape(r"/a\040b\011c\012d\134e"), "/a b\tc\nd\\e");
        assert_eq!(unescape(r"/x\04"), r"/x\04");
        assert_eq!(unescape(r"/x\999"), r"/x\999");
        assert_eq!(unescape(r"/x\777"), r"/x\777"); // > 255: not a byte
        assert_eq!(unescape("\\"), "\\");
        assert_eq!(unescape(r"/\303\251"), "/é");
    }

    #[tokio::test]
    async fn fixture_mounts_are_listed_exactly() {
        let fx = Fixture::standard();
        let out = run(&fx.ctx(), json!({})).await.unwrap();
        assert_eq!(
            listed(&out),
            [
                triple("/dev/sda1", "/", "ext4"),
                triple("/dev/sdb1", "/mnt/my disk", "xfs"),
            ]
        );
        assert_eq!(out.structured["include_pseudo"], false);
        assert_eq!(out.structured["pseudo_excluded"], 2);
        assert_eq!(out.structured["duplicates_merged"], 1);
        assert_eq!(out.structured["statvfs_failed"], 1);
        for fs in out.structured["filesystems"].as_array().unwrap() {
            let size = fs["size_bytes"].as_u64().unwrap();
            let used = fs["used_bytes"].as_u64().unwrap();
            let available = fs["available_bytes"].as_u64().unwrap();
            assert!(size > 0 && used <= size && available <= size, "{fs}");
            assert_eq!(fs["pseudo"], false);
        }
        assert!(
            out.text.starts_with(
                "2 filesystems (2 pseudo left out, 1 bind mounts merged, 1 unreadable):\n/ (ext4 on /dev/sda1): "
            ),
            "{}",
            out.text
        );

        let out = run(&fx.ctx(), json!({"include_pseudo": true}))
            .await
            .unwrap();
        assert_eq!(
            listed(&out),
            [
                triple("/dev/sda1", "/", "ext4"),
                triple("proc", "/proc", "proc"),
                triple("tmpfs", "/run", "tmpfs"),
                triple("/dev/sdb1", "/mnt/my disk", "xfs"),
            ]
        );
        assert_eq!(out.structured["filesystems"][1]["pseudo"], true);
        assert_eq!(out.structured["pseudo_excluded"], 0);
    }

    #[tokio::test]
    async fn bind_mounts_merge_into_the_shortest_mount_point() {
        let fx = Fixture::standard();
        fx.mkdir("root/b");
        fx.mkdir("root/mnt/my disk/again");
        fx.write(
            "proc/1/mounts",
            "/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\ntmpfs /run tmpfs rw 0 0\n\
             /dev/sdb1 /b xfs rw 0 0\n/dev/sdb1 /mnt/my\\040disk/again xfs rw 0 0\n\
             /dev/other /proc xfs rw 0 0\n",
        );
        let out = run(&fx.ctx(), json!({"include_pseudo": true}))
            .await
            .unwrap();
        // /proc is in the same directory tree but has another source: kept.
        assert_eq!(
            listed(&out),
            [
                triple("/dev/sdb1", "/b", "xfs"),
                triple("tmpfs", "/run", "tmpfs"),
                triple("/dev/other", "/proc", "xfs"),
            ]
        );
        assert_eq!(out.structured["duplicates_merged"], 2);
    }

    #[tokio::test]
    async fn mount_table_falls_back_to_self_and_errors_when_absent() {
        let fx = Fixture::standard();
        fx.remove("proc/1/mounts");
        fx.write(
            "proc/self/mounts",
            "/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n",
        );
        let out = run(&fx.ctx(), json!({})).await.unwrap();
        assert_eq!(listed(&out), [triple("/dev/sdb1", "/mnt/my disk", "xfs")]);
        fx.remove("proc/self/mounts");
        match run(&fx.ctx(), json!({})).await {
            Err(CallError::Failed(msg)) => assert!(msg.contains("mount table"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn this_machine_has_a_root_filesystem() {
        let out = run(&real_ctx(), json!({})).await.unwrap();
        let root = out.structured["filesystems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["mount_point"] == "/")
            .cloned();
        if let Some(root) = root {
            assert!(root["size_bytes"].as_u64().unwrap() > 0);
        }
        let all = run(&real_ctx(), json!({"include_pseudo": true}))
            .await
            .unwrap();
        let with = all.structured["filesystems"].as_array().unwrap().len();
        let without = out.structured["filesystems"].as_array().unwrap().len();
        assert!(with >= without);
        let mounts: Vec<&str> = all.structured["filesystems"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["mount_point"].as_str())
            .collect();
        let mut unique = mounts.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), mounts.len(), "mount points are listed once");
    }

    #[test]
    fn statvfs_reports_errors() {
        assert!(statvfs(Path::new("/definitely/not/here")).is_err());
        assert!(statvfs(Path::new("/tmp\0x")).is_err());
        let space = statvfs(Path::new("/")).unwrap();
        assert!(space.size > 0 && space.used <= space.size);
    }
}
