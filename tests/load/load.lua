-- wrk script for `make loadtest` (tests/load/run.py runs it as `wrk -tN -cN -s tests/load/load.lua`).
--
-- One wrk thread per credential class, one connection per thread, so every response belongs to a
-- known class (wrk's response() cannot tell which request it answers; with one connection per thread
-- and no pipelining, it answers the last request that thread sent).
--
-- Every request is POST /v1/messages with a small Messages API body and these headers:
--   x-load-class: <class>          counted per class at the upstream (the filter passes it through)
--   x-load-user:  <expected id>    the user id the upstream must see in x-gateway-user-id
--   x-gateway-user-id: spoofed     a spoofing attempt: the filter must remove or overwrite it
--   the class's credential (authorization or x-api-key), or none for the "missing" class
--   connection: close on every CLOSE_EVERY-th request of a class, so that a class's requests move
--   between Envoy's workers (a kept-alive connection stays on the worker that accepted it)
--
-- Pacing: delay() holds each request for the class's delay (wrk's built-in per-request delay), so a
-- class sends at about 1000 / (delay_ms + latency) requests per second. Before a class's start and
-- after its stop it sends nothing.
--
-- The plan file (LOAD_PLAN) is written by run.py; all times are Unix seconds:
--   t0 <epoch>                                  second 0 of the timeline
--   class <name> <delay_ms> <start> <stop>      in thread order
--   pool <name> <from> <file> [<flag>]          from <from> on (and, with <flag>, once the file <flag>
--                                               exists), <name> takes credentials from <file>
-- A pool file has one credential per line: <expected user id> TAB <header name or -> TAB <value>.
--
-- At the end done() prints one line per class:
--   LOAD_RESULT {"class":..., "sent":n, "inflight_second":s, "counts":{"<second>|<status>|<error.message>":n},
--                "slow":{"<sent second>|<answer second>|<status>|<error.message>":n}}
-- (seconds since t0, whole seconds; "slow" lists answers that came 2 or more clock seconds later;
-- inflight_second is the send second of a request still unanswered when wrk stopped, else -1)
-- and one line LOAD_SUMMARY {...} with wrk's totals, socket errors and latency percentiles.

local CLOSE_EVERY = 25
local body = '{"model":"claude-sonnet-4-5","max_tokens":16,' ..
             '"messages":[{"role":"user","content":"load test"}]}'

local threads = {}
local setup_index = 0

-- globals read by done() through thread:get()
class_name = nil
sent = 0
counts = {}
slow = {}               -- "<sent second>|<answer second>|<status>|<message>" -> n, for answers >= 2 s late
inflight_second = -1    -- second in which the request still unanswered was sent (-1: none)
switched = {}           -- pool file -> second its flag was first seen

local me = nil          -- this thread's class: {name, delay, start, stop, pools}
local t0 = 0
local current = nil     -- the pool in use
local idx = 0
local last_second = -1  -- second (since t0) in which the request being answered was sent

local function split(line, sep)
  local out = {}
  for field in string.gmatch(line, "([^" .. sep .. "]+)") do
    table.insert(out, field)
  end
  return out
end

local function read_plan()
  local path = os.getenv("LOAD_PLAN")
  if path == nil or path == "" then
    error("LOAD_PLAN is not set")
  end
  local plan = { classes = {}, by_name = {} }
  for line in io.lines(path) do
    local f = split(line, " ")
    if f[1] == "t0" then
      plan.t0 = tonumber(f[2])
    elseif f[1] == "class" then
      local c = { name = f[2], delay = tonumber(f[3]), start = tonumber(f[4]), stop = tonumber(f[5]),
                  pools = {} }
      table.insert(plan.classes, c)
      plan.by_name[c.name] = c
    elseif f[1] == "pool" then
      table.insert(plan.by_name[f[2]].pools, { from = tonumber(f[3]), file = f[4], flag = f[5] })
    end
  end
  return plan
end

function setup(thread)
  setup_index = setup_index + 1
  local plan = read_plan()
  local c = plan.classes[setup_index]
  if c == nil then
    error("more wrk threads than classes in the plan")
  end
  thread:set("class_name", c.name)
  table.insert(threads, thread)
end

function init(args)
  local plan = read_plan()
  t0 = plan.t0
  me = plan.by_name[class_name]
  for _, pool in ipairs(me.pools) do
    pool.entries = {}
    for line in io.lines(pool.file) do
      if #line > 0 then
        local f = split(line, "\t")
        table.insert(pool.entries, { user = f[1], header = f[2], value = f[3] })
      end
    end
    if #pool.entries == 0 then
      error("empty pool " .. pool.file)
    end
  end
end

local function pool_at(now)
  local chosen = nil
  for _, pool in ipairs(me.pools) do
    if pool.from <= now then
      if pool.flag ~= nil and not pool.active then
        local fh = io.open(pool.flag, "r")      -- looked for on every request until it exists
        if fh ~= nil then
          fh:close()
          pool.active = true
          switched[pool.file] = now - t0
        end
      end
      if pool.flag == nil or pool.active then
        chosen = pool
      end
    end
  end
  return chosen
end

function delay()
  local now = os.time()
  if now < me.start then
    -- os.time() has whole seconds: wait out the rest of the gap (the first request of a class goes
    -- out within its start second, never before it)
    return (me.start - now) * 1000
  end
  if now >= me.stop then
    return 60000     -- done: idle until wrk's duration ends
  end
  return me.delay
end

function request()
  local now = os.time()
  local pool = pool_at(now) or me.pools[1]
  if pool ~= current then
    current = pool
    idx = 0
  end
  local e = pool.entries[(idx % #pool.entries) + 1]
  idx = idx + 1
  sent = sent + 1
  last_second = now - t0
  inflight_second = last_second
  local headers = {
    ["content-type"] = "application/json",
    ["anthropic-version"] = "2023-06-01",
    ["x-load-class"] = class_name,
    ["x-load-user"] = e.user,
    ["x-gateway-user-id"] = "spoofed",
  }
  if e.header ~= "-" then
    headers[e.header] = e.value
  end
  if sent % CLOSE_EVERY == 0 then
    headers["connection"] = "close"
  end
  return wrk.format("POST", "/v1/messages", headers, body)
end

function response(status, headers, resp_body)
  local msg = ""
  if status < 200 or status > 299 then
    msg = string.match(resp_body or "", '"message":"([^"]*)"') or "?"
  end
  local key = last_second .. "|" .. status .. "|" .. msg
  counts[key] = (counts[key] or 0) + 1
  local answered = os.time() - t0
  if answered - last_second >= 2 then
    local k = last_second .. "|" .. answered .. "|" .. status .. "|" .. msg
    slow[k] = (slow[k] or 0) + 1
  end
  inflight_second = -1
end

local function json_counts(t)
  local parts = {}
  for k, v in pairs(t) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format(
      'LOAD_RESULT {"class":"%s","sent":%d,"inflight_second":%d,"counts":%s,"slow":%s,"switched":%s}\n',
      thread:get("class_name"), thread:get("sent") or 0, thread:get("inflight_second") or -1,
      json_counts(thread:get("counts") or {}), json_counts(thread:get("slow") or {}),
      json_counts(thread:get("switched") or {})))
  end
  local e = summary.errors
  io.write(string.format(
    'LOAD_SUMMARY {"requests":%d,"duration_us":%d,' ..
    '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
