-- mixed.lua - wrk script: mostly POST /buy, some GET /stats and
-- GET /orders/{id}, as a shop with a dashboard and order tracking sees it.
--
--   wrk -t2 -c64 -d10s -s scripts/wrk/mixed.lua http://127.0.0.1:8080
--
-- Out of every 100 requests MIXED_STATS_PCT (default 5) are GET /stats,
-- MIXED_ORDERS_PCT (default 10) are GET /orders/{id} of an order this thread
-- recently got a 202 for (read from the Location header), the rest are
-- POST /buy rotating over the products. wrk does not say which request a
-- response answers, so responses are classified by their content (202 with
-- a Location is a buy; a body with "uptime_s" is /stats; one with
-- "accepted_at" or the error "unknown_order" is /orders) and counted as
-- "<route> <status>"; done() sums the threads and prints the histogram and
-- a "BENCH key=value ..." line.
--
-- Environment (optional): BUY_PRODUCTS, BUY_QUANTITY as in buy.lua,
-- MIXED_STATS_PCT, MIXED_ORDERS_PCT.

local DEFAULT_PRODUCTS = "apple,banana,cherry,date,elderberry,fig,grape," ..
    "honeydew,kiwi,lemon,mango,truffle"

local threads = {}
local next_id = 0

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end

-- Per-thread state.
local buys = {}
local nbuys, pos = 0, 0
local stats_req
local stats_pct, orders_pct = 5, 10
local max_order = 0
counts = {}          -- global: "<route> <status>" -> count, read by done()

function init(args)
    local list = os.getenv("BUY_PRODUCTS") or DEFAULT_PRODUCTS
    local qty = tonumber(os.getenv("BUY_QUANTITY") or "1") or 1
    stats_pct = tonumber(os.getenv("MIXED_STATS_PCT") or "5") or 5
    orders_pct = tonumber(os.getenv("MIXED_ORDERS_PCT") or "10") or 10
    local headers = { ["Content-Type"] = "application/json" }
    for sku in string.gmatch(list, "[^,%s]+") do
        local body = string.format('{"product":"%s","quantity":%d}', sku, qty)
        table.insert(buys, wrk.format("POST", "/buy", headers, body))
    end
    nbuys = #buys
    pos = (id or 0) % nbuys
    stats_req = wrk.format("GET", "/stats")
    math.randomseed(os.time() + (id or 0) * 7919)
end

function request()
    local r = math.random(100)
    if r <= stats_pct then
        return stats_req
    end
    if r <= stats_pct + orders_pct and max_order > 0 then
        local lo = math.max(1, max_order - 1000)
        return wrk.format("GET", "/orders/" .. math.random(lo, max_order))
    end
    pos = pos + 1
    if pos > nbuys then
        pos = 1
    end
    return buys[pos]
end

local function classify(status, headers, body)
    local loc = headers["Location"] or headers["location"]
    if loc ~= nil then
        local n = tonumber(string.match(loc, "/orders/(%d+)"))
        if n ~= nil and n > max_order then
            max_order = n
        end
        return "buy"
    end
    if body == nil then
        return "other"
    end
    if string.find(body, '"uptime_s"', 1, true) then
        return "stats"
    end
    if string.find(body, '"accepted_at"', 1, true) or
        string.find(body, '"unknown_order"', 1, true) then
        return "orders"
    end
    if string.find(body, '"error"', 1, true) then
        return "buy" -- queue_full, invalid_*, unknown_product, ...
    end
    return "other"
end

function response(status, headers, body)
    local key = classify(status, headers, body) .. " " .. status
    counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        for key, count in pairs(t:get("counts") or {}) do
            total[key] = (total[key] or 0) + count
        end
    end
    local keys = {}
    for key in pairs(total) do
        table.insert(keys, key)
    end
    table.sort(keys)
    io.write("responses by route and status:\n")
    local line = {}
    for _, key in ipairs(keys) do
        io.write(string.format("  %-12s %d\n", key, total[key]))
        table.insert(line, string.gsub(key, " ", "_") .. "=" .. total[key])
    end
    local secs = summary.duration / 1e6
    io.write(string.format(
        "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d " ..
        "max_us=%d %s\n",
        summary.requests, summary.duration, summary.requests / secs,
        latency:percentile(50), latency:percentile(99), latency.max,
        table.concat(line, " ")))
end
