//! Differential test of the shell grammar against real bash: each line runs through
//! `bash --norc --noprofile -c LINE` (in an empty temporary directory) and through our
//! shell as an SSH exec request; stdout, stderr and the exit status must be the same.
//! The lines are grammar-heavy (loops, substitutions, arithmetic, `case`, functions,
//! here-documents, syntax errors) and do not depend on the filesystem or the host.

use super::*;

const LINES: &[&str] = &[
    "for i in 1 2 3; do echo $i; done",
    "for i in {1..5}; do printf '%s,' $i; done; echo",
    "i=0; while [ $i -lt 3 ]; do echo $i; i=$((i+1)); done",
    "until false; do echo once; break; done",
    "x=5; if [ $x -gt 3 ]; then echo big; elif [ $x -gt 1 ]; then echo mid; else echo small; fi",
    "case abc in a*) echo A;; b*) echo B;; esac",
    "case x in y) echo y;; *) echo default;; esac",
    "f() { echo \"args: $# $1 $2\"; }; f a 'b c'",
    "f() { return 3; }; f; echo $?",
    "echo $((2+3*4)) $((10/3)) $((10%3)) $((2**10)) $((-5/2))",
    "echo $((1/0)); echo never",
    "echo $(echo inner) \"$(echo a; echo b)\"",
    "echo `echo back`",
    "echo {a,b,c}-{1,2}",
    "echo {1..10..3} {c..a} {01..03}",
    "x=hello; echo ${x:1:3} ${#x} ${x^^} ${x/l/L} ${x//l/L}",
    "echo ${unset:-default} ${unset:=assigned} $unset",
    "path=/usr/local/bin/tool.tar.gz; echo ${path##*/} ${path%.*} ${path%%.*} ${path#*/}",
    "echo ${y:+alt} ${HOME:+set}",
    "set -- a b c; echo $# $@; shift; echo $*",
    "a=1; (a=2; echo $a); echo $a",
    "{ echo a; echo b; } | wc -l",
    "echo a && echo b || echo c",
    "false || echo fallback",
    "! true; echo $?",
    "cat <<EOF\nline1 $((1+1))\nEOF",
    "cat <<'EOF'\n$HOME stays\nEOF",
    "cat <<< \"here string\"",
    "read a b <<< \"one two three\"; echo \"$a|$b\"",
    "echo one two | { read x y; echo $y $x; }",
    "printf '%s-%d\\n' a 1 b 2",
    "printf '%5s|%-5s|%05d|%x|%o|%X\\n' ab cd 42 255 8 255",
    "printf '%q\\n' 'a b' \"it's\"",
    "printf '%b\\n' 'a\\tb'",
    "echo $(( 5 > 3 && 2 < 1 ))",
    "[[ abc == a* ]] && echo match",
    "[[ -z \"\" && -n x ]] && echo ok",
    "[ \"a\" = \"a\" ]; echo $?",
    "test 3 -eq 4; echo $?",
    "x=3; ((x++)); echo $x; ((x > 10)) || echo small",
    "for ((i=0;i<3;i++)); do echo -n $i; done; echo",
    "type cd echo if",
    "echo $BASH_VERSION",
    "fact() { if [ $1 -le 1 ]; then echo 1; else echo $(( $1 * $(fact $(( $1 - 1 ))) )); fi; }; fact 5",
    "A=1 B=2; echo $A$B",
    "echo a; exit 3; echo b",
    "echo a >&2",
    "echo out; echo err >&2",
    "echo 'unterminated",
    "echo a )",
    "if true; then",
    "for x in; do echo $x; done; echo empty",
    "echo $(( 1 + ))",
    "while read l; do echo \"[$l]\"; done <<EOF\na\nb\nEOF",
    "x=abc; case $x in *b*) echo has b;; esac",
    "f() { local v=in; echo $v; }; v=out; f; echo $v",
    "false; echo $?",
    "echo \"a   b\"  c    d",
    "IFS=:; x=a:b:c; for i in $x; do echo $i; done",
    "echo \\$HOME '\\n' \"\\\\\"",
    "n=0; for i in 1 2 3 4 5; do [ $i = 3 ] && continue; [ $i = 5 ] && break; n=$((n+i)); done; echo $n",
    "echo ${x:-$((2+2))}",
    "x=; echo ${x-unset} ${x:-empty}",
    "echo $((0x10 + 010 + 2#101))",
    "x=$(false); echo $?",
    "echo a | cat | cat",
    "fi",
    "echo $((5%0))",
    "echo ${x:?is required}; echo never",
    "f() { echo $1; shift; [ $# -gt 0 ] && f \"$@\"; }; f 1 2 3",
    "echo $(( (1+2) * (3+4) )) $((7 & 3)) $((1 << 4)) $((~0))",
    "s=''; for w in a b c; do s=\"$s$w\"; done; echo $s",
    "case 5 in [0-9]) echo digit;; esac",
    "echo \"${#HOME}\" | cat",
    "v=abc; echo ${v:0:1}${v: -1}",
    "break; echo after",
    "true &&",
    "| x",
    "echo a; ; echo b",
    ";;",
    "case x in x) echo hi",
    "x=$(echo",
    "echo ${x",
    "done",
    "echo `echo a",
    "echo $((2**63)) $((7/-2)) $((-7%3))",
    "printf '%s\\n' {a..c}",
    "for i in a b; do for j in 1 2; do [ $j = 2 ] && continue 2; echo $i$j; done; done",
    "set -- x y; echo ${@:-none} $#",
    "echo $(( 3 > 2 ? 10 : 20 )) $(( x = 4, x * 2 ))",
    "t=\"a b  c\"; for w in $t; do echo \"<$w>\"; done; echo \"<$t>\"",
    "echo one\nnosuchcmd\necho three",
    "for i in 1 2\ndo\n  echo $i\ndone\nnosuch",
    "echo a\necho b )\necho c",
    "[[ abc123 =~ ^[a-z]+[0-9]+$ ]] && echo yes",
    "[[ 192.168.1.1 =~ ^([0-9]+\\.){3}[0-9]+$ ]] && echo ip; echo $BASH_REMATCH",
    "[[ x =~ \"(\" ]]; echo $?",
    "re=\"[[:digit:]]+\"; [[ ab12 =~ $re ]] && echo $BASH_REMATCH",
    "sh -c 'X=1; echo $X'; echo \"[$X]\"",
    "bash -c 'for i in 1 2\ndo echo $i\ndone'",
    "sh -c 'echo $1 $2' zero one two",
    "f() { echo hi; ls -l | wc -l; }; type f; declare -f f",
    "cat <<EOF\nabc",
    "cat <<EOF",
    "echo x\ncat <<-\"END\" | wc -l\nabc\ndef",
];

fn real_bash(line: &str, dir: &std::path::Path) -> Option<(String, String, u32)> {
    let out = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", line])
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .output()
        .ok()?;
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        u32::try_from(out.status.code().unwrap_or(-1) & 0xff).unwrap_or(255),
    ))
}

/// Runs every line through both shells and reports the match rate; fails below 90 %.
#[test]
fn grammar_matches_real_bash() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        real_bash("true", dir.path()).is_some(),
        "this test needs /bin/bash (Debian's bash package)"
    );
    let mut matched = 0;
    let mut report = String::new();
    for line in LINES {
        let want = real_bash(line, dir.path()).unwrap();
        let mut s = shell(false);
        let r = s.exec(line.as_bytes(), 1_713_090_200);
        let got = (text(&r.stdout), text(&r.stderr), r.exit.unwrap_or(255));
        if got == want {
            matched += 1;
        } else {
            report.push_str(&format!("{line:?}\n  bash: {want:?}\n  ours: {got:?}\n"));
        }
    }
    let rate = matched * 100 / LINES.len();
    eprintln!(
        "grammar oracle: {matched}/{} lines match ({rate}%)\n{report}",
        LINES.len()
    );
    assert!(rate >= 90, "{matched}/{} match\n{report}", LINES.len());
}
