-- wrk script for bench/streaming.py: streamed Messages API answers, read whole and checked.
--
-- Each request is POST /v1/messages with "stream": true and the stand-in's steering headers
-- (tests/standins/messages_api.py): BENCH_DELTAS `content_block_delta` events of BENCH_DELTA_BYTES-byte
-- texts, BENCH_EVENT_DELAY_MS apart, each event its own HTTP chunk. wrk reads every answer to its
-- end; response() checks it is the whole stream (status 200, BENCH_DELTAS delta events, ends with
-- message_stop) and counts it as "200", or as "incomplete" or its status.
--
-- Environment: BENCH_API_KEY (sent as x-api-key), BENCH_DELTAS, BENCH_DELTA_BYTES,
-- BENCH_EVENT_DELAY_MS, BENCH_ANSWERS (the thread stops after this many answers, so that a
-- measurement is a fixed number of answers rather than a duration; it prints BENCH_ANSWERS_DONE).
-- One wrk thread (-t1).
--
-- At the end: the BENCH_RESULT line of bench/result.lua.

dofile("bench/result.lua")

statuses = {}
local answers = 0
local want = tonumber(os.getenv("BENCH_ANSWERS") or "0") or 0
local deltas = tonumber(os.getenv("BENCH_DELTAS") or "0") or 0
local threads = {}
local request_bytes

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  request_bytes = wrk.format("POST", "/v1/messages", {
    ["content-type"] = "application/json",
    ["anthropic-version"] = "2023-06-01",
    ["x-api-key"] = os.getenv("BENCH_API_KEY"),
    ["x-standin-deltas"] = tostring(deltas),
    ["x-standin-delta-bytes"] = os.getenv("BENCH_DELTA_BYTES"),
    ["x-standin-event-delay-ms"] = os.getenv("BENCH_EVENT_DELAY_MS"),
  }, '{"model":"claude-sonnet-4-5","max_tokens":4096,"stream":true,' ..
     '"messages":[{"role":"user","content":"hi"}]}')
end

function request()
  return request_bytes
end

local STOP = 'event: message_stop\ndata: {"type":"message_stop"}\n\n'

local function count(body, needle)
  local n, at = 0, 1
  while true do
    local s, e = string.find(body, needle, at, true)
    if s == nil then
      return n
    end
    n, at = n + 1, e + 1
  end
end

function response(status, headers, body)
  local key = tostring(status)
  if status == 200 and (string.sub(body, -#STOP) ~= STOP
                        or count(body, "event: content_block_delta\n") ~= deltas) then
    key = "incomplete"
  end
  statuses[key] = (statuses[key] or 0) + 1
  answers = answers + 1
  if want > 0 and answers >= want then
    wrk.thread:stop()
    -- bench/measure.py's run_wrk_script then ends wrk (which would wait out -d) with SIGINT
    io.write("BENCH_ANSWERS_DONE\n")
    io.flush()
  end
end

function done(summary, latency, requests)
  bench_result(summary, latency, threads, "")
end
