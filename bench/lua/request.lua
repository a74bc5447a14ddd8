-- wrk script: the same request every time, described by the environment:
--   BENCH_METHOD (default GET), BENCH_BODY (optional, sent form-encoded), BENCH_COOKIE (optional).
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
wrk.headers["Accept"] = "text/html"
wrk.headers["Sec-Fetch-Site"] = "same-origin"
