# Sourced by bench/ab.sh and bench/syscalls.sh: MODE (hits or fills) gives KEYS and respcache's OPTS;
# starts a Redis on port RP (pid RPID) seeded with KEYS keys of 100-byte values.
# MODE hits: 1000 keys, all cached. MODE fills: 100k keys and --ttl 1ms (every GET is a miss that fills).
KEYS=1000; OPTS=(--capacity 10000)
if [ "$MODE" = fills ]; then KEYS=100000; OPTS=(--capacity 200000 --ttl 1ms); fi
redis-server --port "$RP" --save "" --appendonly no >/dev/null 2>&1 & RPID=$!
sleep 0.5
redis-benchmark -p "$RP" -t set -n 100000 -r $KEYS -d 100 -q >/dev/null
