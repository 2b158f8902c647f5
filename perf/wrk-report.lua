-- wrk -s perf/wrk-report.lua: after wrk's own report, one line that
-- perf/tunnel.sh parses:
--   WRK requests=N duration_us=N bytes=N rps=F bytes_per_s=F p50_us=N p99_us=N
--       err_connect=N err_read=N err_write=N err_timeout=N err_status=N
-- bytes are what wrk read (headers and bodies); err_status counts
-- responses that were not 2xx or 3xx.
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d bytes=%d rps=%.2f bytes_per_s=%.0f p50_us=%d p99_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
    summary.requests, summary.duration, summary.bytes,
    summary.requests / secs, summary.bytes / secs,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, e.status))
end
