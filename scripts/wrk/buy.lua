-- buy.lua - wrk script: POST /buy with products rotated from a list.
--
--   wrk -t2 -c64 -d10s -s scripts/wrk/buy.lua http://127.0.0.1:8080/buy
--
-- Every request is POST <url path> with the body
--   {"product":"<sku>","quantity":<n>}
-- the SKU rotating over the list (each thread starts at a different one).
-- Responses are counted by HTTP status in every thread; done() adds the
-- threads' counts up and prints the histogram, then one machine-readable
-- line ("BENCH key=value ...") that scripts/bench/run.sh parses: all
-- responses per second (rps) and 2xx responses per second (ok_rps).
--
-- Environment (all optional):
--   BUY_PRODUCTS  comma-separated SKUs (default: the demo catalog's 12)
--   BUY_QUANTITY  quantity per order (default 1)
--   BUY_CUSTOMER  adds "customer":"<value>" to every order
--   BUY_IDEMPOTENCY=1  every request carries a fresh Idempotency-Key
--                 (<start time>-<thread>-<counter>: never repeated), as
--                 make bench's "idem" run does
--
-- wrk runs one Lua state per thread plus one for setup()/done(), and a
-- plain global written in a thread is invisible to done(). So setup() keeps
-- each thread object, the thread counts into its own global table, and
-- done() reads every thread's table back with thread:get().

local DEFAULT_PRODUCTS = "apple,banana,cherry,date,elderberry,fig,grape," ..
    "honeydew,kiwi,lemon,mango,truffle"

local threads = {}   -- main state: every thread, for done()
local next_id = 0    -- main state: thread numbering

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end

-- Per-thread state (each thread's own Lua state).
local requests = {}
local n, pos = 0, 0
local keyed = false      -- BUY_IDEMPOTENCY=1
local halves = {}        -- keyed: each request cut where the key goes
local key_prefix = ""
local counter = 0
statuses = {}        -- global so that done() can thread:get() it

local function split(s)
    local out = {}
    for item in string.gmatch(s, "[^,%s]+") do
        table.insert(out, item)
    end
    return out
end

function init(args)
    local products = split(os.getenv("BUY_PRODUCTS") or DEFAULT_PRODUCTS)
    local qty = tonumber(os.getenv("BUY_QUANTITY") or "1") or 1
    local customer = os.getenv("BUY_CUSTOMER")
    local path = wrk.path
    if path == nil or path == "" or path == "/" then
        path = "/buy"
    end
    keyed = os.getenv("BUY_IDEMPOTENCY") == "1"
    local headers = { ["Content-Type"] = "application/json" }
    if keyed then
        headers["Idempotency-Key"] = "@KEY@"
        key_prefix = string.format("%d-%d-", os.time(), id or 0)
    end
    -- Pre-build every request once: request() then only picks one (and,
    -- keyed, splices a fresh key in: one concatenation per request).
    for _, sku in ipairs(products) do
        local body = string.format('{"product":"%s","quantity":%d', sku, qty)
        if customer ~= nil then
            body = body .. string.format(',"customer":"%s"', customer)
        end
        body = body .. "}"
        local req = wrk.format("POST", path, headers, body)
        table.insert(requests, req)
        if keyed then
            local at = string.find(req, "@KEY@", 1, true)
            table.insert(halves, { string.sub(req, 1, at - 1) .. key_prefix,
                                   string.sub(req, at + 5) })
        end
    end
    n = #requests
    pos = (id or 0) % n
end

function request()
    pos = pos + 1
    if pos > n then
        pos = 1
    end
    if keyed then
        counter = counter + 1
        local h = halves[pos]
        return h[1] .. counter .. h[2]
    end
    return requests[pos]
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        local s = t:get("statuses") or {}
        for code, count in pairs(s) do
            total[code] = (total[code] or 0) + count
        end
    end
    local codes = {}
    for code in pairs(total) do
        table.insert(codes, code)
    end
    table.sort(codes)

    io.write("status histogram:\n")
    local line = {}
    local ok = 0
    for _, code in ipairs(codes) do
        io.write(string.format("  %d  %d\n", code, total[code]))
        table.insert(line, string.format("status_%d=%d", code, total[code]))
        if code >= 200 and code < 300 then
            ok = ok + total[code]
        end
    end
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format(
        "BENCH requests=%d duration_us=%d rps=%.1f ok=%d ok_rps=%.1f " ..
        "p50_us=%d p90_us=%d p99_us=%d max_us=%d err_connect=%d " ..
        "err_read=%d err_write=%d err_timeout=%d err_status=%d %s\n",
        summary.requests, summary.duration, summary.requests / secs,
        ok, ok / secs,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, e.connect, e.read, e.write,
        e.timeout, e.status, table.concat(line, " ")))
end
