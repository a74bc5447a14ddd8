-- wrk script of the mixed workload (bench/mixed.py). Of every 100 requests: 90 page reads (/, a
-- case study and /insights in turn), 9 valid enquiries to POST /contact (post_lead.lua's `enquiry`, with
-- BENCH_TARGET=form and BENCH_FORM_TOKEN) and 1 GET /admin with the session cookie in
-- BENCH_COOKIE. Every request claims a client address of its own (X-Forwarded-For; the server
-- trusts 127.0.0.1 as a proxy), so the per-client rate limits run as they would for many
-- visitors and never refuse the load. Per thread it counts what it sent and how the answers went
-- (BENCH_COUNTERS, summed by report.lua).
dofile(os.getenv("BENCH_SCRIPT"):match("(.*/)") .. "post_lead.lua")
local cookie = os.getenv("BENCH_COOKIE") or error("BENCH_COOKIE is not set (a signed-in session)")
local pages = { "/", "/work/shopify-erp-sync", "/insights" }
local sent = 0
reads, posts, admin, accepted, signed_out, failed = 0, 0, 0, 0, 0, 0
BENCH_COUNTERS = { "reads", "posts", "admin", "accepted", "signed_out", "failed" }

-- 2^24 addresses a thread, the thread in the first octet: no address repeats within a run.
local function client()
  return string.format("%d.%d.%d.%d", 10 + (id or 0), math.floor(sent / 65536) % 256,
    math.floor(sent / 256) % 256, sent % 256)
end

function request()
  sent = sent + 1
  local slot = sent % 100
  if slot < 9 then
    posts = posts + 1
    return enquiry(client())
  elseif slot == 9 then
    admin = admin + 1
    return wrk.format("GET", "/admin", { ["Cookie"] = cookie, ["Accept"] = "text/html", ["X-Forwarded-For"] = client() })
  end
  reads = reads + 1
  return wrk.format("GET", pages[slot % 3 + 1], { ["Accept"] = "text/html", ["X-Forwarded-For"] = client() })
end

-- Pages and the dashboard answer 200; an accepted enquiry 303 to its thank-you page; a session
-- the server no longer knows, 303 to the sign-in page.
function response(status, headers, body)
  if status == 303 then
    local location = headers["Location"] or headers["location"] or ""
    if location:find("/admin/login", 1, true) then signed_out = signed_out + 1 else accepted = accepted + 1 end
  elseif status ~= 200 then
    failed = failed + 1
  end
end
