#!/bin/bash
# Copied from the runs of docs/benchmarks.md, "Issue 16"; run from the repository root.
# usage: run_nr.sh NAME [server args...]
name=$1; shift
port=$((17700 + RANDOM % 200))
W=${W:-$(pwd)}  # the repository, with release binaries built
taskset -c 0 $W/target/release/server --bind 127.0.0.1:$port --room-capacity 2000 --drain-timeout off --stats-json ${OUT:-/tmp}/$name.server.json "$@" 2> ${OUT:-/tmp}/$name.server.log &
spid=$!
sleep 1
taskset -c 1 $W/target/release/client_bot attack --kind non-readers --addr 127.0.0.1:$port --non-readers 1000 --movers 100 $ATTACK_ARGS --server-pid $spid --json ${OUT:-/tmp}/$name.attack.json > ${OUT:-/tmp}/$name.attack.out 2> ${OUT:-/tmp}/$name.attack.err
echo "attack exit $?"
kill -TERM $spid; wait $spid
echo "server exit $?"
