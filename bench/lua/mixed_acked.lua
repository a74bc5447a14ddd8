-- wrk script for fault scenarios: 90% GET / and 10% POST /api/leads (each lead with its own
-- Idempotency-Key), counting per thread every answer by kind, so the caller can compare the
-- leads acknowledged (2xx to a POST) with the leads stored. done() prints one JSON line
-- prefixed "RESULT ".
local threads = {}
local counter = 0
local prefix
-- WRK_SPREAD_CLIENTS=1: every request claims its own client (X-Forwarded-For from a trusted
-- proxy), so per-client rate limits never apply to the load, only to a scenario's own probes.
local spread = os.getenv("WRK_SPREAD_CLIENTS") == "1"
-- WRK_POST_EVERY=n: every n-th request posts a lead (default 10); 0: pages only.
local post_every = tonumber(os.getenv("WRK_POST_EVERY") or "10") or 10
local lead = '{"name":"Ada Lovelace","email":"ada@example.com","company":"Analytical Engines Ltd",' ..
  '"message":"Rolling restart probe: a lead that must not be lost.","consent":true}'
acked, get_ok, failed, s502, s503, s504 = 0, 0, 0, 0, 0, 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0))
  prefix = string.format("fault-%d-%d-%d-", id or 0, os.time(), math.random(1, 1000000000))
end

function request()
  counter = counter + 1
  local client = nil
  if spread then
    client = string.format("10.%d.%d.%d", id or 0, math.floor(counter / 256) % 256, counter % 256)
  end
  if post_every > 0 and counter % post_every == 0 then
    return wrk.format("POST", "/api/leads",
      { ["Content-Type"] = "application/json", ["Idempotency-Key"] = prefix .. counter,
        ["X-Forwarded-For"] = client }, lead)
  end
  return wrk.format("GET", "/", { ["Accept"] = "text/html", ["X-Forwarded-For"] = client })
end

-- A thread has many connections in flight, so an answer is told apart by what it is: the
-- API answers JSON, the home page HTML. Anything else (a 5xx from the balancer) is a failure.
function response(status, headers, body)
  local ct = headers["Content-Type"] or headers["content-type"] or ""
  if status >= 200 and status < 300 and ct:find("json", 1, true) then
    acked = acked + 1
  elseif status == 200 then
    get_ok = get_ok + 1
  else
    failed = failed + 1
    if status == 502 then s502 = s502 + 1 elseif status == 503 then s503 = s503 + 1
    elseif status == 504 then s504 = s504 + 1 end
  end
end

function done(summary, latency, requests)
  local t = { acked = 0, get_ok = 0, failed = 0, s502 = 0, s503 = 0, s504 = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"acked":%d,"get_ok":%d,"failed":%d,"status_502":%d,"status_503":%d,"status_504":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"status_errors":%d,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration, t.acked, t.get_ok, t.failed, t.s502, t.s503, t.s504,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
