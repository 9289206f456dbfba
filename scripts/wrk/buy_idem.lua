-- buy_idem.lua - wrk script: every order is sent twice under its own
-- Idempotency-Key, as a client retrying after a lost answer would.
--
--   wrk -t2 -c64 -d10s -s scripts/wrk/buy_idem.lua http://127.0.0.1:8080/buy
--   curl -s localhost:8080/stats    # orders.accepted == keys printed below
--
-- Each request() returns two identical requests pipelined on one
-- connection (same key, same body), so the second reaches shopd only after
-- the first was answered: it must be a replay (202, Idempotent-Replayed:
-- true, the same order_id) and never a second order. Keys are
-- "<start time>-<thread>-<counter>", so no two orders share one.
--
-- done() prints how many keys were sent and how the answers split:
--   fresh     202 without Idempotent-Replayed (an order was created)
--   replayed  202 with Idempotent-Replayed: true
--   conflict  409 (never expected here: the pair is sequential)
-- and one line "IDEM keys=N fresh=F replayed=R ..." for scripts. After the
-- run, /stats orders.accepted must equal `keys` (each key created exactly
-- one order), provided no answer was a 503 (a 503 is not remembered, so
-- its retry may create the order instead; then accepted <= keys).
--
-- Environment: BUY_PRODUCTS, BUY_QUANTITY as for buy.lua.

local DEFAULT_PRODUCTS = "apple,banana,cherry,date,elderberry,fig,grape," ..
    "honeydew,kiwi,lemon,mango,truffle"

local threads = {}
local next_id = 0

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end

local halves = {}
local n, pos, counter = 0, 0, 0
-- Globals, so done() can read them with thread:get().
keys, fresh, replayed, conflict, other = 0, 0, 0, 0, 0
statuses = {}

function init(args)
    local products = {}
    for item in string.gmatch(os.getenv("BUY_PRODUCTS") or DEFAULT_PRODUCTS,
                              "[^,%s]+") do
        table.insert(products, item)
    end
    local qty = tonumber(os.getenv("BUY_QUANTITY") or "1") or 1
    local path = wrk.path
    if path == nil or path == "" or path == "/" then
        path = "/buy"
    end
    local prefix = string.format("%d-%d-", os.time(), id or 0)
    local headers = { ["Content-Type"] = "application/json",
                      ["Idempotency-Key"] = "@KEY@" }
    for _, sku in ipairs(products) do
        local body = string.format('{"product":"%s","quantity":%d}', sku, qty)
        local req = wrk.format("POST", path, headers, body)
        local at = string.find(req, "@KEY@", 1, true)
        table.insert(halves, { string.sub(req, 1, at - 1) .. prefix,
                               string.sub(req, at + 5) })
    end
    n = #halves
    pos = (id or 0) % n
end

function request()
    pos = pos + 1
    if pos > n then
        pos = 1
    end
    counter = counter + 1
    keys = keys + 1
    local h = halves[pos]
    local one = h[1] .. counter .. h[2]
    return one .. one
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if status == 202 then
        if headers["Idempotent-Replayed"] == "true" then
            replayed = replayed + 1
        else
            fresh = fresh + 1
        end
    elseif status == 409 then
        conflict = conflict + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local t = { keys = 0, fresh = 0, replayed = 0, conflict = 0, other = 0 }
    local codes = {}
    for _, th in ipairs(threads) do
        for k in pairs(t) do
            t[k] = t[k] + (th:get(k) or 0)
        end
        for code, count in pairs(th:get("statuses") or {}) do
            codes[code] = (codes[code] or 0) + count
        end
    end
    local line = {}
    for code, count in pairs(codes) do
        table.insert(line, string.format("status_%d=%d", code, count))
    end
    table.sort(line)
    io.write(string.format(
        "keys sent %d: fresh 202 %d, replayed 202 %d, 409 %d, other %d\n",
        t.keys, t.fresh, t.replayed, t.conflict, t.other))
    io.write(string.format(
        "IDEM keys=%d fresh=%d replayed=%d conflict=%d other=%d " ..
        "rps=%.1f %s\n", t.keys, t.fresh, t.replayed, t.conflict, t.other,
        summary.requests / (summary.duration / 1e6), table.concat(line, " ")))
end
