#!/bin/bash
# The system calls respcache makes per request: one Redis, respcache with --threads 1, 200,000 GETs
# from redis-benchmark (-P 1, CLIENTS clients), counted with perf's syscall tracepoints on respcache's
# process only (poll, epoll_wait, recvfrom, sendto).
# MODE hits (the default): 1000 keys, all cached. MODE fills: 100k keys and --ttl 1ms (every GET fills).
# usage: bench/syscalls.sh BIN [MODE] [CLIENTS]
BIN=$1; MODE=${2:-hits}; C=${3:-50}
RP=42701; PA=42702; N=200000
. "$(dirname "$0")/one_redis.sh"
$BIN --port $PA --backend redis://127.0.0.1:$RP --threads 1 "${OPTS[@]}" >/dev/null 2>&1 & AP=$!
sleep 0.7
redis-benchmark -p $PA -t get -n 20000 -r $KEYS -c 10 -q >/dev/null
OUT=$(mktemp)
perf stat -e 'syscalls:sys_enter_poll,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto' \
  -p $AP -o "$OUT" & SP=$!
sleep 0.3
redis-benchmark -p $PA -t get -n $N -r $KEYS -c $C -P 1 --csv 2>/dev/null | tail -1 | cut -d, -f1-2
kill -INT $SP; wait $SP
grep syscalls "$OUT" | awk -v n=$N '{printf "%s %.3f/req  ", $2, $1/n} END {print ""}' | sed 's/syscalls:sys_enter_//g'
rm -f "$OUT"
kill $AP; wait $AP 2>/dev/null; kill $RPID; wait $RPID 2>/dev/null
