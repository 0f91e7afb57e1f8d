#!/bin/bash
# Idle RSS, private (anonymous) memory and CPU of an extension-only agent (release honeybee-agent, debug core);
# BENCHMARKS.md "Extension node footprint". Needs `cargo build` and
# `cargo build --release -p honeybee-agent --bin honeybee-agent` first. Loopback only.
set -e
cd "$(dirname "$0")/.."
D=$(mktemp -d)
HB=target/debug/honeybee
AG=target/release/honeybee-agent
PORT=$(python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
$HB core init --data-dir $D/core --listen 127.0.0.1:$PORT --trust-domain rss.test >/dev/null
sed -i 's/:2222"/:0"/; s/:2525"/:0"/; s/:7444"/:0"/' $D/core/core.toml
$HB core run --data-dir $D/core >$D/core.log 2>&1 & CORE=$!
for i in $(seq 50); do $HB status --data-dir $D/core >/dev/null 2>&1 && break; sleep 0.2; done
TOK=$($HB token create --data-dir $D/core --name ext-rss)
$AG enroll --token "$TOK" --data-dir $D/agent >/dev/null
cat > $D/services.toml <<T
[[service]]
name = "ext"
kind = "extension"
listen = "127.0.0.1"
ports = "20000-20099"
T
$AG run --mode extension --data-dir $D/agent >$D/agent.log 2>&1 & AGENT=$!
sleep 3
$HB node config ext-rss --file $D/services.toml --data-dir $D/core >/dev/null
sleep 20
echo "rss_kib=$(ps -o rss= -p $AGENT) private_kib=$(awk '/^RssAnon/{print $2}' /proc/$AGENT/status) listeners=$(ss -ltn | grep -c '127.0.0.1:200')"
T0=$(awk '{print $14+$15}' /proc/$AGENT/stat); sleep 30; T1=$(awk '{print $14+$15}' /proc/$AGENT/stat)
echo "cpu_ticks_30s=$((T1-T0)) clk_tck=$(getconf CLK_TCK) rss_kib=$(ps -o rss= -p $AGENT)"
kill $AGENT $CORE; wait $AGENT $CORE 2>/dev/null || true
rm -rf $D
