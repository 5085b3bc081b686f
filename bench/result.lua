-- The `BENCH_RESULT {json}` line the bench's wrk scripts print in done() (bench/measure.py reads it):
-- requests, duration, latency percentiles (µs), socket errors, the responses counted per status (or
-- per check result) over all threads, and `extra`, more "key":number fields as one string.
-- Loaded with dofile("bench/result.lua") (wrk runs from the repository root).

local function json_object(t)
  local parts = {}
  for k, v in pairs(t) do
    table.insert(parts, string.format('"%s":%.0f', k, v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function bench_result(summary, latency, threads, extra)
  -- Per-thread counters live in each thread's Lua state (global `statuses`); collect them here.
  local all = {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses")) do
      all[k] = (all[k] or 0) + v
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f,"mean":%.1f},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"statuses":%s%s}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout,
    json_object(all), extra ~= "" and ("," .. extra) or ""))
end
