#!/bin/bash
# What --tracking-mode costs a write: one Redis, one respcache (--threads 1) at a time, optin then bcast,
# ROUNDS times. Per run: SET of 100k random keys through respcache (requests/s, respcache's and Redis's
# CPU per request in ns), then SET of 1M random keys straight to Redis with respcache attached (Redis's
# CPU per SET, and respcache's for hearing of it). 50 unpipelined clients, 100-byte values.
# usage: bench/set_cost.sh [BIN] [ROUNDS]
BIN=${1:-build/respcache}; R=${2:-3}
RP=42211; PP=42212
redis-server --port $RP --save "" --appendonly no >/dev/null 2>&1 & RPID=$!
sleep 0.5
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
ns() { echo $(( ($2 - $1) * 10000 * 1000 / 200000 )); }  # ticks (10 ms) over 200k requests
for i in $(seq $R); do
  for mode in optin bcast; do
    $BIN --port $PP --backend redis://127.0.0.1:$RP --threads 1 --capacity 200000 --tracking-mode $mode >/tmp/set_cost.log 2>&1 & PID=$!
    sleep 0.7
    redis-benchmark -p $PP -t get -n 100000 -r 100000 -c 50 -q >/dev/null  # entries in the cache
    c0=$(cpu $PID); r0=$(cpu $RPID)
    via=$(redis-benchmark -p $PP -t set -n 200000 -r 100000 -c 50 -P 1 -d 100 --csv 2>/dev/null | tail -1 | cut -d, -f2)
    c1=$(cpu $PID); r1=$(cpu $RPID)
    direct=$(redis-benchmark -p $RP -t set -n 200000 -r 1000000 -c 50 -P 1 -d 100 --csv 2>/dev/null | tail -1 | cut -d, -f2)
    c2=$(cpu $PID); r2=$(cpu $RPID)
    echo "$mode through respcache: rps=$via respcache_ns=$(ns $c0 $c1) redis_ns=$(ns $r0 $r1) |" \
         "straight to Redis: rps=$direct redis_ns=$(ns $r1 $r2) respcache_ns=$(ns $c1 $c2)"
    kill $PID; wait $PID 2>/dev/null
  done
done
kill $RPID; wait $RPID 2>/dev/null
