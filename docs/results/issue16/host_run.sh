#!/bin/bash
# Copied from the runs of docs/benchmarks.md, "Issue 16"; run from the repository root.
# Inside a fresh network namespace: 10.213.0.1 on an interface; server + 500 bots connect to it.
set -e
W=${W:-$(pwd)}  # the repository, with release binaries built
ip link set lo up
if ip link add h0 type dummy 2>/dev/null; then :; else ip link add h0 type veth peer name h1; ip link set h1 up; fi
ip addr add 10.213.0.1/24 dev h0; ip link set h0 up
cd "${OUT:-/tmp}"
taskset -c 0 $W/target/release/server --bind 10.213.0.1:7777 --drain-timeout off --stats-json ${OUT:-/tmp}/host$1.server.json $SERVER_ARGS 2> ${OUT:-/tmp}/host$1.server.log &
spid=$!
sleep 1
set +e
taskset -c 1 $W/target/release/client_bot --addr 10.213.0.1:7777 --bots 500 --duration 30s > ${OUT:-/tmp}/host$1.bots.out 2> ${OUT:-/tmp}/host$1.bots.err
echo "bots exit $?"
ss -tn state established '( sport = :7777 )' | wc -l
kill -TERM $spid; wait $spid; echo "server exit $?"
