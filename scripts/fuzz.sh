#!/usr/bin/env bash
#! Runs every cargo-fuzz target of the repository (core/proto/fuzz, agents/fuzz) for a
#! few seconds each and fails if any of them finds a crash, a timeout or a memory blow-up.
#!
#! Usage: scripts/fuzz.sh [--seconds N] [--only SUBSTRING] [--summary FILE]
#!   --seconds N     fuzzing time per target (default 20)
#!   --only S        run only the targets whose name contains S
#!   --summary FILE  also append the per-target result table to FILE
#!
#! Needs the nightly toolchain; installs cargo-fuzz from crates.io if it is missing.
#! Everything runs under `nice -n 19` so that a developer's other builds keep the CPU.
#! The grown corpus lives in <crate>/fuzz/corpus/<target> (ignored by git); the checked-in
#! seeds in <crate>/fuzz/seeds/<target> are read as an extra, read-only corpus. A crash
#! is saved under <crate>/fuzz/artifacts/<target>/: add it to the seeds as a regression
#! input once fixed.
set -euo pipefail

seconds=20
only=""
summary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --only) only="$2"; shift 2 ;;
        --summary) summary="$2"; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "fuzz.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: --seconds needs a number" >&2; exit 2 ;; esac

root="$(cd "$(dirname "$0")/.." && pwd)"
NICE=(nice -n 19)

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: the nightly toolchain is required (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    "${NICE[@]}" cargo install cargo-fuzz --locked
fi

# libFuzzer options shared by every run: a slow input (10 s) or one that needs more than
# 1 GiB is a finding, like a panic.
common=(-timeout=10 -rss_limit_mb=1024 -print_final_stats=1)

# Builds one crate's fuzz targets. Linking a dozen sanitizer-instrumented binaries at once
# is the memory peak of the whole run (about 0.8 GiB per link), so at most 4 link in
# parallel. The build log goes to a file: a failed link prints a command line of several
# hundred kilobytes before the linker's own message, which would push the cause out of
# any CI excerpt, so only the diagnostic lines are shown, with the disk and memory left,
# and the build is tried once more one job at a time (a link killed for memory succeeds).
build_targets() {
    local crate=$1 blog="fuzz/build.log" jobs
    jobs=$(nproc)
    [ "$jobs" -gt 4 ] && jobs=4
    mkdir -p fuzz
    if CARGO_BUILD_JOBS=$jobs "${NICE[@]}" cargo +nightly fuzz build >"$blog" 2>&1; then
        return 0
    fi
    echo "fuzz.sh: building the fuzz targets of $crate failed; the diagnostics:" >&2
    grep -v -e '^ *= note: *"cc"' -e '^ *Compiling ' "$blog" | cut -c1-400 | tail -60 >&2
    echo "fuzz.sh: disk and memory at the failure:" >&2
    df -h . /tmp >&2 || true
    free -m >&2 || true
    echo "fuzz.sh: retrying the build of $crate one job at a time" >&2
    if CARGO_BUILD_JOBS=1 "${NICE[@]}" cargo +nightly fuzz build >"$blog" 2>&1; then
        return 0
    fi
    grep -v -e '^ *= note: *"cc"' -e '^ *Compiling ' "$blog" | cut -c1-400 | tail -60 >&2
    echo "fuzz.sh: the fuzz targets of $crate do not build (full log: $crate/$blog)" >&2
    return 1
}

results=()
failed=0
start=$(date +%s)
for crate in core/proto agents; do
    cd "$root/$crate"
    # The agent targets get inputs long enough to reach the services' caps (16 KiB HTTP
    # head, 8 KiB MySQL packet); the proto decoders are fine with libFuzzer's default.
    case "$crate" in
        agents) max_len=(-max_len=20000) ;;
        *) max_len=() ;;
    esac
    echo "== building the fuzz targets of $crate" >&2
    build_targets "$crate"
    for t in $(cargo +nightly fuzz list); do
        if [ -n "$only" ] && [[ "$t" != *"$only"* ]]; then
            continue
        fi
        corpus="fuzz/corpus/$t"
        mkdir -p "$corpus" "fuzz/artifacts/$t"
        dirs=("$corpus")
        if [ -d "fuzz/seeds/$t" ]; then
            dirs+=("fuzz/seeds/$t")
        fi
        log="fuzz/artifacts/$t/last-run.log"
        echo "== $crate: $t for ${seconds}s" >&2
        t0=$(date +%s)
        rc=0
        "${NICE[@]}" cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
            -max_total_time="$seconds" "${common[@]}" ${max_len[@]+"${max_len[@]}"} \
            >"$log" 2>&1 || rc=$?
        took=$(( $(date +%s) - t0 ))
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        final=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -1 || true)
        cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
        ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
        if [ "$rc" -eq 0 ]; then
            verdict=ok
        else
            verdict="FAILED (rc $rc, see $crate/$log)"
            failed=1
            grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" >&2 || tail -20 "$log" >&2
        fi
        results+=("| $crate | $t | ${took}s | ${execs:-?} | ${cov:-?} | ${ft:-?} | $verdict |")
    done
done

table="| crate | target | time | execs | cov | ft | result |
|---|---|---|---|---|---|---|"
for r in "${results[@]}"; do
    table+=$'\n'"$r"
done
echo "$table"
echo "fuzz.sh: total $(( $(date +%s) - start ))s"
if [ -n "$summary" ]; then
    echo "$table" >>"$summary"
fi
exit "$failed"
