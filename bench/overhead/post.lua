-- wrk script for the overhead bench: POSTs chat-completion bodies read from $BENCH_BODIES (one
-- JSON body a line), cycling through them, and prints one JSON summary line when wrk finishes.
-- Requests are formatted once in init(), so request() only returns a prebuilt string and wrk's
-- own cost stays the same for every target.

local reqs = {}
local n = 0
local at = 0

function init(args)
  local path = os.getenv("BENCH_BODIES")
  for line in io.lines(path) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("POST", "/v1/chat/completions", { ["Content-Type"] = "application/json" }, line)
    end
  end
  -- Threads start at different bodies.
  at = math.random(n) - 1
end

function request()
  at = at % n + 1
  return reqs[at]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
