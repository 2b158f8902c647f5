#!/usr/bin/env bash
# The tunnel under load: wrk against the edge's visitor port (edge ->
# connector -> origin) and, alternately, against the origin directly, on
# loopback. Every process is separate: perf/origin (fasthttp, fixed
# bodies), `culvert edge`, `culvert tunnel`, wrk.
#
#   for body in /hello /bytes/65536 /bytes/1048576, conns in 50 (-t2), 1 (-t1):
#     REPEAT times: wrk -d DURATION --latency, direct and through the tunnel
#
# Then HTTP/2 visitors with h2load (-t1), for /hello and /bytes/65536,
# REPEAT times each (alternating; the -m100 runs last), H2N requests a run
# for /hello, H2N/5 for /bytes/65536:
#   tunnel, h2c:       h2load -c10 -m10 --connect-to 127.0.0.1:HTTP_PORT
#                        http://app.perf.test:HTTP_PORT/PATH
#   tunnel, TLS (h2):  h2load -c10 -m10 --connect-to 127.0.0.1:HTTPS_PORT
#                        https://app.perf.test:HTTPS_PORT/PATH
#                      (SNI and :authority app.perf.test; ALPN h2)
#   tunnel, h2c, -m100: the same with 1000 streams in flight, ten times
#                      the connector's idle origin connections (100)
#   tunnel, pipelined: h2c and TLS again, through a second connector (for
#                      pipe.perf.test, same origin) that pipelines its GETs
#                      to the origin (--proxy-pipeline-depth PIPE_DEPTH)
#   direct, HTTP/1.1:  h2load --h1 -c10 -m1 http://ORIGIN/PATH (the origin
#                      speaks HTTP/1.1 only), and with -m10 (10 requests
#                      pipelined per connection: as many in flight as the
#                      h2 runs have streams)
# The ratios compare the tunnel's h2 rates with the direct -m1 rate.
#
# Figures are medians over the REPEAT runs. CPU per request is the edge's
# plus the connector's user+system time (/proc/PID/stat) over a tunnel run,
# divided by its requests. RSS: VmRSS of each right after start (idle),
# VmHWM (peak) at the end of the wrk runs, and after the h2load runs.
#
# Env: DURATION (seconds per run, 10), REPEAT (3), WARMUP (seconds, 1),
# H2N (requests per h2load /hello run, 200000), PIPE_DEPTH (16), QUICK=1 (DURATION=2
# REPEAT=1 H2N=20000: a smoke run), KEEP=1 (keep the work dir: logs, wrk
# and h2load outputs, raw results). Needs wrk (Debian wrk) and h2load
# (Debian nghttp2-client): installed if missing. Each wrk load is bounded
# by -d, each h2load load by -n, and both by timeout(1).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${QUICK:-0}" = 1 ]; then
  DURATION=${DURATION:-2}; REPEAT=${REPEAT:-1}; H2N=${H2N:-20000}
fi
DURATION=${DURATION:-10}; REPEAT=${REPEAT:-3}; WARMUP=${WARMUP:-1}; H2N=${H2N:-200000}
BODIES=(/hello /bytes/65536 /bytes/1048576)
H2_BODIES=(/hello /bytes/65536)
H2_MODES=(direct-h1 direct-h1p h2c h2tls h2c-m100 h2c-pipe h2tls-pipe)
CONNS=(50 1)
HOST=app.perf.test
PIPE_HOST=pipe.perf.test
PIPE_DEPTH=${PIPE_DEPTH:-16}

sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
command -v wrk >/dev/null || { $sudo apt-get install -y wrk >/dev/null 2>&1 || { $sudo apt-get update >/dev/null && $sudo apt-get install -y wrk >/dev/null; }; }
command -v h2load >/dev/null || { $sudo apt-get install -y nghttp2-client >/dev/null 2>&1 || { $sudo apt-get update >/dev/null && $sudo apt-get install -y nghttp2-client >/dev/null; }; }

work=$(mktemp -d -t culvert-perf.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 30); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "perf/tunnel.sh: $*" >&2; exit 1; }

echo "building culvert and perf/origin..."
go build -o "$work/culvert" ./cmd/culvert
go build -o "$work/origin" ./perf/origin

tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# snap FILE: CPU ticks (user+system, with reaped children's) of every
# process outside this script's process group (the group holds the origin,
# edge, connector, wrk and this script), one "pid ticks" line each.
# others BEFORE AFTER: the ticks those processes used in between; a process
# that exited is taken off at its last count, since its parent's counts
# now include all of it. Kernel threads count as others.
pgrp=$(awk '{sub(/^[0-9]+ \(.*\) /, ""); print $3}' /proc/$$/stat)
snap() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk -v me="$pgrp" '{pid = $1; sub(/^[0-9]+ \(.*\) /, ""); if ($3 != me) print pid, $12 + $13 + $14 + $15}' >"$1"
}
others() {
  awk 'NR == FNR {b[$1] = $2; next} {d += $2 - ($1 in b ? b[$1] : 0); seen[$1] = 1}
    END {for (k in b) if (!(k in seen)) d -= b[k]; print d + 0}' "$1" "$2"
}
kib() { awk -v k="$2" '$1==k":"{print $2}' "/proc/$1/status"; }

# free_port VAR sets VAR to a TCP port that nothing on this machine uses
# and that this script has not handed out yet. (It assigns instead of
# printing: in a $(...) subshell the record of ports handed out would be
# lost, and two calls could return the same port.)
given=" "
free_port() {
  local used p hex
  used=$(awk 'NR>1{split($2,a,":"); print a[2]}' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u | tr '\n' ' ')
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))  # below the ephemeral range
    hex=$(printf '%04X' "$p")
    case " $used $given" in *" $hex "*|*" $p "*) continue ;; esac
    given="$given$p "
    printf -v "$1" '%s' "$p"; return
  done
  die "no free port"
}

# wait_for URL CODE SECONDS PID NAME: poll until URL answers CODE.
wait_for() {
  local i
  for i in $(seq $(($3 * 10))); do
    kill -0 "$4" 2>/dev/null || die "$5 exited; its log: $(cat "$work/$5.log")"
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)" = "$2" ] && return
    sleep 0.1
  done
  die "$5 not ready after $3 s ($1); its log: $(cat "$work/$5.log")"
}

# --- start origin, edge, zone, connector ---------------------------------
"$work/origin" --addr 127.0.0.1:0 >"$work/origin.out" 2>"$work/origin.log" &
opid=$!; pids+=("$opid")
for _ in $(seq 50); do [ -s "$work/origin.out" ] && break; sleep 0.1; done
oaddr=$(head -1 "$work/origin.out")
[ -n "$oaddr" ] || die "origin did not start: $(cat "$work/origin.log")"

free_port tport; free_port hport; free_port sport; free_port aport; free_port emport; free_port cmport; free_port pmport
"$work/culvert" edge --data-dir "$work/edge" --loglevel warn --grace-period 1s \
  --tunnel-addr "127.0.0.1:$tport" --http-addr "127.0.0.1:$hport" \
  --api-addr "127.0.0.1:$aport" --https-addr "127.0.0.1:$sport" --metrics "127.0.0.1:$emport" 2>"$work/edge.log" &
epid=$!; pids+=("$epid")
wait_for "http://127.0.0.1:$emport/healthcheck" 200 15 "$epid" edge

timeout 30 "$work/culvert" edge zone create perf.test --data-dir "$work/edge" \
  --api "https://127.0.0.1:$aport" --out "$work/cert.pem" >"$work/zone.log" 2>&1 ||
  die "zone create failed: $(cat "$work/zone.log")"

"$work/culvert" tunnel --hostname "$HOST" --url "http://$oaddr" --origincert "$work/cert.pem" \
  --edge "127.0.0.1:$tport" --metrics "127.0.0.1:$cmport" --loglevel warn --grace-period 1s \
  2>"$work/connector.log" &
cpid=$!; pids+=("$cpid")
wait_for "http://127.0.0.1:$cmport/ready" 200 15 "$cpid" connector

"$work/culvert" tunnel --hostname "$PIPE_HOST" --url "http://$oaddr" --origincert "$work/cert.pem" \
  --edge "127.0.0.1:$tport" --metrics "127.0.0.1:$pmport" --loglevel warn --grace-period 1s \
  --proxy-pipeline-depth "$PIPE_DEPTH" 2>"$work/connector-pipe.log" &
pipe_cpid=$!; pids+=("$pipe_cpid")
wait_for "http://127.0.0.1:$pmport/ready" 200 15 "$pipe_cpid" connector-pipe

idle_edge=$(kib "$epid" VmRSS); idle_conn=$(kib "$cpid" VmRSS)

tunnel_url="http://127.0.0.1:$hport"
direct_url="http://$oaddr"
# The tunnel must return what the origin returns, byte for byte.
for b in "${BODIES[@]}"; do
  curl -sf --max-time 10 -o "$work/direct.body" "$direct_url$b" || die "direct $b failed"
  curl -sf --max-time 10 -H "Host: $HOST" -o "$work/tunnel.body" "$tunnel_url$b" ||
    die "tunnel $b failed; connector log: $(cat "$work/connector.log")"
  cmp -s "$work/direct.body" "$work/tunnel.body" || die "tunnel $b: body differs from the origin's"
  curl -sf --max-time 10 -H "Host: $PIPE_HOST" -o "$work/tunnel.body" "$tunnel_url$b" ||
    die "tunnel (pipelining connector) $b failed; its log: $(cat "$work/connector-pipe.log")"
  cmp -s "$work/direct.body" "$work/tunnel.body" || die "tunnel (pipelining connector) $b: body differs from the origin's"
done
# And over HTTP/2, h2c on the plain port and h2 over TLS (certificates by
# SNI; not verified here), when curl speaks HTTP/2.
if curl -V | grep -qw HTTP2; then
  for b in "${H2_BODIES[@]}"; do
    curl -sf --max-time 10 -o "$work/direct.body" "$direct_url$b" || die "direct $b failed"
    v=$(curl -sf --max-time 10 --http2-prior-knowledge --resolve "$HOST:$hport:127.0.0.1" \
      -w '%{http_version}' -o "$work/tunnel.body" "http://$HOST:$hport$b") || die "tunnel h2c $b failed"
    [ "$v" = 2 ] || die "tunnel h2c $b: HTTP/$v, not HTTP/2"
    cmp -s "$work/direct.body" "$work/tunnel.body" || die "tunnel h2c $b: body differs from the origin's"
    v=$(curl -sfk --max-time 10 --http2 --resolve "$HOST:$sport:127.0.0.1" \
      -w '%{http_version}' -o "$work/tunnel.body" "https://$HOST:$sport$b") || die "tunnel https $b failed"
    [ "$v" = 2 ] || die "tunnel https $b: HTTP/$v, not HTTP/2 (ALPN)"
    cmp -s "$work/direct.body" "$work/tunnel.body" || die "tunnel https $b: body differs from the origin's"
  done
fi

cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
echo "machine: $(nproc) cores ($cpu_model), $(uname -sr); $(go version | awk '{print $3}'); $(wrk --version 2>&1 | awk 'NR==1{print $1, $2}'); $(h2load --version 2>&1 | head -1)"
echo "culvert $(git describe --always --dirty 2>/dev/null || echo "?"); runs of ${DURATION}s, ${REPEAT}x each (medians), warm-up ${WARMUP}s"
echo "idle RSS: edge $((idle_edge / 1024)) MiB, connector $((idle_conn / 1024)) MiB"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running on the machine skews the figures)"
echo

# --- load ---------------------------------------------------------------
mkdir -p "$work/wrk"
results="$work/results.txt"
: >"$results"

# run MODE BODY CONNS REP SECONDS: one wrk run; appends a line to $results
# unless REP is "warm".
run() {
  local mode=$1 body=$2 conns=$3 rep=$4 secs=$5 url threads e0 c0 e1 c1 out line
  threads=2; [ "$conns" -lt 2 ] && threads=1
  out="$work/wrk/$mode-${body//\//_}-c$conns-$rep.txt"
  local args=(-t"$threads" -c"$conns" -d"${secs}s" --timeout 2s --latency -s perf/wrk-report.lua)
  if [ "$mode" = tunnel ]; then
    url=$tunnel_url$body; args+=(-H "Host: $HOST")
  else
    url=$direct_url$body
  fi
  snap "$work/snap0"; e0=$(cpu_ticks "$epid"); c0=$(cpu_ticks "$cpid")
  timeout $((secs + 30)) wrk "${args[@]}" "$url" >"$out" 2>&1 || echo "wrk exited $? ($out)" >>"$out"
  e1=$(cpu_ticks "$epid"); c1=$(cpu_ticks "$cpid"); snap "$work/snap1"
  kill -0 "$epid" 2>/dev/null || die "the edge died during $mode $body c=$conns; log: $(tail -20 "$work/edge.log")"
  kill -0 "$cpid" 2>/dev/null || die "the connector died during $mode $body c=$conns; log: $(tail -20 "$work/connector.log")"
  [ "$rep" = warm ] && return
  line=$(grep '^WRK ' "$out" || true)
  if [ -z "$line" ]; then
    echo "  $mode $body c=$conns: no result from wrk: $(tail -3 "$out")" >&2
    line="WRK requests=0 duration_us=1 bytes=0 rps=0 bytes_per_s=0 p50_us=0 p99_us=0 err_connect=0 err_read=0 err_write=0 err_timeout=0 err_status=0 failed=1"
  fi
  # mode body conns rep key=value... edge_ticks= conn_ticks=
  echo "$mode $body $conns $rep ${line#WRK } edge_ticks=$((e1 - e0)) conn_ticks=$((c1 - c0)) other_ticks=$(others "$work/snap0" "$work/snap1")" >>"$results"
  awk -v m="$mode" -v b="$body" -v c="$conns" -v r="$rep" -v hz="$tck" '{
      for (i = 5; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      err = v["err_connect"] + v["err_read"] + v["err_write"] + v["err_timeout"] + v["err_status"]
      printf "  %-6s %-15s c=%-3s #%s %10.0f req/s %9.1f MB/s  p50 %6d µs  p99 %6d µs  errors %d  other load %3.0f%%\n",
        m, b, c, r, v["rps"], v["bytes_per_s"] / 1e6, v["p50_us"], v["p99_us"], err,
        v["other_ticks"] / hz / (v["duration_us"] / 1e6) * 100
    }' <<<"$(tail -1 "$results")"
}

echo "runs (the tables below take medians; \"other load\" is CPU used outside the benchmark's processes, in % of one core):"
t_start=$(date +%s); snap "$work/snap-start"
for body in "${BODIES[@]}"; do
  for conns in "${CONNS[@]}"; do
    run direct "$body" "$conns" warm "$WARMUP"
    run tunnel "$body" "$conns" warm "$WARMUP"
    for rep in $(seq "$REPEAT"); do
      # Alternate, and alternate which goes first.
      if [ $((rep % 2)) = 1 ]; then
        run direct "$body" "$conns" "$rep" "$DURATION"; run tunnel "$body" "$conns" "$rep" "$DURATION"
      else
        run tunnel "$body" "$conns" "$rep" "$DURATION"; run direct "$body" "$conns" "$rep" "$DURATION"
      fi
    done
  done
done
t_load=$(( $(date +%s) - t_start )); snap "$work/snap-end"; x_load=$(others "$work/snap-start" "$work/snap-end")

peak_edge=$(kib "$epid" VmHWM); peak_conn=$(kib "$cpid" VmHWM)
end_edge=$(kib "$epid" VmRSS); end_conn=$(kib "$cpid" VmRSS)

# --- HTTP/2 visitors: h2load ---------------------------------------------
mkdir -p "$work/h2load"
h2results="$work/h2results.txt"
: >"$h2results"

# h2run MODE BODY N REP: one h2load run of N requests; appends a line to
# $h2results unless REP is "warm".
h2run() {
  local mode=$1 body=$2 n=$3 rep=$4 out e0 c0 e1 c1 w0 w1 line args
  out="$work/h2load/$mode-${body//\//_}-$rep.txt"
  case $mode in
    direct-h1) args=(--h1 -c 10 -m 1 "$direct_url$body") ;;
    direct-h1p) args=(--h1 -c 10 -m 10 "$direct_url$body") ;;
    h2c) args=(-c 10 -m 10 --connect-to "127.0.0.1:$hport" "http://$HOST:$hport$body") ;;
    h2tls) args=(-c 10 -m 10 --connect-to "127.0.0.1:$sport" "https://$HOST:$sport$body") ;;
    h2c-m100) args=(-c 10 -m 100 --connect-to "127.0.0.1:$hport" "http://$HOST:$hport$body") ;;
    h2c-pipe) args=(-c 10 -m 10 --connect-to "127.0.0.1:$hport" "http://$PIPE_HOST:$hport$body") ;;
    h2tls-pipe) args=(-c 10 -m 10 --connect-to "127.0.0.1:$sport" "https://$PIPE_HOST:$sport$body") ;;
  esac
  local cp=$cpid; [ "${mode%-pipe}" != "$mode" ] && cp=$pipe_cpid
  snap "$work/snap0"; e0=$(cpu_ticks "$epid"); c0=$(cpu_ticks "$cp"); w0=$(date +%s%N)
  timeout $((30 + n / 2000)) h2load -n "$n" "${args[@]}" >"$out" 2>&1 || echo "h2load exited $? ($out)" >>"$out"
  w1=$(date +%s%N); e1=$(cpu_ticks "$epid"); c1=$(cpu_ticks "$cp"); snap "$work/snap1"
  kill -0 "$epid" 2>/dev/null || die "the edge died during h2load $mode $body; log: $(tail -20 "$work/edge.log")"
  kill -0 "$cpid" 2>/dev/null || die "the connector died during h2load $mode $body; log: $(tail -20 "$work/connector.log")"
  kill -0 "$pipe_cpid" 2>/dev/null || die "the pipelining connector died during h2load $mode $body; log: $(tail -20 "$work/connector-pipe.log")"
  [ "$rep" = warm ] && return
  # h2load's summary: "finished in 1.88s, 53150.55 req/s, ...", "requests:
  # N total, N started, N done, N succeeded, N failed, N errored, N
  # timeout", "status codes: N 2xx, N 3xx, N 4xx, N 5xx", "time for
  # request: min max mean sd".
  line=$(awk -v n="$n" '
    function us(s) { if (s ~ /us$/) return s + 0; if (s ~ /ms$/) return s * 1000; if (s ~ /s$/) return s * 1e6; return 0 }
    /^finished in/ { r = $4; gsub(",", "", r); rps = r + 0 }
    /^requests:/ { done = $6; ok = $8; failed = $10; errored = $12; tmo = $14 }
    /^status codes:/ { s2 = $3; s3 = $5; s4 = $7; s5 = $9 }
    /^time for request:/ { mean = us($6) }
    END { printf "rps=%s mean_us=%d done=%d ok=%d failed=%d errored=%d timeout=%d s2xx=%d s3xx=%d s4xx=%d s5xx=%d",
      rps + 0, mean, done, ok, (failed == "" ? n : failed), errored, tmo, s2, s3, s4, s5 }' "$out")
  grep -q '^finished in' "$out" || echo "  h2load $mode $body: no result: $(tail -3 "$out" | tr '\n' ' ')" >&2
  echo "$mode $body $rep n=$n $line wall_us=$(((w1 - w0) / 1000)) edge_ticks=$((e1 - e0)) conn_ticks=$((c1 - c0)) other_ticks=$(others "$work/snap0" "$work/snap1")" >>"$h2results"
  awk -v hz="$tck" '{
      for (i = 4; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      cpu = "-"
      if ($1 !~ /^direct/) cpu = sprintf("%.1f", (v["edge_ticks"] + v["conn_ticks"]) / hz * 1e6 / (v["ok"] > 0 ? v["ok"] : 1))
      printf "  %-10s %-13s #%s %10.0f req/s  mean %7d µs  2xx %d of %d, failed %d  CPU %s µs/req  other load %3.0f%%\n",
        $1, $2, $3, v["rps"], v["mean_us"], v["s2xx"], v["n"], v["failed"], cpu,
        v["other_ticks"] / hz / (v["wall_us"] > 0 ? v["wall_us"] / 1e6 : 1) * 100
    }' <<<"$(tail -1 "$h2results")"
}

echo
echo "h2load runs (HTTP/2 visitors; direct: the origin over HTTP/1.1):"
t_h2=$(date +%s); snap "$work/snap-h2-start"
# The runs with 1000 streams in flight (h2c-m100) come after all the
# others: the 10 x 10 runs that follow one are 10-15% slower, the edge and
# the connector using more CPU per request (h2load -n 200000 -c10 -m10
# /hello: 55 500 req/s before an -m100 run, 48 300 after; restarting the
# connector recovers part of it; the origin alone is not slower), which
# would penalize whichever modes came later.
h2n() { if [ "$1" = /hello ]; then echo "$H2N"; else echo $((H2N / 5)); fi; }
for body in "${H2_BODIES[@]}"; do
  n=$(h2n "$body")
  for mode in "${H2_MODES[@]}"; do
    [ "$mode" = h2c-m100 ] || h2run "$mode" "$body" $(((n / 20) > 1000 ? n / 20 : 1000)) warm
  done
  for rep in $(seq "$REPEAT"); do
    # Alternate which goes first.
    order=(direct-h1 direct-h1p h2c h2tls h2c-pipe h2tls-pipe)
    [ $((rep % 2)) = 0 ] && order=(h2tls-pipe h2c-pipe h2tls h2c direct-h1p direct-h1)
    for mode in "${order[@]}"; do h2run "$mode" "$body" "$n" "$rep"; done
  done
done
for body in "${H2_BODIES[@]}"; do
  n=$(h2n "$body")
  h2run h2c-m100 "$body" $(((n / 20) > 1000 ? n / 20 : 1000)) warm
  for rep in $(seq "$REPEAT"); do h2run h2c-m100 "$body" "$n" "$rep"; done
done
t_h2=$(( $(date +%s) - t_h2 )); snap "$work/snap-h2-end"; x_h2=$(others "$work/snap-h2-start" "$work/snap-h2-end")
h2peak_edge=$(kib "$epid" VmHWM); h2peak_conn=$(kib "$cpid" VmHWM); h2peak_pipe=$(kib "$pipe_cpid" VmHWM)

# --- report -------------------------------------------------------------
# One line per (mode, body, conns): medians and summed errors.
summary="$work/summary.txt"
awk -v hz="$tck" '
  function med(s,   n, a, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    delete v
    for (i = 5; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    k = $1 " " $2 " " $3
    if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
    rps[k] = rps[k] " " v["rps"]; bps[k] = bps[k] " " v["bytes_per_s"]
    p50[k] = p50[k] " " v["p50_us"]; p99[k] = p99[k] " " v["p99_us"]
    n = v["requests"] > 0 ? v["requests"] : 1
    cpu[k] = cpu[k] " " (v["edge_ticks"] + v["conn_ticks"]) / hz * 1e6 / n
    ecpu[k] = ecpu[k] " " v["edge_ticks"] / hz * 1e6 / n
    ccpu[k] = ccpu[k] " " v["conn_ticks"] / hz * 1e6 / n
    status[k] += v["err_status"]
    sock[k] += v["err_connect"] + v["err_read"] + v["err_write"] + v["err_timeout"]
  }
  END {
    for (i = 1; i <= nk; i++) { k = keys[i]
      print k, med(rps[k]), med(bps[k]) / 1e6, med(p50[k]), med(p99[k]), med(cpu[k]), med(ecpu[k]), med(ccpu[k]), status[k], sock[k] }
  }' "$results" >"$summary"

# get MODE BODY CONNS FIELD (4 rps, 5 MB/s, 6 p50, 7 p99, 8 cpu, 9 edge cpu, 10 conn cpu, 11 non-2xx, 12 socket errors)
get() { awk -v m="$1" -v b="$2" -v c="$3" -v f="$4" '$1==m && $2==b && $3==c {print $f}' "$summary"; }
lat() { awk -v u="$1" 'BEGIN{ if (u < 1000) printf "%dµs", u; else if (u < 1e6) printf "%.2fms", u / 1000; else printf "%.2fs", u / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

echo
echo "| body | conns | direct req/s | tunnel req/s | ratio | direct MB/s | tunnel MB/s | ratio | tunnel p50 / p99 | direct p50 / p99 | CPU µs/req edge+conn (edge / conn) | errors tunnel (non-2xx / socket) | errors direct |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
total_errors=0
for body in "${BODIES[@]}"; do
  for conns in "${CONNS[@]}"; do
    dr=$(get direct "$body" "$conns" 4); tr=$(get tunnel "$body" "$conns" 4)
    dm=$(get direct "$body" "$conns" 5); tm=$(get tunnel "$body" "$conns" 5)
    ts=$(get tunnel "$body" "$conns" 11); tk=$(get tunnel "$body" "$conns" 12)
    ds=$(get direct "$body" "$conns" 11); dk=$(get direct "$body" "$conns" 12)
    total_errors=$((total_errors + ts + tk + ds + dk))
    printf '| %s | %s | %.0f | %.0f | %s | %.1f | %.1f | %s | %s / %s | %s / %s | %.1f (%.1f / %.1f) | %s / %s | %s |\n' \
      "$body" "$conns" "$dr" "$tr" "$(ratio "$tr" "$dr")" "$dm" "$tm" "$(ratio "$tm" "$dm")" \
      "$(lat "$(get tunnel "$body" "$conns" 6)")" "$(lat "$(get tunnel "$body" "$conns" 7)")" \
      "$(lat "$(get direct "$body" "$conns" 6)")" "$(lat "$(get direct "$body" "$conns" 7)")" \
      "$(get tunnel "$body" "$conns" 8)" "$(get tunnel "$body" "$conns" 9)" "$(get tunnel "$body" "$conns" 10)" \
      "$ts" "$tk" "$((ds + dk))"
  done
done
echo
mib() { awk -v k="$1" 'BEGIN{printf "%.1f MiB", k / 1024}'; }
echo "| process | idle RSS (after start) | peak RSS (VmHWM, end) | RSS at end |"
echo "|---|---:|---:|---:|"
echo "| edge | $(mib "$idle_edge") | $(mib "$peak_edge") | $(mib "$end_edge") |"
echo "| connector | $(mib "$idle_conn") | $(mib "$peak_conn") | $(mib "$end_conn") |"
echo
echo "MB/s are 10^6 bytes a second as wrk reads them (headers and bodies); CPU is"
echo "the edge's and the connector's over each tunnel run; wrk, the origin, the edge"
echo "and the connector share the machine's $(nproc) cores."
echo
# HTTP/2 table: one line per (mode, body), medians; non-2xx counts every
# request of N that did not end with a 2xx (failed ones included).
h2summary="$work/h2summary.txt"
awk -v hz="$tck" '
  function med(s,   n, a, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    delete v
    for (i = 4; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    k = $1 " " $2
    if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
    n = v["ok"] > 0 ? v["ok"] : 1
    rps[k] = rps[k] " " v["rps"]; mean[k] = mean[k] " " v["mean_us"]
    cpu[k] = cpu[k] " " (v["edge_ticks"] + v["conn_ticks"]) / hz * 1e6 / n
    ecpu[k] = ecpu[k] " " v["edge_ticks"] / hz * 1e6 / n
    ccpu[k] = ccpu[k] " " v["conn_ticks"] / hz * 1e6 / n
    non2xx[k] += v["n"] - v["s2xx"]; failed[k] += v["failed"]
  }
  END {
    for (i = 1; i <= nk; i++) { k = keys[i]
      print k, med(rps[k]), med(mean[k]), med(cpu[k]), med(ecpu[k]), med(ccpu[k]), non2xx[k], failed[k] }
  }' "$h2results" >"$h2summary"
# h2get MODE BODY FIELD (3 rps, 4 mean µs, 5 cpu, 6 edge cpu, 7 conn cpu, 8 non-2xx, 9 failed)
h2get() { awk -v m="$1" -v b="$2" -v f="$3" '$1==m && $2==b {print $f}' "$h2summary"; }
h2label() {
  case $1 in
    direct-h1) echo "direct, HTTP/1.1 | --h1 -c10 -m1" ;;
    direct-h1p) echo "direct, HTTP/1.1 pipelined | --h1 -c10 -m10" ;;
    h2c) echo "tunnel, h2c (plain port) | -c10 -m10" ;;
    h2tls) echo "tunnel, h2 over TLS (ALPN) | -c10 -m10" ;;
    h2c-m100) echo "tunnel, h2c, 1000 streams in flight | -c10 -m100" ;;
    h2c-pipe) echo "tunnel, h2c, connector pipelining (depth $PIPE_DEPTH) | -c10 -m10" ;;
    h2tls-pipe) echo "tunnel, h2 over TLS, connector pipelining (depth $PIPE_DEPTH) | -c10 -m10" ;;
  esac
}
echo "HTTP/2 visitors (h2load -t1; $H2N requests a run for /hello, $((H2N / 5)) for /bytes/65536; medians of $REPEAT):"
echo
echo "| body | visitor | h2load | req/s | ratio to direct -m1 | ratio to direct -m10 | mean request time | CPU µs/req edge+conn (edge / conn) | non-2xx (failed) |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
for body in "${H2_BODIES[@]}"; do
  d1=$(h2get direct-h1 "$body" 3); d10=$(h2get direct-h1p "$body" 3)
  for mode in "${H2_MODES[@]}"; do
    x=$(h2get "$mode" "$body" 3)
    total_errors=$((total_errors + $(h2get "$mode" "$body" 8)))
    if [ "${mode#direct}" = "$mode" ]; then
      cpu=$(printf '%.1f (%.1f / %.1f)' "$(h2get "$mode" "$body" 5)" "$(h2get "$mode" "$body" 6)" "$(h2get "$mode" "$body" 7)")
      r1=$(ratio "$x" "$d1"); r10=$(ratio "$x" "$d10")
    else
      cpu=-; r1=-; r10=-
    fi
    printf '| %s | %s | %.0f | %s | %s | %s | %s | %s (%s) |\n' "$body" "$(h2label "$mode")" "$x" "$r1" "$r10" \
      "$(lat "$(h2get "$mode" "$body" 4)")" "$cpu" "$(h2get "$mode" "$body" 8)" "$(h2get "$mode" "$body" 9)"
  done
done
echo
echo "peak RSS (VmHWM) after the h2load runs: edge $(mib "$h2peak_edge"), connector $(mib "$h2peak_conn"), pipelining connector $(mib "$h2peak_pipe")"
echo
echo "Goals (where things stand; not pass/fail):"
goal() { # LABEL VALUE OP LIMIT UNIT
  awk -v l="$1" -v v="$2" -v op="$3" -v g="$4" -v u="$5" 'BEGIN{
    met = (op == ">=") ? (v >= g) : (v < g || (op == "<=" && v == g))
    printf "  %-52s %8.2f%s  (goal %s %s%s)  %s\n", l, v, u, op, g, u, met ? "met" : "not met" }'
}
r() { awk -v a="$1" -v b="$2" 'BEGIN{ print (b > 0 ? a / b : 0) }'; }
goal "/hello, c=50: tunnel / direct req/s" "$(r "$(get tunnel /hello 50 4)" "$(get direct /hello 50 4)")" ">=" 0.5 x
goal "/hello, h2c: tunnel / direct h1 (-m1) req/s" "$(r "$(h2get h2c /hello 3)" "$(h2get direct-h1 /hello 3)")" ">=" 0.5 x
goal "/hello, h2 TLS: tunnel / direct h1 (-m1) req/s" "$(r "$(h2get h2tls /hello 3)" "$(h2get direct-h1 /hello 3)")" ">=" 0.5 x
goal "/hello, h2c, pipelining: tunnel / direct h1 (-m1)" "$(r "$(h2get h2c-pipe /hello 3)" "$(h2get direct-h1 /hello 3)")" ">=" 0.5 x
goal "/hello, h2 TLS, pipelining: tunnel / direct h1 (-m1)" "$(r "$(h2get h2tls-pipe /hello 3)" "$(h2get direct-h1 /hello 3)")" ">=" 0.5 x
for conns in "${CONNS[@]}"; do
  goal "1 MiB, c=$conns: tunnel / direct MB/s" "$(r "$(get tunnel /bytes/1048576 "$conns" 5)" "$(get direct /bytes/1048576 "$conns" 5)")" ">=" 0.25 x
done
for conns in "${CONNS[@]}"; do
  goal "/hello, c=$conns: CPU per request, edge + connector" "$(get tunnel /hello "$conns" 8)" "<=" 25 " µs"
done
goal "/hello, h2c: CPU per request, edge + connector" "$(h2get h2c /hello 5)" "<=" 25 " µs"
goal "/hello, h2 TLS: CPU per request, edge + connector" "$(h2get h2tls /hello 5)" "<=" 25 " µs"
goal "idle RSS, edge" "$(awk -v k="$idle_edge" 'BEGIN{print k / 1024}')" "<" 20 " MiB"
goal "idle RSS, connector" "$(awk -v k="$idle_conn" 'BEGIN{print k / 1024}')" "<" 20 " MiB"
echo
if [ "$total_errors" -gt 0 ]; then
  echo "ERRORS: $total_errors failed requests (wrk: non-2xx/3xx responses or socket errors; h2load: non-2xx or failed); see the tables."
  if [ "${KEEP:-0}" = 1 ]; then
    echo "  wrk outputs and the edge's and connector's logs: $work"
  else
    echo "  (KEEP=1 keeps wrk's and h2load's outputs and the edge's and connector's logs)"
  fi
  for f in "$work"/wrk/*.txt; do
    if grep -qE 'Non-2xx|Socket errors|exited' "$f"; then
      n=$(basename "$f" .txt); [ "${n%-warm}" != "$n" ] && n="$n (warm-up, not counted)"
      echo "  $n: $(grep -E 'Non-2xx|Socket errors|exited' "$f" | tr -s ' \n' ' ')"
    fi
  done
  for f in "$work"/h2load/*.txt; do
    if grep -q exited "$f" || ! grep -qE '^status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' "$f" ||
      ! grep -qE ' 0 failed, 0 errored, 0 timeout' "$f"; then
      n=h2load-$(basename "$f" .txt); [ "${n%-warm}" != "$n" ] && n="$n (warm-up, not counted)"
      echo "  $n: $(grep -E '^(requests|status codes):|exited' "$f" | tr -s ' \n' ' ')"
    fi
  done
  for p in edge connector connector-pipe; do
    if [ -s "$work/$p.log" ]; then
      echo "  $p log, last lines:"; tail -5 "$work/$p.log" | sed 's/^/    /'
    else
      echo "  $p log: empty"
    fi
  done
else
  echo "errors: none (wrk: no non-2xx/3xx responses, no socket errors; h2load: all 2xx, none failed)"
fi
echo "wrk phase: ${t_load}s; other load during it: $(awk -v t="$x_load" -v hz="$tck" -v s="$t_load" 'BEGIN{printf "%.0f%%", t / hz / (s > 0 ? s : 1) * 100}') of one core on average (CPU outside the benchmark's processes)"
echo "h2load phase: ${t_h2}s; other load during it: $(awk -v t="$x_h2" -v hz="$tck" -v s="$t_h2" 'BEGIN{printf "%.0f%%", t / hz / (s > 0 ? s : 1) * 100}') of one core on average"
