//! The router's root filesystem: a squashfs image of the firmware (`/bin/busybox` and
//! its applet links, uClibc, the web server, `/etc`), `/var` a tmpfs the firmware fills at
//! boot (`/tmp` links to `/var/tmp`, where loaders drop their binaries), and the `/proc`
//! files that name the SoC. Built once per service from the node's persona.

use super::applets::{APPLETS, Where};
use super::device::{Router, SIZE};
use crate::services::shell::fs::{Kind, Node};
use std::borrow::Cow;
use std::collections::BTreeMap;

fn dir(mtime: i64) -> Node {
    Node {
        kind: Kind::Dir,
        mode: 0o755,
        uid: 0,
        data: Cow::Borrowed(b""),
        shown_size: None,
        mtime,
    }
}

fn file(data: impl Into<Vec<u8>>, mode: u32, mtime: i64) -> Node {
    Node {
        kind: Kind::File,
        mode,
        uid: 0,
        data: Cow::Owned(data.into()),
        shown_size: None,
        mtime,
    }
}

fn link(target: &str, mtime: i64) -> Node {
    Node {
        kind: Kind::Symlink,
        mode: 0o777,
        uid: 0,
        data: Cow::Owned(target.as_bytes().to_vec()),
        shown_size: None,
        mtime,
    }
}

/// `/etc/passwd`: root and the web admin's account, both uid 0 as on the firmware.
pub(crate) const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nadmin:x:0:0:admin:/:/bin/sh\ndropbear:x:500:500:dropbear:/var/dropbear:/bin/sh\nnobody:*:0:0:nobody:/:/bin/sh\n";

/// `/proc/mounts`: the read-only squashfs root and the writable tmpfs under `/var`.
pub(crate) fn mounts(r: &Router) -> String {
    format!(
        "rootfs / rootfs rw 0 0\n/dev/root / squashfs ro,relatime 0 0\nproc /proc proc rw,relatime 0 0\nsysfs /sys sysfs rw,relatime 0 0\ntmpfs /var tmpfs rw,relatime,size={}k 0 0\ntmpfs /dev tmpfs rw,relatime 0 0\ndevpts /dev/pts devpts rw,relatime,mode=600 0 0\n",
        r.soc.mem_kib / 4
    )
}

/// Every path of the tree, for `BaseFs`.
pub(crate) fn nodes(r: &Router, hostname: &str, boot: i64) -> BTreeMap<String, Node> {
    // The image's files carry the firmware's build time; what the boot scripts make
    // under /var, the boot time.
    let built = i64::try_from(r.device.mtime).unwrap_or(0);
    let mut n = BTreeMap::new();
    let mut put = |p: &str, node: Node| {
        n.insert(p.to_owned(), node);
    };
    put("/", dir(built));
    for d in [
        "/bin",
        "/sbin",
        "/usr",
        "/usr/bin",
        "/usr/sbin",
        "/lib",
        "/lib/modules",
        "/etc",
        "/etc/init.d",
        "/mnt",
        "/proc",
        "/sys",
        "/root",
        "/web",
        "/web/js",
        "/web/css",
    ] {
        put(d, dir(built));
    }
    for d in [
        "/var",
        "/var/tmp",
        "/var/run",
        "/var/log",
        "/var/lock",
        "/var/dropbear",
        "/dev",
        "/dev/pts",
    ] {
        let mut node = dir(boot);
        if d == "/var/tmp" {
            node.mode = 0o1777;
        }
        put(d, node);
    }
    put("/tmp", link("/var/tmp", built));
    let mut bb = file(r.elf(), 0o755, built);
    bb.shown_size = Some(u64::from(SIZE));
    put("/bin/busybox", bb);
    for a in APPLETS {
        let (path, target) = match a.at {
            Where::Bin => (format!("/bin/{}", a.name), "busybox"),
            Where::Sbin => (format!("/sbin/{}", a.name), "../bin/busybox"),
            Where::UsrBin => (format!("/usr/bin/{}", a.name), "../../bin/busybox"),
            Where::UsrSbin => (format!("/usr/sbin/{}", a.name), "../../bin/busybox"),
            Where::Nowhere => continue,
        };
        put(&path, link(target, built));
    }
    // The firmware's own programs: the same ELF header, their own sizes.
    for (path, size) in [
        ("/usr/sbin/lighttpd", 231_412u64),
        ("/usr/bin/cos", 1_046_220),
        ("/usr/bin/wlNetlinkTool", 18_344),
        ("/usr/sbin/dropbear", 251_908),
        ("/usr/bin/dhcpd", 64_112),
        ("/lib/ld-uClibc-0.9.33.2.so", 28_724),
        ("/lib/libuClibc-0.9.33.2.so", 431_408),
    ] {
        let mut f = file(r.elf(), 0o755, built);
        f.shown_size = Some(size);
        put(path, f);
    }
    put("/lib/ld-uClibc.so.0", link("ld-uClibc-0.9.33.2.so", built));
    put("/lib/libc.so.0", link("libuClibc-0.9.33.2.so", built));
    put("/etc/passwd", file(PASSWD, 0o644, built));
    put(
        "/etc/group",
        file(
            "root:x:0:root\nadmin:x:0:admin\nnobody:x:0:\n",
            0o644,
            built,
        ),
    );
    put(
        "/etc/shadow",
        file(
            "root:$1$GTN.gpri$DlSyKvZKMR9A9Uj9e9wR3/:15502:0:99999:7:::\nadmin:$1$$iC.dUsGpxNNJGeOm1dFio/:15502:0:99999:7:::\n",
            0o600,
            built,
        ),
    );
    put(
        "/etc/inittab",
        file(
            "::sysinit:/etc/init.d/rcS\n::respawn:/sbin/getty -L ttyS1 115200 vt100\n::shutdown:/bin/umount -a\n",
            0o644,
            built,
        ),
    );
    put(
        "/etc/init.d/rcS",
        file(
            "#!/bin/sh\n\nmount -a\nmkdir -p /var/run /var/tmp /var/log /var/lock /var/dropbear\n/usr/sbin/lighttpd -f /etc/lighttpd.conf\n/usr/bin/cos &\ntelnetd\n",
            0o755,
            built,
        ),
    );
    put(
        "/etc/fstab",
        file(
            "proc\t/proc\tproc\tdefaults\t0\t0\nnone\t/var\ttmpfs\tdefaults\t0\t0\nsysfs\t/sys\tsysfs\tdefaults\t0\t0\n",
            0o644,
            built,
        ),
    );
    put(
        "/etc/profile",
        file(
            "PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PATH\n",
            0o644,
            built,
        ),
    );
    put("/etc/hostname", file(format!("{hostname}\n"), 0o644, built));
    put("/etc/resolv.conf", link("/var/tmp/resolv.conf", built));
    put(
        "/var/tmp/resolv.conf",
        file("nameserver 192.168.0.1\n", 0o644, boot),
    );
    put(
        "/etc/lighttpd.conf",
        file(
            "server.document-root = \"/web\"\nserver.port = 80\nserver.pid-file = \"/var/run/lighttpd.pid\"\nindex-file.names = ( \"index.html\" )\n",
            0o644,
            built,
        ),
    );
    put(
        "/web/index.html",
        file(
            "<html><head><meta http-equiv=\"refresh\" content=\"0; url=/login.html\"></head></html>\n",
            0o644,
            built,
        ),
    );
    put("/var/run/lighttpd.pid", file("412\n", 0o644, boot));
    put("/var/log/messages", file("", 0o644, boot));
    put("/proc/cpuinfo", {
        let mut f = file(r.cpuinfo(), 0o444, boot);
        f.shown_size = Some(0);
        f
    });
    put("/proc/mounts", {
        let mut f = file(mounts(r), 0o444, boot);
        f.shown_size = Some(0);
        f
    });
    put("/proc/version", {
        let mut f = file(
            format!(
                "Linux version {} (root@buildsrv) (gcc version 4.6.3 (Buildroot 2012.11.1) ) {}\n",
                r.soc.kernel, r.kernel_build
            ),
            0o444,
            boot,
        );
        f.shown_size = Some(0);
        f
    });
    put("/proc/meminfo", {
        let total = r.soc.mem_kib;
        let free = total * 38 / 100;
        let mut f = file(
            format!(
                "MemTotal:       {total:>8} kB\nMemFree:        {free:>8} kB\nBuffers:        {:>8} kB\nCached:         {:>8} kB\nSwapCached:            0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n",
                total / 30,
                total / 6
            ),
            0o444,
            boot,
        );
        f.shown_size = Some(0);
        f
    });
    put(
        "/proc/sys/kernel/hostname",
        file(format!("{hostname}\n"), 0o444, boot),
    );
    for (path, minor) in [
        ("/dev/null", 3),
        ("/dev/zero", 5),
        ("/dev/random", 8),
        ("/dev/urandom", 9),
        ("/dev/tty", 0),
        ("/dev/console", 1),
        ("/dev/mtdblock0", 0),
    ] {
        put(
            path,
            Node {
                kind: Kind::CharDev,
                mode: 0o666,
                uid: 0,
                data: Cow::Borrowed(b""),
                shown_size: Some(minor),
                mtime: boot,
            },
        );
    }
    // Every file's parent directories exist.
    let missing: Vec<String> = n
        .keys()
        .flat_map(|p| {
            let mut out = Vec::new();
            let mut d = crate::services::shell::fs::split(p).0;
            while d != "/" {
                out.push(d.to_owned());
                d = crate::services::shell::fs::split(d).0;
            }
            out
        })
        .collect();
    for d in missing {
        n.entry(d).or_insert_with(|| dir(built));
    }
    n
}
