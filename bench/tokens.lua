-- wrk script for `make bench` (bench/run.py runs it as `wrk -t1 -s bench/tokens.lua ...`).
--
-- Sends POST /v1/messages with a small Messages API body and `authorization: Bearer <token>`, taking
-- the tokens in order from a file, one per line, so that consecutive requests carry different tokens
-- (a pool of N distinct tokens gives N requests before the first repeat; a pool of a few hundred
-- gives the "same users again" load).
--
-- Environment:
--   BENCH_TOKENS   file with one token per line (required)
--   BENCH_OFFSET   index of the first token to send (default 0), so that a measurement can continue
--                  after the tokens its warm-up used
--   BENCH_NO_AUTH  if set to 1, send no authorization header at all
--   BENCH_BODY_FILE  if set, the request body is this file's content (e.g. a 2 KB model-first body)
--
-- At the end it prints one line, `BENCH_RESULT {json}`, with requests, duration, latency
-- percentiles (µs), socket errors, the responses counted per HTTP status, and `wrapped`: how many
-- requests were sent after the pool ran out and started again from its first token.

local tokens = {}
local n = 0
-- globals, so that done() can read them from the thread with thread:get()
idx = 0
wrapped = 0
has_wrapped = false
statuses = {}
local body = '{"model":"claude-sonnet-4-5","max_tokens":64,' ..
             '"messages":[{"role":"user","content":"hello"}]}'
local base_headers = {
  ["content-type"] = "application/json",
  ["anthropic-version"] = "2023-06-01",
}
local no_auth = os.getenv("BENCH_NO_AUTH") == "1"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("BENCH_TOKENS")
  if path == nil or path == "" then
    error("BENCH_TOKENS is not set")
  end
  for line in io.lines(path) do
    if #line > 0 then
      n = n + 1
      tokens[n] = line
    end
  end
  if n == 0 then
    error("no tokens in " .. path)
  end
  idx = (tonumber(os.getenv("BENCH_OFFSET") or "0") or 0) % n
  local body_file = os.getenv("BENCH_BODY_FILE")
  if body_file ~= nil and body_file ~= "" then
    local f = assert(io.open(body_file, "rb"))
    body = f:read("*a")
    f:close()
  end
end

function request()
  local headers = {}
  for k, v in pairs(base_headers) do
    headers[k] = v
  end
  if not no_auth then
    headers["authorization"] = "Bearer " .. tokens[idx + 1]
  end
  if has_wrapped then
    wrapped = wrapped + 1
  end
  idx = idx + 1
  if idx >= n then
    idx = 0
    has_wrapped = true
  end
  return wrk.format("POST", "/v1/messages", headers, body)
end

function response(status, headers, resp_body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

dofile("bench/result.lua")

function done(summary, latency, requests)
  local wraps = 0
  local sent_from = {}
  for _, thread in ipairs(threads) do
    wraps = wraps + (thread:get("wrapped") or 0)
    table.insert(sent_from, thread:get("idx") or 0)
  end
  bench_result(summary, latency, threads,
               string.format('"wrapped":%.0f,"next_offset":%.0f', wraps, sent_from[1] or 0))
end
