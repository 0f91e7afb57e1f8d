//! The emulated shell's commands against Debian 12's own programs: each probe runs
//! through the real program (`bash -c` in a temporary directory, `LANG=C.UTF-8`) and
//! through the honeypot's shell (an SSH exec as root, in `/tmp/o`), and stdout, stderr
//! and the exit status are compared byte for byte after instance values (the temporary
//! directory, `dd`'s timing) are normalised. Nothing the emulated shell runs touches the
//! host; only the oracle side runs real programs, on fixed inputs.
//!
//! Needs coreutils, mawk (Debian's `awk`), sed, tar, findutils, diffutils and
//! bsdextrautils (`rev`). Prints the match rate per family; fails on any mismatch not
//! listed in `KNOWN` with its reason.

use honeybee_agent::fuzz_api::shell_exec;
use std::collections::BTreeMap;
use std::process::Command;

/// Files both sides start from (created with `printf`, so both make the same bytes).
const SETUP: &str = "printf 'b 2\\na 10\\nc 1\\nb 2\\n' > f.txt; printf 'root:x:0:0:root:/root:/bin/bash\\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\\n' > pw; printf 'one\\ntwo\\nthree\\n' > n.txt; printf 'one\\n2\\nthree\\nfour\\n' > m.txt";

/// (family, command). Each runs after SETUP in a fresh directory.
const PROBES: &[(&str, &str)] = &[
    // text
    ("cut", "echo 'a:b:c' | cut -d: -f2"),
    ("cut", "echo 'a:b:c' | cut -d: -f1,3"),
    ("cut", "echo 'a:b:c:d' | cut -d: -f2-"),
    ("cut", "echo 'abcdef' | cut -c2-4"),
    ("cut", "echo 'abcdef' | cut -b1,3,5"),
    ("cut", "cut -d: -f1,7 pw"),
    ("cut", "printf 'a\\tb\\nnodelim\\n' | cut -f2"),
    ("cut", "printf 'a\\tb\\nnodelim\\n' | cut -s -f2"),
    ("cut", "echo 'a b c' | cut -d ' ' -f 2"),
    ("cut", "echo a:b | cut -d: -f1 --complement"),
    ("cut", "echo x | cut"),
    ("cut", "echo x | cut -f a"),
    ("cut", "echo x | cut -d ab -f1"),
    ("cut", "cut -f1 nope"),
    ("sort", "printf 'b\\na\\n' | sort"),
    ("sort", "sort f.txt"),
    ("sort", "sort -r f.txt"),
    ("sort", "sort -u f.txt"),
    ("sort", "sort -k2 -n f.txt"),
    ("sort", "sort -k2n f.txt"),
    ("sort", "sort -t: -k3 -n pw"),
    ("sort", "printf '10\\n9\\n100\\n-1\\n' | sort -n"),
    ("sort", "printf '10\\n9\\n100\\n' | sort -rn"),
    ("sort", "printf 'B\\na\\nA\\nb\\n' | sort -f"),
    ("sort", "printf '1K\\n2M\\n3\\n' | sort -h"),
    ("sort", "printf 'a\\nb\\n' | sort -c"),
    ("sort", "printf 'b\\na\\n' | sort -c"),
    ("sort", "sort nope"),
    ("uniq", "sort f.txt | uniq"),
    ("uniq", "sort f.txt | uniq -c"),
    ("uniq", "sort f.txt | uniq -d"),
    ("uniq", "sort f.txt | uniq -u"),
    ("uniq", "printf 'a\\nA\\n' | uniq -i"),
    ("uniq", "cat pw | cut -d: -f7 | sort | uniq -c | sort -rn"),
    ("tr", "echo hello | tr a-z A-Z"),
    ("tr", "echo hello | tr -d l"),
    ("tr", "echo 'a  b   c' | tr -s ' '"),
    ("tr", "echo hello | tr -dc 'a-h\\n'"),
    ("tr", "printf 'a\\nb\\n' | tr '\\n' ' '"),
    ("tr", "echo abc | tr '[:lower:]' '[:upper:]'"),
    ("tr", "echo abc | tr abc x"),
    ("tr", "echo abc | tr"),
    ("tr", "echo abc | tr a"),
    ("tee", "echo hi | tee t1; cat t1"),
    ("tee", "echo hi | tee -a t1 t2; cat t1 t2"),
    ("base64", "echo hi | base64"),
    ("base64", "echo aGkK | base64 -d"),
    (
        "base64",
        "printf 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnop' | base64",
    ),
    (
        "base64",
        "printf 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnop' | base64 -w0",
    ),
    ("base64", "printf aGk | base64 -d"),
    ("base64", "echo '!!!' | base64 -d"),
    ("base64", "base64 pw | base64 -d"),
    ("md5sum", "echo abc | md5sum"),
    ("md5sum", "md5sum pw n.txt"),
    ("md5sum", "md5sum nope"),
    ("md5sum", "echo abc | sha1sum"),
    ("md5sum", "echo abc | sha256sum"),
    ("md5sum", "sha256sum n.txt > s; sha256sum -c s"),
    ("md5sum", "printf '' | md5sum"),
    ("od", "echo abc | od"),
    ("od", "echo abc | od -c"),
    ("od", "printf 'abcdefghijklmnopqrstu\\n' | od -c"),
    ("od", "echo abc | od -An -tx1"),
    ("od", "printf abcd | od -Ax -tx1z"),
    ("od", "printf ab | od -x"),
    ("od", "printf '\\200abc\\n' | od -c"),
    (
        "od",
        "printf 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' | od -c",
    ),
    ("od", "echo abc | od -b"),
    ("od", "echo abcdefg | od -tx4"),
    ("od", "echo hi | od -td1"),
    ("nl", "nl n.txt"),
    ("nl", "printf '1\\n\\n2\\n' | nl"),
    ("nl", "printf '1\\n\\n2\\n' | nl -ba"),
    ("rev", "echo hello | rev"),
    ("rev", "rev n.txt"),
    ("seq", "seq 3"),
    ("seq", "seq 2 5"),
    ("seq", "seq 1 2 9"),
    ("seq", "seq -w 8 11"),
    ("seq", "seq -s, 5"),
    ("seq", "seq 1 0.5 2"),
    ("seq", "seq 5 -1 3"),
    ("seq", "seq"),
    ("seq", "seq x"),
    ("yes", "yes | head -3"),
    ("yes", "yes A | head -c 5000 | wc -c"),
    ("yes", "yes hello world | head -n 2"),
    ("basename", "basename /usr/bin/ls"),
    ("basename", "basename /a/b.sh .sh"),
    ("basename", "basename -a /a /b/c"),
    ("basename", "basename"),
    ("basename", "dirname /usr/bin/ls"),
    ("basename", "dirname a"),
    ("basename", "dirname /a/b/ c"),
    ("head", "head -n 2 n.txt"),
    ("head", "head -c 5 n.txt"),
    ("head", "head -2 n.txt"),
    ("head", "head -n -1 n.txt"),
    ("head", "tail -n 1 n.txt"),
    ("head", "tail -n +2 n.txt"),
    ("head", "tail -c 4 n.txt"),
    ("head", "head n.txt m.txt"),
    ("head", "head -c 16 /dev/zero | od -c"),
    ("head", "head nope"),
    // awk
    ("awk", "echo 'a b c' | awk '{print $1}'"),
    ("awk", "awk -F: '{print $1}' pw"),
    ("awk", "awk -F: 'NR==1' pw"),
    ("awk", "awk '/root/' pw"),
    ("awk", "echo 'a:b:c' | awk -F: '{print $NF; print NF}'"),
    (
        "awk",
        "awk 'BEGIN{print \"start\"} {n++} END{print n}' n.txt",
    ),
    ("awk", "awk '{s += $2} END {print s}' f.txt"),
    ("awk", "awk '{printf \"%s=%d\\n\", $1, $2}' f.txt"),
    (
        "awk",
        "awk 'BEGIN{printf \"%5.2f|%-4d|%x|%c|%e|%g|%s|%o|%%\\n\", 3.14159, 42, 255, 65, 12345.678, 0.0001234, \"s\", 8}'",
    ),
    (
        "awk",
        "awk 'BEGIN{print 0.1+0.2, 1e6, 1e20, 3/2, 2^31, 2147483647, 17/3}'",
    ),
    ("awk", "echo 'a b' | awk '{$5=\"x\"; print; print NF}'"),
    ("awk", "echo 'a b c' | awk '{NF=2; print}'"),
    ("awk", "echo 'a b c' | awk -v OFS=- '{$1=$1; print}'"),
    ("awk", "awk -v x=5 'BEGIN{print x*2}'"),
    (
        "awk",
        "awk 'BEGIN{print substr(\"hello\",2,3), index(\"abc\",\"c\"), toupper(\"x\"), length(\"abcd\")}'",
    ),
    (
        "awk",
        "awk 'BEGIN{n=split(\"a,b,c\",A,\",\"); print n, A[3]}'",
    ),
    (
        "awk",
        "echo aXbXc | awk '{gsub(/X/,\"-\"); print; n=sub(/b/,\"[&]\"); print n, $0}'",
    ),
    (
        "awk",
        "echo foo=12 | awk '{ if (match($0, /=[0-9]+/)) print RSTART, RLENGTH }'",
    ),
    ("awk", "awk 'NR>1 && NR<3' n.txt"),
    ("awk", "awk 'NR==2,NR==3' n.txt"),
    ("awk", "awk '{print NR\": \"$0}' n.txt"),
    ("awk", "awk 'length > 3' n.txt"),
    ("awk", "awk '$2 > 1 {print $1}' f.txt"),
    ("awk", "awk 'BEGIN{for(i=1;i<=3;i++) print i}'"),
    (
        "awk",
        "awk 'BEGIN{i=0; while(i<3){i++; if(i==2) continue; print i}}'",
    ),
    (
        "awk",
        "awk 'BEGIN{x=1; do { print x; x*=2 } while (x < 10)}'",
    ),
    (
        "awk",
        "awk '{a[$1]+=$2} END{print a[\"b\"], a[\"a\"], length(a)}' f.txt",
    ),
    (
        "awk",
        "awk 'function f(a,b){return a*b} BEGIN{print f(3,4)}'",
    ),
    ("awk", "awk 'BEGIN{print (1<2) ? \"y\" : \"n\"}'"),
    ("awk", "echo '10 9' | awk '{print ($1<$2), (\"10\"<\"9\")}'"),
    (
        "awk",
        "awk '{print $1 > \"out\"} END{close(\"out\"); while ((getline l < \"out\") > 0) print \"got\", l}' n.txt",
    ),
    ("awk", "awk 'BEGIN{print 1'"),
    ("awk", "awk '{print}' nope"),
    ("awk", "awk 'BEGIN{printf \"%d %s\\n\"}'"),
    ("awk", "awk 'END{print NR}' n.txt m.txt"),
    ("awk", "awk -F'[:/]' '{print $2}' pw"),
    ("awk", "echo 'x y' | awk '{print $2, $1}' OFS=,"),
    (
        "awk",
        "awk 'BEGIN{s=sprintf(\"%05.1f\", 3.14159); print s}'",
    ),
    ("awk", "awk '!seen[$0]++' f.txt"),
    ("awk", "awk 'BEGIN { exit 3 }'"),
    ("awk", "echo 'a b' | awk '{ $0 = \"x y z\"; print NF }'"),
    // sed
    ("sed", "echo hello | sed 's/l/L/'"),
    ("sed", "echo hello | sed 's/l/L/g'"),
    ("sed", "echo hello | sed 's/l/L/2'"),
    ("sed", "sed -n '2p' n.txt"),
    ("sed", "sed '2d' n.txt"),
    ("sed", "sed -n '$p' n.txt"),
    ("sed", "sed '1,2d' n.txt"),
    ("sed", "sed -n '/t/p' n.txt"),
    ("sed", "sed '/two/,$d' n.txt"),
    ("sed", "sed 's/\\(o\\)\\(n\\)/\\2\\1/' n.txt"),
    ("sed", "sed -E 's/(t)(w|h)/[\\2\\1]/g' n.txt"),
    ("sed", "echo 'a.b.c' | sed 's/\\./-/g'"),
    ("sed", "echo 'path/to/x' | sed 's|/|_|g'"),
    ("sed", "echo hello | sed 's/.*/[&]/'"),
    ("sed", "echo hello | sed 's/l*/X/g'"),
    ("sed", "sed -i 's/one/ONE/' n.txt; cat n.txt"),
    ("sed", "sed -i.bak 's/two/2/' n.txt; cat n.txt n.txt.bak"),
    ("sed", "sed '1i\\header' n.txt"),
    ("sed", "sed '$a footer' n.txt"),
    ("sed", "sed '2c\\changed' n.txt"),
    ("sed", "sed = n.txt"),
    ("sed", "sed -n '1~2p' n.txt"),
    ("sed", "sed 'y/abc/xyz/' pw"),
    ("sed", "sed -n '/root/{s/x/X/;p}' pw"),
    ("sed", "printf 'a\\nb\\nc\\n' | sed -n 'N;P'"),
    ("sed", "printf 'a\\nb\\nc\\n' | sed '$!N;s/\\n/ /'"),
    ("sed", "printf 'a\\nb\\n' | sed 'G'"),
    ("sed", "sed -e 's/o/0/' -e 's/e/3/' n.txt"),
    ("sed", "echo Hello | sed 's/hello/bye/I'"),
    ("sed", "echo 'a b' | sed 's/\\(a\\) \\(b\\)/\\U\\2 \\1/'"),
    ("sed", "sed 3q n.txt m.txt"),
    ("sed", "sed 's/x/y' n.txt"),
    ("sed", "sed 'k' n.txt"),
    ("sed", "sed p nope"),
    ("sed", "printf 'x\\n' | sed 's/[[:alpha:]]/Z/'"),
    ("sed", "echo aaa | sed -E 's/a{2}/b/'"),
    ("sed", "printf 'no newline' | sed 's/no/yes/'"),
    // files
    ("files", "ln -s n.txt l; readlink l; cat l"),
    ("files", "readlink nope; echo $?"),
    ("files", "ln n.txt h; cat h"),
    ("files", "ln -s n.txt l; ln -s n.txt l"),
    ("files", "stat -c '%s %a %U %G %F %n' n.txt"),
    ("files", "stat -c '%A %h' n.txt"),
    ("files", "stat nope"),
    ("files", "dd if=/dev/zero bs=1 count=3 2>/dev/null | od -c"),
    ("files", "dd if=n.txt bs=2 skip=1 count=2 2>/dev/null"),
    ("files", "echo abc | dd 2>/dev/null"),
    (
        "files",
        "dd if=/dev/zero of=z bs=1k count=2 status=none; stat -c %s z",
    ),
    ("files", "dd if=nope"),
    ("files", "dd bs=x"),
    ("files", "dd foo=1"),
    (
        "files",
        "dd if=/dev/zero of=/dev/null bs=1M count=1 2>&1 | head -2",
    ),
    ("files", "dd if=/dev/zero of=/dev/null bs=1M count=1"),
    ("files", "dd if=/dev/zero of=/dev/null bs=100000 count=2"),
    ("files", "dd if=/dev/zero of=/dev/null bs=1000 count=1"),
    ("files", "dd if=/dev/zero of=/dev/null bs=1 count=1"),
    ("files", "head -c 20000 /dev/zero | dd of=/dev/null bs=512"),
    ("files", "tar cf x.tar n.txt m.txt && tar tf x.tar"),
    (
        "files",
        "tar cf x.tar n.txt && rm n.txt && tar xf x.tar && cat n.txt",
    ),
    ("files", "tar czf x.tgz n.txt && tar tzf x.tgz"),
    ("files", "tar tf nope.tar"),
    ("files", "find . -name '*.txt' | sort"),
    ("files", "find . -type f -name 'p*'"),
    ("files", "find nope"),
    ("files", "find . -maxdepth 0"),
    ("files", "diff n.txt m.txt"),
    ("files", "diff n.txt n.txt; echo $?"),
    ("files", "diff -q n.txt m.txt"),
    ("files", "du -s n.txt"),
    ("files", "mkdir d && cd d && mktemp -u XXX | wc -c"),
    // long output through expansion and pipes (no 4 KiB cut)
    ("long", "echo $(yes A | head -c 5000 | tr -d '\\n') | wc -c"),
    (
        "long",
        "A=$(printf '%5000s' | tr ' ' A); echo \"$A\" | wc -c",
    ),
    ("long", "printf '%5000s' x | wc -c"),
    // gzip and env
    ("misc", "echo hi | gzip | gzip -d"),
    (
        "misc",
        "gzip n.txt && ls n* && gunzip n.txt.gz && cat n.txt",
    ),
    ("misc", "gzip -k m.txt && zcat m.txt.gz && ls m*"),
    ("misc", "gzip nope"),
    ("misc", "echo x | gzip -d"),
    ("misc", "env FOO=1 echo hi"),
    ("misc", "env nosuch"),
    // xargs runs the emulated commands
    ("xargs", "echo a b c | xargs echo"),
    ("xargs", "printf 'a\\nb\\n' | xargs -n1 echo x"),
    ("xargs", "printf 'a\\nb\\n' | xargs -I{} echo '<{}>'"),
    ("xargs", "echo | xargs"),
    ("xargs", "echo a | xargs nosuchcmd"),
    ("xargs", "printf 'n.txt\\nm.txt\\n' | xargs cat"),
    ("xargs", "printf 'n.txt m.txt' | xargs wc -l"),
    // wc: GNU's column widths, per-operand lines and the total
    ("wc", "wc f.txt"),
    ("wc", "wc -l f.txt"),
    ("wc", "wc f.txt n.txt m.txt"),
    ("wc", "wc -l -c n.txt"),
    ("wc", "wc -cl n.txt m.txt"),
    ("wc", "wc -w pw"),
    ("wc", "wc -m pw n.txt"),
    ("wc", "wc nosuch n.txt"),
    ("wc", "mkdir dd; wc dd n.txt"),
    ("wc", "wc /dev/null"),
    ("wc", "cat n.txt | wc"),
    ("wc", "cat n.txt | wc -w"),
    ("wc", "printf 'a b\\nc' | wc -lc"),
];

/// Probes whose difference is known, with the reason (kept honest in the notes).
const KNOWN: &[(&str, &str)] = &[];

/// A directory, first on the real bash's PATH, whose `awk` is mawk: the honeypot imitates
/// a minimal Debian 12, where `awk` is mawk, but installing `mariadb-server` (an oracle of
/// other tests) pulls in gawk, which takes over the `awk` alternative.
fn mawk_first_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hb-oracle-awk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("oracle bin dir");
        let link = dir.join("awk");
        if !link.exists() {
            std::os::unix::fs::symlink("/usr/bin/mawk", &link).expect("awk -> mawk");
        }
        dir
    })
}

fn run_real(cmd: &str, dir: &std::path::Path) -> (Vec<u8>, Vec<u8>, i32) {
    let script = format!("{SETUP}\n{cmd}");
    let path = format!(
        "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        mawk_first_dir().display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("LANG", "C.UTF-8")
        .env("HOME", dir)
        .output()
        .expect("bash runs");
    (out.stdout, out.stderr, out.status.code().unwrap_or(-1))
}

fn run_ours(cmd: &str) -> (Vec<u8>, Vec<u8>, i32) {
    let script = format!("mkdir -p /tmp/o; cd /tmp/o\n{SETUP}\n{cmd}");
    let (o, e, s) = shell_exec(&script, true);
    (o, e, s as i32)
}

/// Instance values: the working directory and `dd`'s measured time and rate.
fn normalise(b: &[u8], dir: &str) -> String {
    let s = String::from_utf8_lossy(b).replace(dir, "/tmp/o");
    s.lines()
        .map(|l| match l.find(" copied, ") {
            Some(i) => format!("{} copied, T", &l[..i]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if s.ends_with('\n') { "\n" } else { "" }
}

#[test]
fn commands_match_debian() {
    for p in ["awk", "sed", "tar", "find", "diff", "rev", "od", "base64"] {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {p}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the oracle needs `{p}` (packages: coreutils mawk sed tar findutils diffutils bsdextrautils)"
        );
    }
    let mut per_family: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for (family, cmd) in PROBES {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().to_string_lossy().into_owned();
        let (ro, re, rs) = run_real(cmd, dir.path());
        let (oo, oe, os) = run_ours(cmd);
        let real = (normalise(&ro, &d), normalise(&re, &d), rs);
        let ours = (normalise(&oo, "/tmp/o"), normalise(&oe, "/tmp/o"), os);
        let e = per_family.entry(family).or_default();
        e.1 += 1;
        if real == ours {
            e.0 += 1;
        } else if !KNOWN.iter().any(|(c, _)| c == cmd) {
            failures.push(format!(
                "--- {cmd}\nreal: {:?} {:?} {}\nours: {:?} {:?} {}",
                real.0, real.1, real.2, ours.0, ours.1, ours.2
            ));
        }
    }
    let (mut m, mut n) = (0, 0);
    for (f, (ok, total)) in &per_family {
        println!("{f:<10} {ok:>3}/{total:<3}");
        m += ok;
        n += total;
    }
    println!("{:<10} {m:>3}/{n:<3}", "all");
    assert!(
        failures.is_empty(),
        "{} probes differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
