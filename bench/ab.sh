#!/bin/bash
# Two respcache binaries side by side: GET, 50 unpipelined clients, --threads 1, alternated rounds; per
# run the CSV line of redis-benchmark and the proxy's and Redis's CPU per request in ns
# (from /proc).
# MODE hits (the default): 1000 keys, all cached. MODE fills: 100k keys and --ttl 1ms, so that every GET
# is a miss that fills the cache (as the bench's "GET misses that fill the cache").
# usage: bench/ab.sh BIN_A BIN_B [ROUNDS] [MODE]
A=$1; B=$2; R=${3:-5}; MODE=${4:-hits}
RP=42201; PA=42202; PB=42203
. "$(dirname "$0")/one_redis.sh"
$A --port $PA --backend redis://127.0.0.1:$RP --threads 1 "${OPTS[@]}" >/tmp/a.log 2>&1 & AP=$!
$B --port $PB --backend redis://127.0.0.1:$RP --threads 1 "${OPTS[@]}" >/tmp/b.log 2>&1 & BP=$!
sleep 0.7
for p in $PA $PB; do redis-benchmark -p $p -t get -n 20000 -r $KEYS -c 10 -q >/dev/null; done
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for i in $(seq $R); do
  for t in "A $PA $AP" "B $PB $BP"; do
    set -- $t
    c0=$(cpu $3); r0=$(cpu $RPID)
    line=$(redis-benchmark -p $2 -t get -n 200000 -r $KEYS -c 50 -P 1 --csv 2>/dev/null | tail -1)
    c1=$(cpu $3); r1=$(cpu $RPID)
    echo "$1 $line cpu_ns_per_req=$(( (c1-c0)*10000*1000/200000 )) redis_ns_per_req=$(( (r1-r0)*10000*1000/200000 ))"
  done
done
kill $AP $BP; wait $AP $BP 2>/dev/null; kill $RPID; wait $RPID 2>/dev/null
