-- wrk script: a valid enquiry on every request, with a fresh idempotency key each time (every
-- rendering of the form has its own; a program's retries would reuse one, distinct requests
-- never do). BENCH_TARGET picks the door:
--   form  POST /contact as the browser sends it: the fields, an empty honeypot and the form
--         token in BENCH_FORM_TOKEN, fetched once beforehand (it stays valid for
--         VANTUS_FORM_MAX_AGE; the caller waits past the minimum fill time);
--   api   POST /api/leads, JSON, with an Idempotency-Key header.
local target = os.getenv("BENCH_TARGET") or error("BENCH_TARGET is not set (form or api)")
local counter = 0
local threads = 0
local prefix

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local lead = {
  { "name", "Ada Lovelace" }, { "email", "ada@example.com" }, { "company", "Analytical Engines Ltd" },
  { "role", "Head of product" }, { "budget", "25k-50k" }, { "website", "https://engines.example.com" },
  { "message", "We need a new customer portal before the spring launch." },
}

local path, headers, body
if target == "form" then
  local token = os.getenv("BENCH_FORM_TOKEN") or error("BENCH_FORM_TOKEN is not set")
  local pairs_ = {}
  for _, kv in ipairs(lead) do pairs_[#pairs_ + 1] = kv[1] .. "=" .. urlencode(kv[2]) end
  pairs_[#pairs_ + 1] = "consent=on&leave_blank=&form_token=" .. urlencode(token)
  path, headers, body = "/contact", { ["Content-Type"] = "application/x-www-form-urlencoded" }, table.concat(pairs_, "&")
elseif target == "api" then
  local pairs_ = {}
  for _, kv in ipairs(lead) do pairs_[#pairs_ + 1] = string.format("%q:%q", kv[1], kv[2]) end
  path, headers, body = "/api/leads", { ["Content-Type"] = "application/json" }, "{" .. table.concat(pairs_, ",") .. ',"consent":true}'
else
  error("BENCH_TARGET must be form or api, not " .. target)
end

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  math.randomseed(os.time() + (id or 0))
  prefix = string.format("bench-%d-%d-%d-", id or 0, os.time(), math.random(1, 1000000000))
end

-- One enquiry; `client`, when given, is sent as X-Forwarded-For (bench/lua/mixed.lua uses it).
function enquiry(client)
  counter = counter + 1
  local key = prefix .. counter
  headers["X-Forwarded-For"] = client
  if target == "form" then
    return wrk.format("POST", path, headers, body .. "&idempotency_key=" .. key)
  end
  headers["Idempotency-Key"] = key
  return wrk.format("POST", path, headers, body)
end

function request()
  return enquiry(nil)
end
