#!/usr/bin/env bash
# Server CPU per request under h2load, for culvert's engine (server role)
# and x/net/http2, h2c on loopback:
#   h2load -n 200000 -c 10 -m 100 http://ADDR/
# CPU is the server process's user+system time (from /proc/PID/stat)
# over the run, divided by the requests; write calls come from strace -c
# when strace is installed (STRACE=1). Loads are bounded by -n and stop by
# themselves. Needs h2load (Debian nghttp2-client): installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}; C=${C:-10}; M=${M:-100}
command -v h2load >/dev/null || { apt-get install -y nghttp2-client >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y nghttp2-client >/dev/null; }; }
bin=$(mktemp -d)/h2server
go build -o "$bin" ./perf/h2server
tck=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

printf '%-8s %10s %12s %14s %12s\n' impl "req/s" "cpu µs/req" "writes/req" "failed"
for impl in culvert xnet; do
  out=$(mktemp)
  "$bin" -impl "$impl" > "$out" &
  pid=$!
  for _ in $(seq 50); do [ -s "$out" ] && break; sleep 0.1; done
  addr=$(head -1 "$out")
  h2load -n 2000 -c "$C" -m "$M" "http://$addr/" >/dev/null   # warm-up
  t0=$(cpu_ticks "$pid")
  if [ "${STRACE:-0}" = 1 ] && command -v strace >/dev/null; then
    strace -f -c -e trace=write,writev -p "$pid" -o "$out.strace" 2>/dev/null & spid=$!
    sleep 0.5
  fi
  res=$(h2load -n "$N" -c "$C" -m "$M" "http://$addr/")
  t1=$(cpu_ticks "$pid")
  writes=-
  if [ -n "${spid:-}" ]; then
    kill -INT "$spid"; wait "$spid" 2>/dev/null || true
    w=$(awk '$NF=="write"||$NF=="writev"{s+=$4} END{print s+0}' "$out.strace")
    writes=$(awk -v w="$w" -v n="$N" 'BEGIN{printf "%.3f", w/n}')
    unset spid
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rps=$(echo "$res" | awk '/^finished in/{gsub(",","",$4); print $4}')
  failed=$(echo "$res" | awk '/^requests:/{print $10}')
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$tck" -v n="$N" 'BEGIN{printf "%.2f", (b-a)/hz*1e6/n}')
  printf '%-8s %10s %12s %14s %12s\n' "$impl" "$rps" "$cpu" "$writes" "$failed"
done
