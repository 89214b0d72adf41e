-- An open-loop, constant-rate schedule for wrk (bench/wire.py's paced runs).
--
-- wrk alone is a closed loop: a connection sends its next request once the answer to the
-- last one is in (after delay()), and times a request from when it was written, so a
-- stalled answer delays the requests behind it instead of queueing them and they are not
-- counted as late (coordinated omission). Here every request has an intended send time on
-- a fixed schedule — request n of the run at t0 + n / rate, dealt round-robin to the
-- connections — and its latency runs from that time (or from when it was written, if
-- that was earlier): a request that waits for a busy connection counts the wait, as wrk2
-- does. One connection per wrk thread (`wrk -tN -cN`), so each Lua state knows its
-- connection's one request in flight. Times come from CLOCK_MONOTONIC through LuaJIT's
-- FFI (Debian's wrk is built on LuaJIT).
--
--   wrk -tN -cN -d5s -s wire_paced.lua URL -- RATE PATH UNIQUE AGENT CONNECTIONS [LOG]
--
-- With LOG (a file path), every answered request is also written there, one line each:
-- its number (the counter the unique path ends with, or its X-Bench-Seq header), intended
-- send, written and answered times (µs, CLOCK_MONOTONIC: the server's time.perf_counter() on the same machine), so
-- bench/wire_stalls.py can put each slow answer beside the server's own timeline.
--
-- done() prints one JSON line: answered requests, the corrected percentiles (µs), the
-- schedule's window (µs, from the first intended send to the end: offered = rate × window),
-- the requests sent over 1 ms after their time, and wrk's own (uncorrected) p99.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } adx_timespec;
  int clock_gettime(int clock, adx_timespec *tp);
]]
local timespec = ffi.new("adx_timespec")
local function now_us()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1e6 + tonumber(timespec.tv_nsec) / 1e3
end

-- main state: deal each thread (one connection) its place on the schedule and a common t0
local threads = {}
local start = nil
function setup(thread)
  start = start or now_us() + 200000 -- every connection open before the first send
  thread:set("id", #threads)
  thread:set("t0", start)
  table.insert(threads, thread)
end

-- thread states: one connection each
local rate, path, unique, interval, first, n, counter
local intended, sent, sent_counter = nil, nil, nil
hist, answered, late = {}, 0, 0
log, logged = nil, {}

function init(args)
  rate = tonumber(args[1])
  path = args[2]
  unique = args[3] == "true"
  wrk.headers["User-Agent"] = args[4]
  wrk.headers["Cookie"] = "adx_uid=bench-user"
  local connections = tonumber(args[5])
  interval = connections * 1e6 / rate
  first = t0 + id * 1e6 / rate
  n, counter = 0, id * 100000000
  log = args[6]
end

function delay()
  intended = first + n * interval
  n = n + 1
  local wait = intended - now_us()
  if wait <= 0 then
    return 0
  end
  return math.floor(wait / 1000) -- ms, as ae's timers; early by < 1 ms at most
end

function request()
  sent = now_us()
  counter = counter + 1
  sent_counter = counter
  if unique then
    return wrk.format("GET", path .. counter)
  end
  if log then -- a path that cannot carry the counter (a signed link): a header does
    return wrk.format("GET", path, {["X-Bench-Seq"] = tostring(counter)})
  end
  return wrk.format("GET", path)
end

function response(status, headers, body)
  local from = intended
  if sent > from then
    if sent - from > 1000 then
      late = late + 1 -- waited over 1 ms for its connection: coordinated omission, corrected
    end
  else
    from = sent
  end
  local finished = now_us()
  local us = finished - from
  if log then
    local at = #logged
    logged[at + 1], logged[at + 2], logged[at + 3], logged[at + 4] =
      sent_counter, intended, sent, finished
  end
  local bucket = us < 10000 and math.floor(us / 10) * 10 or math.floor(us / 100) * 100
  hist[bucket] = (hist[bucket] or 0) + 1
  answered = answered + 1
end

function done(summary, latency, requests)
  local merged, total, sent_late = {}, 0, 0
  local out = nil
  for _, thread in ipairs(threads) do
    local path = thread:get("log")
    if path then
      out = out or io.open(path, "w")
      local rows = thread:get("logged")
      for i = 1, #rows, 4 do
        out:write(string.format("%d %.0f %.0f %.0f\n", rows[i], rows[i + 1], rows[i + 2], rows[i + 3]))
      end
    end
    for bucket, count in pairs(thread:get("hist")) do
      merged[bucket] = (merged[bucket] or 0) + count
    end
    total = total + thread:get("answered")
    sent_late = sent_late + thread:get("late")
  end
  if out then
    out:close()
  end
  local buckets = {}
  for bucket in pairs(merged) do
    table.insert(buckets, bucket)
  end
  table.sort(buckets)
  local function percentile(p)
    local want, seen = total * p / 100, 0
    for _, bucket in ipairs(buckets) do
      seen = seen + merged[bucket]
      if seen >= want then
        return bucket
      end
    end
    return buckets[#buckets] or 0
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"window_us":%d,"duration_us":%d,"errors":%d,"bad_status":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"late_sends":%d,' ..
    '"uncorrected_p99":%d}\n',
    total, now_us() - start, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    percentile(50), percentile(90), percentile(99), percentile(99.9),
    buckets[#buckets] or 0, sent_late, latency:percentile(99)))
end
