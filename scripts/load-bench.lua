-- wrk script of scripts/load-bench. After wrk's own arguments:
--   -- segments JOB COUNT   GET a random one of /hls/JOB/segment_00000.ts .. segment_{COUNT-1}.ts
--   -- path PATH            GET PATH, over and over
-- done() prints one line that scripts/load-bench reads (latencies in milliseconds):
--   LOADBENCH requests=N seconds=S p50_ms=X p90_ms=X p99_ms=X max_ms=X status_errors=N socket_errors=N
-- status_errors is wrk's count of answers >= 400; the script adds the servers' own non-2xx counts.

local threads = 0
local pool = {}

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  local mode = args[1]
  if mode == "segments" then
    local job, count = args[2], tonumber(args[3])
    for i = 0, count - 1 do
      pool[#pool + 1] = wrk.format("GET", string.format("/hls/%s/segment_%05d.ts", job, i))
    end
  elseif mode == "path" then
    pool[1] = wrk.format("GET", args[2])
  else
    error("load-bench.lua: expected 'segments JOB COUNT' or 'path PATH', got " .. tostring(mode))
  end
  -- Formatted once here: request() only picks one, so wrk's threads stay cheap.
  math.randomseed(os.time() * 1000 + thread_id)
end

function request()
  return pool[math.random(#pool)]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "LOADBENCH requests=%d seconds=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f"
      .. " status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
