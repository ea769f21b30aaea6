//! Test helpers: a fake procfs + host root in a temporary directory, and a
//! context for the real `/proc` of the machine running the tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value};

use super::{HostPaths, ToolContext};

/// A temporary directory holding `proc/` (HOST_PROC) and `root/`
/// (HOST_ROOT); removed on drop.
pub(super) struct Fixture {
    /// The temporary directory.
    dir: PathBuf,
}

/// The node name fixtures report.
pub(super) const FIXTURE_NODE: &str = "fixture-node";

impl Fixture {
    /// An empty host: both directories exist, nothing is in them.
    pub(super) fn empty() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "node-mcp-tools-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proc")).expect("create fixture proc");
        std::fs::create_dir_all(dir.join("root")).expect("create fixture root");
        Self { dir }
    }

    /// A small, fully known host: two CPUs, four process directories (one
    /// malformed, one without a stat file), a mount table with escapes,
    /// duplicates, a bind mount, pseudo filesystems and a mount point that does not exist.
    pub(super) fn standard() -> Self {
        let fx = Self::empty();
        fx.write("proc/sys/kernel/hostname", "fixture-host\n");
        fx.write("proc/sys/kernel/osrelease", "6.1.0-fixture\n");
        fx.write("proc/uptime", "93784.56 180000.00\n");
        fx.write("proc/loadavg", "0.50 0.25 0.10 2/123 4567\n");
        fx.write(
            "proc/meminfo",
            "MemTotal:        2048000 kB\nMemFree:          512000 kB\nMemAvailable:    1024000 kB\n",
        );
        fx.write(
            "proc/stat",
            "cpu  100 0 50 800 50 0 0 0 0 0\n\
             cpu0 50 0 25 400 25 0 0 0 0 0\n\
             cpu1 50 0 25 400 25 0 0 0 0 0\n\
             intr 1 2 3\nctxt 1000\nbtime 1700000000\n",
        );
        fx.write(
            "proc/cpuinfo",
            "processor\t: 0\n\nprocessor\t: 1\n\nprocessor\t: 2\n",
        );
        // pid 1: a normal process.
        fx.write(
            "proc/1/stat",
            "1 (systemd) S 0 1 1 0 -1 4194560 1000 2000 10 20 150 50 0 0 20 0 1 0 10 100000000 2000 18446744073709551615\n",
        );
        fx.write("proc/1/cmdline", "/sbin/init\0splash\0");
        // pid 42: a kernel thread, empty command line, no memory.
        fx.write(
            "proc/42/stat",
            "42 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0 18446744073709551615\n",
        );
        fx.write("proc/42/cmdline", "");
        // pid 100: a name with spaces and parentheses, the biggest CPU user.
        fx.write(
            "proc/100/stat",
            "100 (my (odd) app) R 1 100 100 0 -1 4194304 0 0 0 0 1000 500 0 0 20 0 4 0 500 200000000 100 18446744073709551615\n",
        );
        fx.write(
            "proc/100/cmdline",
            "python3\0/opt/app/server.py\0--port\08080\0",
        );
        // pid 200: malformed stat; pid 300: vanished (no stat file).
        fx.write("proc/200/stat", "200 garbage\n");
        fx.mkdir("proc/300");
        // Non-process entries are ignored.
        fx.mkdir("proc/net");
        fx.write("proc/1/mounts", FIXTURE_MOUNTS);
        fx.write(
            "root/etc/os-release",
            "NAME=\"Fixture\"\nPRETTY_NAME=\"Fixture Linux 1.0 (\\\"test\\\")\"\nID=fixture\n",
        );
        fx.mkdir("root/proc");
        fx.mkdir("root/run");
        fx.mkdir("root/mnt/my disk");
        fx.mkdir("root/var/lib/kubelet");
        fx
    }

    /// Writes `contents` to `rel` (relative to the fixture), creating parents.
    pub(super) fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create fixture dir");
        }
        std::fs::write(path, contents).expect("write fixture file");
    }

    /// Creates the directory `rel` (relative to the fixture).
    pub(super) fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.dir.join(rel)).expect("create fixture dir");
    }

    /// Removes the file `rel` (relative to the fixture).
    pub(super) fn remove(&self, rel: &str) {
        std::fs::remove_file(self.dir.join(rel)).expect("remove fixture file");
    }

    /// The host paths of this fixture.
    pub(super) fn host(&self) -> HostPaths {
        HostPaths {
            proc: self.dir.join("proc"),
            root: self.dir.join("root"),
        }
    }

    /// A tool context reading this fixture.
    pub(super) fn ctx(&self) -> ToolContext {
        ToolContext {
            node_name: FIXTURE_NODE.to_owned(),
            host: self.host(),
            cmdline: Default::default(),
            hidden_tools: Vec::new(),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The mount table of [`Fixture::standard`].
pub(super) const FIXTURE_MOUNTS: &str = "\
/dev/sda1 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid 0 0
tmpfs /run tmpfs rw,nosuid 0 0
/dev/sdb1 /mnt/my\\040disk xfs rw 0 0
/dev/sda1 /var/lib/kubelet ext4 rw 0 0
/dev/sdc1 /missing ext4 rw 0 0
/dev/sda1 / ext4 rw,relatime 0 0
garbage
";

/// A context for the real procfs and root of the machine running the tests.
pub(super) fn real_ctx() -> ToolContext {
    ToolContext {
        node_name: "test-node".to_owned(),
        host: HostPaths::default(),
        cmdline: Default::default(),
        hidden_tools: Vec::new(),
    }
}

/// The arguments object of a `json!` literal (empty for non-objects).
pub(super) fn args(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
