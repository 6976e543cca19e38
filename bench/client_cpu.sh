#!/bin/bash
# Whether the load generator is the bound: HGETALL hits of 50-field hashes (as make bench's
# hgetall_hits), Redis direct and respcache alternated for 3 rounds; per run redis-benchmark's
# requests/s, and its own CPU and the server's, in ms per second of wall time (1000: a whole core).
# usage: bench/client_cpu.sh BIN [extra redis-benchmark options, e.g. --threads 2]
BIN=$1; shift; RBX=("$@"); RP=42501; PA=42502
redis-server --port $RP --save "" --appendonly no >/dev/null 2>&1 & RPID=$!
sleep 0.5
/usr/bin/python3 - "$RP" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def enc(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
buf = b""
for i in range(1000):
    fields = [x for j in range(50) for x in (b"f:%02d" % j, b"v:%08d" % (i * 50 + j))]
    buf += enc(b"HSET", b"h:%012d" % i, *fields)
s.sendall(buf)
got = b""
while got.count(b"\r\n") < 1000:
    got += s.recv(65536)
PY
$BIN --port $PA --backend redis://127.0.0.1:$RP --capacity 10000 >/dev/null 2>&1 & AP=$!
sleep 0.7
redis-benchmark -p $PA -c 50 -n 20000 -r 1000 HGETALL h:__rand_int__ -q >/dev/null 2>&1
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
OUT=$(mktemp)
for i in 1 2 3; do
  for t in "redis $RP $RPID" "respcache $PA $AP"; do
    set -- $t
    redis-benchmark -p $2 "${RBX[@]}" -c 50 -n 300000 -r 1000 --csv HGETALL h:__rand_int__ >"$OUT" 2>/dev/null & B=$!
    sleep 0.3; c0=$(cpu $B); s0=$(cpu $3); t0=$(date +%s%N)
    sleep 2
    c1=$(cpu $B); s1=$(cpu $3); t1=$(date +%s%N)
    wait $B
    echo "$1 rps=$(tail -1 "$OUT" | cut -d, -f2) client_cpu=$(( (c1-c0)*10*1000000000/(t1-t0) )) server_cpu=$(( (s1-s0)*10*1000000000/(t1-t0) ))"
  done
done
rm -f "$OUT"
kill $AP $RPID; wait 2>/dev/null
