-- One benchmark scenario for wrk: `wrk ... -s bench/wrk/request.lua -- CONFIG THREADS`.
--
-- CONFIG is a Lua file returning {method=, path=, headers={...}, body=, ok={[200]=true},
-- proofs=FILE (optional: one DPoP proof per line, each sent once, as the DPoP header),
-- refresh=FILE (optional: refresh tokens, one per line; "{RT}" in the body is replaced by one,
-- and the refresh_token of each 200 answer goes back into the pool: rotation, never a reuse),
-- refresh_out=FILE (where done() writes the pools that are left, for the next run)}.
-- Each thread takes every THREADS-th line of the files, so no two threads share one.
-- done() prints one JSON line: requests, duration, latency percentiles, errors, and the number
-- of answers whose status was not in `ok` (a 400 is the expected answer of a pending poll).

local threads = {}
local count = 0

function setup(thread)
  count = count + 1
  thread:set("id", count)
  table.insert(threads, thread)
end

local function share(file, id, n)
  local out, i = {}, 0
  for line in io.lines(file) do
    if i % n == id - 1 then out[#out + 1] = line end
    i = i + 1
  end
  return out
end

function init(args)
  cfg = dofile(args[1])
  local n = tonumber(args[2])
  bad = 0
  missing = 0
  if cfg.proofs then proofs = share(cfg.proofs, id, n); next_proof = 0 end
  if cfg.refresh then pool = share(cfg.refresh, id, n) end
  refresh_out = cfg.refresh_out  -- a string: done() reads it (wrk copies flat values only)
end

function request()
  local headers = {}
  for k, v in pairs(cfg.headers) do headers[k] = v end
  local body = cfg.body
  if proofs then
    next_proof = next_proof + 1
    local p = proofs[next_proof]
    if p then headers["DPoP"] = p else missing = missing + 1 end
  end
  if pool then
    local rt = table.remove(pool, 1)
    if not rt then missing = missing + 1; rt = "exhausted" end
    body = string.gsub(body, "{RT}", rt)
  end
  return wrk.format(cfg.method, cfg.path, headers, body)
end

function response(status, headers, body)
  if not cfg.ok[status] then
    bad = bad + 1
    if bad <= 2 then io.stderr:write(string.format("unexpected %d: %s\n", status, body:sub(1, 300))) end
  end
  if pool and status == 200 then
    local rt = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if rt then table.insert(pool, rt) end
  end
end

function done(summary, latency, requests)
  local bad_total, missing_total = 0, 0
  local out = nil
  for _, t in ipairs(threads) do
    bad_total = bad_total + (t:get("bad") or 0)
    missing_total = missing_total + (t:get("missing") or 0)
    local path = t:get("refresh_out")
    if path then
      out = out or io.open(path, "w")
      for _, rt in ipairs(t:get("pool") or {}) do out:write(rt, "\n") end
    end
  end
  if out then out:close() end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"bad_status": %d, "missing_input": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, bad_total, missing_total, e.connect, e.read, e.write, e.timeout))
end
