-- wrk script every bench load runs (bench/harness.py `wrk`): it loads the scenario's own script
-- (BENCH_SCRIPT, a path; none: wrk's plain GET of the URL) and adds one done() hook, because
-- `wrk --latency` prints only the 50/75/90/99th percentiles, in rounded units. done() prints one
-- line "BENCH_RESULT {json}": requests, duration, p50/p95/p99/max and mean in milliseconds, and
-- wrk's error counts. A scenario script may list per-thread counters of its own in the global
-- BENCH_COUNTERS (names of globals it increments); their sums over the threads are added.
local scenario = os.getenv("BENCH_SCRIPT")
if scenario and scenario ~= "" then
  dofile(scenario)
end

local threads = {}
local scenario_setup = setup
function setup(thread)
  table.insert(threads, thread)
  if scenario_setup then scenario_setup(thread) end
end

function done(summary, latency, requests)
  local counters = {}
  for _, name in ipairs(BENCH_COUNTERS or {}) do
    local sum = 0
    for _, thread in ipairs(threads) do sum = sum + (thread:get(name) or 0) end
    counters[#counters + 1] = string.format('"%s":%d', name, sum)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,' ..
    '"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"counters":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    e.status, e.connect, e.read, e.write, e.timeout, table.concat(counters, ",")))
end
