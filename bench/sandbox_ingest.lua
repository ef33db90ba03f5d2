-- wrk script for bench/sandbox.py: POST the guide's trace payload (5 observations), each
-- request with a fresh trace id. Reads API_KEY and, for paced runs, DELAY_MS (per
-- connection, between requests) from the environment.
local counter = 0
local thread_id = 0
local threads = {}
local api_key = os.getenv("API_KEY") or "sk-test"
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + thread_id * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. api_key
end

local function observations(trace_id, now)
  local parts = {}
  for i = 0, 4 do
    local kind = (i == 0) and "SPAN" or "GENERATION"
    parts[#parts + 1] = string.format(
      '{"id":"%s-obs-%d","trace_id":"%s","type":"%s","name":"observation-%d",' ..
      '"start_time":"%s","end_time":"%s","input":{"step":%d},' ..
      '"output":{"result":"step %d complete"}}',
      trace_id, i, trace_id, kind, i, now, now, i, i)
  end
  return table.concat(parts, ",")
end

function request()
  counter = counter + 1
  local trace_id = string.format("%08x%08x%016x", thread_id, math.random(0, 0x7fffffff), counter)
  local now = os.date("!%Y-%m-%dT%H:%M:%S.000Z")
  local body = string.format(
    '{"id":"%s","name":"load-test-trace-%s","timestamp":"%s",' ..
    '"input":{"query":"What is the weather?"},"output":{"response":"The weather is sunny."},' ..
    '"metadata":{"model":"gpt-4","tokens":{"input":10,"output":20}},"observations":[%s]}',
    trace_id, trace_id, now, observations(trace_id, now))
  return wrk.format(nil, "/api/public/traces", nil, body)
end

function delay()
  return delay_ms
end
