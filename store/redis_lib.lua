#!lua name=shopd
--
-- redis_lib.lua - shopd's Redis Functions library (FUNCTION LOAD REPLACE,
-- FCALL; Redis >= 7.0). Compiled into shopd (store/redis_blob.S) and
-- loaded by every instance when it connects, so every instance runs the
-- same atomic steps. Every function takes the key prefix as KEYS[1]
-- (shopd uses "{shopd}", a hash tag, so every key lives in one slot).
--
-- Keys, under the prefix P:
--   P:skus          sorted set of every SKU, scored by insertion order
--   P:p:<sku>       hash: name, price_cents, initial, stock, sold, restocked
--   P:next_id       the last order id given (moved once per accept batch)
--   P:orders        stream of the orders not yet final, one entry per order
--                   (fields id, p (sku), q, c (customer, absent: none), t
--                   (accepted, ns), by); consumer group "workers". An entry
--                   is acknowledged and deleted in the step that makes its
--                   order final, so XLEN is the shop-wide belt.
--   P:o:<id>        hash: product, quantity, customer (absent: none), status
--                   (queued|fulfilled|out_of_stock), accepted_at and
--                   processed_at (ns since the epoch, the instance's clock),
--                   accepted_by, processed_by, worker, entry (stream id)
--   P:counters      hash of shop-wide counters: accepted, rejected_full,
--                   processed, fulfilled, out_of_stock, double_deliveries,
--                   reclaimed, restocked
--   P:idem:<ep>:<k> idempotency key <k> of endpoint <ep> (buy, restock):
--                   "<fingerprint hex>\n<status>\n<order id>\n<body>",
--                   the fingerprint being the canonical request (sent as
--                   is, hex-encoded here so any byte is safe in the
--                   framing),
--                   expiring after the TTL
--
-- Invariants (every function is atomic): stock never goes below zero;
-- stock + sold == initial + restocked per product; an order becomes final
-- at most once, in the same step that changes the stock and acknowledges
-- and deletes its entry; order ids come from one counter, read and moved
-- once per batch inside the atomic accept, so they are unique and grow in
-- acceptance order across every instance.
--
-- Error replies starting with NOSHOP mean the shop is gone from Redis (a
-- restart without persistence): the caller seeds again and retries.

local GROUP = 'workers'

local function now_us()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Seed an empty shop once, and add catalog products the shop lacks.
-- ARGV: n, then n times (sku, name, price_cents, stock).
-- Returns {was_empty (0/1), added sku, ...}.
local function seed(keys, args)
    local p = keys[1]
    local was_empty = redis.call('EXISTS', p .. ':skus') == 0 and 1 or 0
    local out = {was_empty}
    local n = tonumber(args[1])
    for i = 0, n - 1 do
        local sku = args[2 + i * 4]
        local key = p .. ':p:' .. sku
        if redis.call('EXISTS', key) == 0 then
            local stock = args[5 + i * 4]
            redis.call('HSET', key, 'name', args[3 + i * 4],
                       'price_cents', args[4 + i * 4], 'stock', stock,
                       'sold', 0, 'restocked', 0, 'initial', stock)
            redis.call('ZADD', p .. ':skus',
                       redis.call('ZCARD', p .. ':skus'), sku)
            out[#out + 1] = sku
        end
    end
    -- The consumer group, with its stream, exactly once.
    if redis.call('EXISTS', p .. ':orders') == 0 then
        redis.call('XGROUP', 'CREATE', p .. ':orders', GROUP, '$',
                   'MKSTREAM')
    else
        local ok = redis.pcall('XGROUP', 'CREATE', p .. ':orders', GROUP,
                               '0')
        if type(ok) == 'table' and ok.err and
            not string.find(ok.err, 'BUSYGROUP', 1, true) then
            return redis.error_reply(ok.err)
        end
    end
    return out
end

-- The value remembered with an idempotency key: the first answer, with
-- the order id put in for the placeholder.
-- Replace the first `ph` in `body` with `v` (plain text, no patterns).
local function put(body, ph, v)
    local at = string.find(body, ph, 1, true)
    if not at then
        return body
    end
    return string.sub(body, 1, at - 1) .. v .. string.sub(body, at + #ph)
end

local function hex(s)
    return (string.gsub(s, '.', function(c)
        return string.format('%02x', string.byte(c))
    end))
end

local function idem_value(fp, status, id, body)
    return hex(fp) .. '\n' .. status .. '\n' .. id .. '\n' ..
               put(body, '{order_id}', id)
end

-- Accept a batch of orders. ARGV: capacity, instance, ttl, n, then n times
-- (sku, quantity, customer ("" none, else "+" then the name), accepted_ns,
-- endpoint, idempotency key ("" none), fingerprint, answer status, answer
-- body). Returns n pairs: {0, id} accepted; {1, 0} the shop-wide belt is
-- full; {2, value} the key exists (its remembered value).
local function accept(keys, args)
    local p = keys[1]
    local cap = tonumber(args[1])
    local inst = args[2]
    local ttl = tonumber(args[3])
    local n = tonumber(args[4])
    local stream = p .. ':orders'
    local counters = p .. ':counters'
    local depth = redis.call('XLEN', stream)
    -- Ids are given here, in order, and the counter moves once at the end.
    local next_id = p .. ':next_id'
    local last = tonumber(redis.call('GET', next_id) or '0')
    local out = {}
    local accepted, full = 0, 0
    -- Every product first, so that an error leaves nothing half done.
    local known = {}
    for i = 0, n - 1 do
        local sku = args[5 + i * 9]
        if not known[sku] then
            if redis.call('EXISTS', p .. ':p:' .. sku) == 0 then
                return redis.error_reply('NOSHOP no product ' .. sku)
            end
            known[sku] = true
        end
    end
    for i = 0, n - 1 do
        local b = 5 + i * 9
        local sku, qty, cust, t = args[b], args[b + 1], args[b + 2],
                                  args[b + 3]
        local ep, ikey, fp = args[b + 4], args[b + 5], args[b + 6]
        local kkey = nil
        local old = nil
        if ikey ~= '' then
            kkey = p .. ':idem:' .. ep .. ':' .. ikey
            old = redis.call('GET', kkey)
        end
        if old then
            out[#out + 1] = 2
            out[#out + 1] = old
        elseif depth >= cap then
            out[#out + 1] = 1
            out[#out + 1] = 0
            full = full + 1
        else
            local id = last + accepted + 1
            local eid
            if cust ~= '' then
                eid = redis.call('XADD', stream, '*', 'id', id, 'p', sku,
                                 'q', qty, 't', t, 'by', inst, 'c',
                                 string.sub(cust, 2))
            else
                eid = redis.call('XADD', stream, '*', 'id', id, 'p', sku,
                                 'q', qty, 't', t, 'by', inst)
            end
            local f = {'product', sku, 'quantity', qty, 'status', 'queued',
                       'accepted_at', t, 'accepted_by', inst, 'entry', eid}
            if cust ~= '' then
                f[#f + 1] = 'customer'
                f[#f + 1] = string.sub(cust, 2)
            end
            redis.call('HSET', p .. ':o:' .. id, unpack(f))
            if kkey then
                redis.call('SET', kkey, idem_value(fp, args[b + 7], id,
                                                   args[b + 8]), 'EX', ttl)
            end
            depth = depth + 1
            accepted = accepted + 1
            out[#out + 1] = 0
            out[#out + 1] = id
        end
    end
    if accepted > 0 then
        redis.call('SET', next_id, last + accepted)
        redis.call('HINCRBY', counters, 'accepted', accepted)
    end
    if full > 0 then
        redis.call('HINCRBY', counters, 'rejected_full', full)
    end
    return out
end

local STATUS = {queued = 0, fulfilled = 1, out_of_stock = 2}

-- Process a batch of orders: the store decides. ARGV: instance, n, then n
-- times (order id, worker, processed_ns). For an order still queued: take
-- the stock if there is enough, set the final status, acknowledge and
-- delete its stream entry. An order already final is left as it is (a
-- second delivery) and counted. Returns n pairs {status, applied (0/1)};
-- status 0 means there is no such order.
local function process(keys, args)
    local p = keys[1]
    local inst = args[1]
    local n = tonumber(args[2])
    local stream = p .. ':orders'
    local counters = p .. ':counters'
    local out = {}
    local acks = {}
    local ful, oos, dup = 0, 0, 0
    -- Each product's stock is read once and written once per batch.
    local prods = {}
    local touched = {}
    for i = 0, n - 1 do
        local id, worker, t = args[3 + i * 3], args[4 + i * 3],
                              args[5 + i * 3]
        local okey = p .. ':o:' .. id
        local o = redis.call('HMGET', okey, 'status', 'product', 'quantity',
                             'entry')
        if not o[1] then
            out[#out + 1] = 0
            out[#out + 1] = 0
        elseif o[1] ~= 'queued' then
            dup = dup + 1
            out[#out + 1] = STATUS[o[1]] or 0
            out[#out + 1] = 0
        else
            local pr = prods[o[2]]
            if not pr then
                local ps = redis.call('HMGET', p .. ':p:' .. o[2], 'stock',
                                      'sold')
                pr = {stock = tonumber(ps[1] or '0'),
                      sold = tonumber(ps[2] or '0')}
                prods[o[2]] = pr
            end
            local q = tonumber(o[3])
            local status
            if pr.stock >= q then
                if not pr.dirty then
                    pr.dirty = true
                    touched[#touched + 1] = o[2]
                end
                pr.stock = pr.stock - q
                pr.sold = pr.sold + q
                status = 'fulfilled'
                ful = ful + 1
            else
                status = 'out_of_stock'
                oos = oos + 1
            end
            redis.call('HSET', okey, 'status', status, 'processed_at', t,
                       'processed_by', inst, 'worker', worker)
            if o[4] then
                acks[#acks + 1] = o[4]
            end
            out[#out + 1] = STATUS[status]
            out[#out + 1] = 1
        end
    end
    for _, sku in ipairs(touched) do
        local pr = prods[sku]
        redis.call('HSET', p .. ':p:' .. sku, 'stock', pr.stock, 'sold',
                   pr.sold)
    end
    -- The entries of the orders made final here, all at once.
    if #acks > 0 then
        redis.call('XACK', stream, GROUP, unpack(acks))
        redis.call('XDEL', stream, unpack(acks))
    end
    if ful + oos > 0 then
        redis.call('HINCRBY', counters, 'processed', ful + oos)
    end
    if ful > 0 then
        redis.call('HINCRBY', counters, 'fulfilled', ful)
    end
    if oos > 0 then
        redis.call('HINCRBY', counters, 'out_of_stock', oos)
    end
    if dup > 0 then
        redis.call('HINCRBY', counters, 'double_deliveries', dup)
    end
    return out
end

-- Count orders claimed from another consumer. ARGV: n.
local function reclaimed(keys, args)
    return redis.call('HINCRBY', keys[1] .. ':counters', 'reclaimed',
                      tonumber(args[1]))
end

-- Restock. ARGV: sku, quantity, endpoint, idempotency key ("" none),
-- fingerprint, answer status, answer body, ttl. Returns {0, stock, sold,
-- restocked} done, or {2, value} the key exists.
local function restock(keys, args)
    local p = keys[1]
    local sku, qty = args[1], tonumber(args[2])
    local kkey = nil
    if args[4] ~= '' then
        kkey = p .. ':idem:' .. args[3] .. ':' .. args[4]
        local old = redis.call('GET', kkey)
        if old then
            return {2, old}
        end
    end
    local pkey = p .. ':p:' .. sku
    if redis.call('EXISTS', pkey) == 0 then
        return redis.error_reply('NOSHOP no product ' .. sku)
    end
    local stock = redis.call('HINCRBY', pkey, 'stock', qty)
    local rs = redis.call('HINCRBY', pkey, 'restocked', qty)
    local sold = tonumber(redis.call('HGET', pkey, 'sold'))
    redis.call('HINCRBY', p .. ':counters', 'restocked', qty)
    if kkey then
        -- The answer with the numbers of this very restock.
        local body = put(put(put(args[7], '{stock}', stock), '{sold}', sold),
                         '{restocked}', rs)
        redis.call('SET', kkey, idem_value(args[5], args[6], 0, body), 'EX',
                   tonumber(args[8]))
    end
    return {0, stock, sold, rs}
end

-- Every product: {sku, name, price_cents, initial, stock, sold, restocked,
-- ...} in insertion order. Times stay strings: ns do not fit a double.
local function products(keys, args)
    local p = keys[1]
    local out = {}
    for _, sku in ipairs(redis.call('ZRANGE', p .. ':skus', 0, -1)) do
        local h = redis.call('HMGET', p .. ':p:' .. sku, 'name',
                             'price_cents', 'initial', 'stock', 'sold',
                             'restocked')
        out[#out + 1] = sku
        out[#out + 1] = h[1]
        for k = 2, 6 do
            out[#out + 1] = tonumber(h[k] or '0')
        end
    end
    return out
end

-- Shop-wide figures: {accepted, rejected_full, processed, fulfilled,
-- out_of_stock, double_deliveries, reclaimed, restocked, belt, pending,
-- last_id, consumers}.
local COUNTERS = {'accepted', 'rejected_full', 'processed', 'fulfilled',
                  'out_of_stock', 'double_deliveries', 'reclaimed',
                  'restocked'}
local function stats(keys, args)
    local p = keys[1]
    local stream = p .. ':orders'
    local c = redis.call('HMGET', p .. ':counters', unpack(COUNTERS))
    local out = {}
    for i = 1, #COUNTERS do
        out[i] = tonumber(c[i] or '0')
    end
    out[#out + 1] = redis.call('XLEN', stream)
    local pend = 0
    local consumers = 0
    if redis.call('EXISTS', stream) == 1 then
        local x = redis.pcall('XPENDING', stream, GROUP)
        if type(x) == 'table' and not x.err then
            pend = x[1]
        end
        local g = redis.pcall('XINFO', 'CONSUMERS', stream, GROUP)
        if type(g) == 'table' and not g.err then
            consumers = #g
        end
    end
    out[#out + 1] = pend
    out[#out + 1] = tonumber(redis.call('GET', p .. ':next_id') or '0')
    out[#out + 1] = consumers
    return out
end

redis.register_function('shopd_seed', seed)
redis.register_function('shopd_accept', accept)
redis.register_function('shopd_process', process)
redis.register_function('shopd_reclaimed', reclaimed)
redis.register_function('shopd_restock', restock)
redis.register_function{function_name = 'shopd_products',
                        callback = products, flags = {'no-writes'}}
redis.register_function{function_name = 'shopd_stats', callback = stats,
                        flags = {'no-writes'}}
