//! The machine's accounts: one table that `/etc/passwd`, `/etc/group`, `/etc/shadow`,
//! `/etc/gshadow`, `ps`'s user column, `/proc/net/tcp`'s uid and `ls -l`'s owners all
//! read, so that no two of them can disagree.
//!
//! What a Debian 12 box has: base-passwd's fixed accounts (uid < 100, with `_apt`),
//! systemd-sysusers' (`systemd-network` 998, `systemd-timesync` 997, counting down from
//! 999), then what `adduser --system` made in install order from 100 up (`messagebus`
//! from dbus, `sshd` from openssh-server), and then the accounts of the packages the
//! node's services are (vsftpd's `ftp`, redis-server's `redis`, mariadb-server's
//! `mysql`, postfix's `postfix` with the `postdrop` group), each line as that
//! package's postinst writes it (checked against the real packages' lines on Debian
//! 12.11). A node only has the accounts of the services it runs.

use crate::persona::{Listener, Program};
use std::fmt::Write as _;

/// How an account was made: it decides its `/etc/shadow` password field and ageing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    /// base-passwd's master file: `*` with the ageing of shadow's defaults.
    Base,
    /// systemd-sysusers: `!*`, no ageing.
    Sysusers,
    /// `adduser --system`: `!`, no ageing.
    Adduser,
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    gecos: &'static str,
    pub home: &'static str,
    shell: &'static str,
    made: Made,
}

#[derive(Debug, Clone)]
struct Group {
    name: &'static str,
    gid: u32,
    made: Made,
}

const NOLOGIN: &str = "/usr/sbin/nologin";

/// base-passwd 3.6.1's `passwd.master` (Debian 12), in its order.
const BASE_USERS: &[(&str, u32, u32, &str, &str, &str)] = &[
    ("root", 0, 0, "root", "/root", "/bin/bash"),
    ("daemon", 1, 1, "daemon", "/usr/sbin", NOLOGIN),
    ("bin", 2, 2, "bin", "/bin", NOLOGIN),
    ("sys", 3, 3, "sys", "/dev", NOLOGIN),
    ("sync", 4, 65534, "sync", "/bin", "/bin/sync"),
    ("games", 5, 60, "games", "/usr/games", NOLOGIN),
    ("man", 6, 12, "man", "/var/cache/man", NOLOGIN),
    ("lp", 7, 7, "lp", "/var/spool/lpd", NOLOGIN),
    ("mail", 8, 8, "mail", "/var/mail", NOLOGIN),
    ("news", 9, 9, "news", "/var/spool/news", NOLOGIN),
    ("uucp", 10, 10, "uucp", "/var/spool/uucp", NOLOGIN),
    ("proxy", 13, 13, "proxy", "/bin", NOLOGIN),
    ("www-data", 33, 33, "www-data", "/var/www", NOLOGIN),
    ("backup", 34, 34, "backup", "/var/backups", NOLOGIN),
    ("list", 38, 38, "Mailing List Manager", "/var/list", NOLOGIN),
    ("irc", 39, 39, "ircd", "/run/ircd", NOLOGIN),
    ("_apt", 42, 65534, "", "/nonexistent", NOLOGIN),
    ("nobody", 65534, 65534, "nobody", "/nonexistent", NOLOGIN),
];

/// base-passwd 3.6.1's `group.master`.
const BASE_GROUPS: &[(&str, u32)] = &[
    ("root", 0),
    ("daemon", 1),
    ("bin", 2),
    ("sys", 3),
    ("adm", 4),
    ("tty", 5),
    ("disk", 6),
    ("lp", 7),
    ("mail", 8),
    ("news", 9),
    ("uucp", 10),
    ("man", 12),
    ("proxy", 13),
    ("kmem", 15),
    ("dialout", 20),
    ("fax", 21),
    ("voice", 22),
    ("cdrom", 24),
    ("floppy", 25),
    ("tape", 26),
    ("sudo", 27),
    ("audio", 29),
    ("dip", 30),
    ("www-data", 33),
    ("backup", 34),
    ("operator", 37),
    ("list", 38),
    ("irc", 39),
    ("src", 40),
    ("shadow", 42),
    ("utmp", 43),
    ("video", 44),
    ("sasl", 45),
    ("plugdev", 46),
    ("staff", 50),
    ("games", 60),
    ("users", 100),
    ("nogroup", 65534),
];

/// The groups the installer gives the first user (user-setup), as `id` shows them.
pub(crate) const LOGIN_USER_GROUPS: &[(u32, &str)] = &[
    (24, "cdrom"),
    (25, "floppy"),
    (27, "sudo"),
    (29, "audio"),
    (30, "dip"),
    (44, "video"),
    (46, "plugdev"),
    (100, "users"),
    (106, "netdev"),
];

/// The accounts of a service's package: (user, gecos, home, shell, extra groups made
/// after its own). `None` for a program whose user is a base account (`www-data`) or
/// that adds none (inetutils-inetd).
fn package_account(
    p: Program,
) -> Option<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
)> {
    match p {
        // vsftpd.postinst: adduser --system --home /srv/ftp --gecos 'ftp daemon' --group ftp
        Program::Vsftpd => Some(("ftp", "ftp daemon,,,", "/srv/ftp", NOLOGIN, &[])),
        // redis-tools.postinst: adduser --system --home /var/lib/redis --group redis
        Program::Redis => Some(("redis", "", "/var/lib/redis", NOLOGIN, &[])),
        // mariadb-server / mysql-server: --home /nonexistent --gecos "MySQL Server"
        // --shell /bin/false
        Program::Mariadb | Program::Mysqld => Some((
            "mysql",
            "MySQL Server,,,",
            "/nonexistent",
            "/bin/false",
            &[],
        )),
        // postfix.postinst: addgroup postfix, adduser --home /var/spool/postfix postfix,
        // then addgroup postdrop.
        Program::Postfix => Some(("postfix", "", "/var/spool/postfix", NOLOGIN, &["postdrop"])),
        Program::Sshd | Program::Inetd | Program::Lighttpd | Program::Apache | Program::Other => {
            None
        }
    }
}

/// The order packages were installed in (a package's accounts take the next free ids).
const INSTALL_ORDER: &[Program] = &[
    Program::Vsftpd,
    Program::Redis,
    Program::Mariadb,
    Program::Mysqld,
    Program::Postfix,
];

/// The login user of a session that is not root (uid 1000, made by the installer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoginUser<'a> {
    pub name: &'a str,
    pub home: &'a str,
}

/// One machine's accounts.
#[derive(Debug, Clone)]
pub(crate) struct Accounts {
    users: Vec<Account>,
    groups: Vec<Group>,
}

impl Accounts {
    /// The accounts of a machine running `listeners`.
    pub(crate) fn of(listeners: &[Listener]) -> Accounts {
        let mut users: Vec<Account> = BASE_USERS
            .iter()
            .map(|&(name, uid, gid, gecos, home, shell)| Account {
                name,
                uid,
                gid,
                gecos,
                home,
                shell,
                made: Made::Base,
            })
            .collect();
        let mut groups: Vec<Group> = BASE_GROUPS
            .iter()
            .map(|&(name, gid)| Group {
                name,
                gid,
                made: Made::Base,
            })
            .collect();
        for (name, gid, made) in [
            ("crontab", 101, Made::Adduser),
            ("systemd-journal", 999, Made::Sysusers),
            ("systemd-network", 998, Made::Sysusers),
            ("systemd-timesync", 997, Made::Sysusers),
            ("input", 102, Made::Adduser),
            ("sgx", 103, Made::Adduser),
            ("kvm", 104, Made::Adduser),
            ("render", 105, Made::Adduser),
            ("netdev", 106, Made::Adduser),
            ("messagebus", 107, Made::Adduser),
            ("_ssh", 108, Made::Adduser),
        ] {
            groups.push(Group { name, gid, made });
        }
        for (name, uid, gid, gecos, home, made) in [
            (
                "systemd-network",
                998,
                998,
                "systemd Network Management",
                "/",
                Made::Sysusers,
            ),
            (
                "systemd-timesync",
                997,
                997,
                "systemd Time Synchronization",
                "/",
                Made::Sysusers,
            ),
            ("messagebus", 100, 107, "", "/nonexistent", Made::Adduser),
            ("sshd", 101, 65534, "", "/run/sshd", Made::Adduser),
        ] {
            users.push(Account {
                name,
                uid,
                gid,
                gecos,
                home,
                shell: NOLOGIN,
                made,
            });
        }
        let mut next_uid = 102;
        let mut next_gid = 109;
        for program in INSTALL_ORDER {
            if !listeners.iter().any(|l| l.program == *program) {
                continue;
            }
            let Some((name, gecos, home, shell, extra)) = package_account(*program) else {
                continue;
            };
            if users.iter().any(|u| u.name == name) {
                continue;
            }
            let gid = next_gid;
            next_gid += 1;
            groups.push(Group {
                name,
                gid,
                made: Made::Adduser,
            });
            users.push(Account {
                name,
                uid: next_uid,
                gid,
                gecos,
                home,
                shell,
                made: Made::Adduser,
            });
            next_uid += 1;
            for g in extra.iter() {
                groups.push(Group {
                    name: g,
                    gid: next_gid,
                    made: Made::Adduser,
                });
                next_gid += 1;
            }
        }
        Accounts { users, groups }
    }

    /// The account named `name`.
    pub(crate) fn user(&self, name: &str) -> Option<&Account> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The name of user `uid`.
    pub(crate) fn name_of(&self, uid: u32) -> Option<&'static str> {
        self.users.iter().find(|u| u.uid == uid).map(|u| u.name)
    }

    /// The name of group `gid`.
    pub(crate) fn group_name(&self, gid: u32) -> Option<&'static str> {
        self.groups.iter().find(|g| g.gid == gid).map(|g| g.name)
    }

    /// The user whose processes a program's package runs them as (`ps`, `/proc/net`).
    pub(crate) fn uid_of(&self, name: &str) -> Option<u32> {
        self.user(name).map(|u| u.uid)
    }

    /// Where the login user's line goes: after the installer's accounts (sshd), before
    /// those of packages installed later.
    fn user_insert_at(&self) -> usize {
        self.users
            .iter()
            .position(|u| u.name == "sshd")
            .map_or(self.users.len(), |i| i + 1)
    }

    fn group_insert_at(&self) -> usize {
        self.groups
            .iter()
            .position(|g| g.name == "_ssh")
            .map_or(self.groups.len(), |i| i + 1)
    }

    /// `/etc/passwd`.
    pub(crate) fn passwd(&self, login: Option<LoginUser>) -> String {
        let mut s = String::with_capacity(1536);
        for (i, u) in self.users.iter().enumerate() {
            if i == self.user_insert_at()
                && let Some(l) = login
            {
                let _ = writeln!(s, "{0}:x:1000:1000:{0},,,:{1}:/bin/bash", l.name, l.home);
            }
            let _ = writeln!(
                s,
                "{}:x:{}:{}:{}:{}:{}",
                u.name, u.uid, u.gid, u.gecos, u.home, u.shell
            );
        }
        if self.user_insert_at() == self.users.len()
            && let Some(l) = login
        {
            let _ = writeln!(s, "{0}:x:1000:1000:{0},,,:{1}:/bin/bash", l.name, l.home);
        }
        s
    }

    /// The group file's lines through `line(name, gid, made, members)`, with the login
    /// user's own group (1000) after the installer's groups and the user in the groups
    /// the installer gives it.
    fn group_lines(
        &self,
        login: Option<LoginUser>,
        line: impl Fn(&str, u32, Made, &str) -> String,
    ) -> String {
        let mut s = String::with_capacity(1024);
        let at = self.group_insert_at();
        let own = |s: &mut String| {
            if let Some(l) = login {
                s.push_str(&line(l.name, 1000, Made::Adduser, ""));
            }
        };
        for (i, g) in self.groups.iter().enumerate() {
            if i == at {
                own(&mut s);
            }
            let members = match login {
                Some(l) if LOGIN_USER_GROUPS.iter().any(|(gid, _)| *gid == g.gid) => l.name,
                _ => "",
            };
            s.push_str(&line(g.name, g.gid, g.made, members));
        }
        if at == self.groups.len() {
            own(&mut s);
        }
        s
    }

    /// `/etc/group`.
    pub(crate) fn group(&self, login: Option<LoginUser>) -> String {
        self.group_lines(login, |name, gid, _, members| {
            format!("{name}:x:{gid}:{members}\n")
        })
    }

    /// `/etc/gshadow`.
    pub(crate) fn gshadow(&self, login: Option<LoginUser>) -> String {
        self.group_lines(login, |name, _, made, members| {
            format!("{name}:{}::{members}\n", lock(made))
        })
    }

    /// `/etc/shadow`: root's `root_password` field and ageing as the installer set it on
    /// `day`; the other accounts as their makers leave them (base-passwd's with
    /// shadow's ageing, sysusers' and adduser's with none).
    pub(crate) fn shadow(
        &self,
        root_password: &str,
        day: i64,
        login: Option<(LoginUser, &str)>,
    ) -> String {
        let mut s = String::with_capacity(1536);
        let at = self.user_insert_at();
        let login_line = |s: &mut String| {
            if let Some((l, pw)) = login {
                let _ = writeln!(s, "{}:{pw}:{day}:0:99999:7:::", l.name);
            }
        };
        for (i, u) in self.users.iter().enumerate() {
            if i == at {
                login_line(&mut s);
            }
            let _ = match (u.name, u.made) {
                ("root", _) => writeln!(s, "root:{root_password}:{day}:0:99999:7:::"),
                (name, Made::Base) => writeln!(s, "{name}:*:{day}:0:99999:7:::"),
                (name, made) => writeln!(s, "{name}:{}:{day}::::::", lock(made)),
            };
        }
        if at == self.users.len() {
            login_line(&mut s);
        }
        s
    }
}

fn lock(made: Made) -> &'static str {
    match made {
        Made::Base => "*",
        Made::Sysusers => "!*",
        Made::Adduser => "!",
    }
}

/// A yescrypt `/etc/shadow` password field (Debian 12's default method and cost),
/// its salt and hash derived from `seed` (the node's machine id, and the user name for
/// other users): stable per node and user, different across nodes.
pub(crate) fn password_field(seed: &str) -> String {
    const B64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut h = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut chars = |n: usize| -> String {
        (0..n)
            .map(|_| {
                h = h.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                char::from(B64[(h >> 58) as usize])
            })
            .collect()
    };
    let salt = chars(22);
    let hash = chars(43);
    format!("$y$j9T${salt}${hash}")
}

/// Whether `name` is an account of every machine (base-passwd's, systemd's, the
/// installer's): for services that know the box's users but not its other services.
pub(crate) fn is_base_user(name: &str) -> bool {
    Accounts::of(&[]).user(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(programs: &[Program]) -> Vec<Listener> {
        programs
            .iter()
            .enumerate()
            .map(|(i, p)| Listener {
                port: 1000 + i as u16,
                program: *p,
            })
            .collect()
    }

    #[test]
    fn service_accounts_are_the_packages_lines() {
        let a = Accounts::of(&listeners(&[
            Program::Sshd,
            Program::Redis,
            Program::Mariadb,
            Program::Postfix,
            Program::Vsftpd,
        ]));
        let passwd = a.passwd(None);
        // Lines as the real packages' postinsts write them (Debian 12.11), ids in install
        // order after the installer's messagebus (100) and sshd (101).
        for want in [
            "ftp:x:102:109:ftp daemon,,,:/srv/ftp:/usr/sbin/nologin\n",
            "redis:x:103:110::/var/lib/redis:/usr/sbin/nologin\n",
            "mysql:x:104:111:MySQL Server,,,:/nonexistent:/bin/false\n",
            "postfix:x:105:112::/var/spool/postfix:/usr/sbin/nologin\n",
            "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n",
            "sshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n",
        ] {
            assert!(passwd.contains(want), "{want} in\n{passwd}");
        }
        let group = a.group(None);
        for want in [
            "redis:x:110:\n",
            "postfix:x:112:\n",
            "postdrop:x:113:\n",
            "messagebus:x:107:\n",
        ] {
            assert!(group.contains(want), "{want} in\n{group}");
        }
        let shadow = a.shadow("$y$x", 19_000, None);
        assert!(shadow.starts_with("root:$y$x:19000:0:99999:7:::\n"));
        assert!(shadow.contains("\n_apt:*:19000:0:99999:7:::\n"));
        assert!(shadow.contains("\nsystemd-network:!*:19000::::::\n"));
        assert!(shadow.contains("\nredis:!:19000::::::\n"));
        // Every passwd user has one shadow line, in the same order; every gid a group.
        let names = |s: &str| -> Vec<String> {
            s.lines()
                .map(|l| l.split(':').next().unwrap_or("").to_owned())
                .collect()
        };
        assert_eq!(names(&passwd), names(&shadow));
        assert_eq!(names(&group), names(&a.gshadow(None)));
        for line in passwd.lines() {
            let gid: u32 = line.split(':').nth(3).unwrap().parse().unwrap();
            assert!(a.group_name(gid).is_some(), "{line}");
        }
    }

    #[test]
    fn a_node_has_only_its_services_accounts() {
        let a = Accounts::of(&listeners(&[Program::Sshd, Program::Apache]));
        let passwd = a.passwd(None);
        assert!(
            !passwd.contains("redis") && !passwd.contains("mysql"),
            "{passwd}"
        );
        let r = Accounts::of(&listeners(&[Program::Redis]));
        assert_eq!(r.uid_of("redis"), Some(102));
        assert!(is_base_user("sshd") && is_base_user("_apt") && !is_base_user("redis"));
    }

    #[test]
    fn the_login_user_follows_the_installer_accounts() {
        let a = Accounts::of(&listeners(&[Program::Redis]));
        let l = LoginUser {
            name: "pi",
            home: "/home/pi",
        };
        let passwd = a.passwd(Some(l));
        assert!(
            passwd.contains("sshd:x:101:65534::/run/sshd:/usr/sbin/nologin\npi:x:1000:1000:pi,,,:/home/pi:/bin/bash\nredis:"),
            "{passwd}"
        );
        let group = a.group(Some(l));
        assert!(group.contains("\nsudo:x:27:pi\n"), "{group}");
        assert!(
            group.contains("\n_ssh:x:108:\npi:x:1000:\nredis:"),
            "{group}"
        );
        let shadow = a.shadow("*", 1, Some((l, "$y$h")));
        assert!(shadow.contains("\npi:$y$h:1:0:99999:7:::\n"), "{shadow}");
    }
}
