#!lua name=shopd
--
-- redis_lib.lua - shopd's Redis Functions library (FUNCTION LOAD REPLACE,
-- FCALL; Redis >= 7.0). Compiled into shopd (store/redis_blob.S) and
-- loaded by every instance when it connects, so every instance runs the
-- same atomic steps. Every function takes the key prefix as KEYS[1]
-- (shopd uses "{shopd}", a hash tag, so every key lives in one slot).
--
-- Keys, under the prefix P:
--   P:counters      hash: the shop's marker and its shop-wide figures:
--                   shop (the epoch: a token written once, when a start
--                   seeds an empty store), last_id (the last order id
--                   given), accepted, rejected_full, processed, fulfilled,
--                   out_of_stock, double_deliveries, reclaimed, restocked
--   P:skus          sorted set of every SKU, scored by insertion order
--                   (the score is the product's number)
--   P:p:<sku>       hash: name, price_cents, initial, restocked
--   P:stock, P:sold hashes: sku -> units on the shelf, units sold (one
--                   hash each, so a batch reads and writes every product's
--                   numbers in one command each)
--   P:belt          stream of the orders, entry id "<order id>-0", one
--                   field o = "<sku>|<quantity>|<accepted ns>|<accepting
--                   instance's number>|<customer>" (customer "" for none,
--                   else "+" and the name: any bytes, last), packed by
--                   shopd; consumer group "workers". Entries are
--                   acknowledged (XACK, many at once) when their order
--                   becomes final, and trimmed (XTRIM MINID ~) below the
--                   older of the oldest order not final and the last
--                   `history` orders: the entry is the record of an
--                   order's accepted fields.
--   P:f:<b>         hash of the final orders with ids b*64 .. b*64+63:
--                   field id, value "<status>|<processed us>|<worker>|
--                   <processing instance's number>"; a bucket is deleted
--                   whole once all its ids are older than the last
--                   `history` orders, and never written again after.
--   P:inst, P:inst_names   instance name -> number, number -> name
--   P:inst_count    the last instance number given
--   P:boot          hash: instance name -> starts under that name (INCR)
--   P:t:<inst>:<lane>  the last commit of one lane of an instance:
--                   "<boot> <seq>\n<outcome (cmsgpack)>", expiring after an
--                   hour: a commit sent again returns this outcome instead
--                   of being applied twice (Kafka's idempotent producer);
--                   an older commit arriving late is refused (STALE).
--   P:idem:<ep>:<k> idempotency key <k> of endpoint <ep> (buy, restock):
--                   "<fingerprint hex>\n<outcome>", the outcome being the
--                   order id (buy) or "<stock> <sold> <restocked>", the
--                   product's numbers right after the restock; expiring
--                   after the TTL. No answer is kept: the server renders it
--
-- Invariants (every function is atomic): stock never goes below zero;
-- stock + sold == initial + restocked per product; an order becomes final
-- at most once (HSETNX of its record, or XACK of its entry once its
-- record's bucket is gone), in the same step that changes the stock; order
-- ids come from one counter moved once per commit, so they are unique and
-- grow in acceptance order across every instance; an order that is not
-- final keeps its entry. Memory stays flat: entries and records of the
-- last `history` orders (plus those not final), lanes per instance, keys
-- until their TTL.
--
-- A shop never comes back silently: every function but shopd_seed checks
-- that P:counters.shop is the epoch the caller loaded, and answers an
-- error starting with NOSHOP otherwise (FLUSHALL, a Redis restarted empty,
-- or a new shop seeded since), before it writes anything. Only a start
-- (shopd_seed) seeds, and only a store without any shop.

local GROUP = 'workers'
local B = 64 -- order ids per record bucket
local TAG_TTL = 3600
local COUNTERS = {'shop', 'last_id', 'accepted', 'rejected_full',
                  'processed', 'fulfilled', 'out_of_stock',
                  'double_deliveries', 'reclaimed', 'restocked'}

local function int(x)
    return string.format('%d', x)
end

local function noshop()
    return redis.error_reply('NOSHOP the shop this instance serves is ' ..
                                 'not in Redis')
end

-- The counters hash as a table (numbers, and the epoch as `shop`).
local function counters(p)
    local c = redis.call('HMGET', p .. ':counters', unpack(COUNTERS))
    local t = {shop = c[1]}
    for i = 2, #COUNTERS do
        t[COUNTERS[i]] = tonumber(c[i] or '0')
    end
    return t
end

-- `cmd` with the values of `head` (at most two), then those of `list`,
-- 1000 at a time (unpack has a limit); nothing when `list` is empty.
local function call_chunks(cmd, head, list)
    local n, nh = #list, #head
    for i = 1, n, 1000 do
        local j = math.min(i + 999, n)
        if nh == 0 then
            redis.call(cmd, unpack(list, i, j))
        elseif nh == 1 then
            redis.call(cmd, head[1], unpack(list, i, j))
        else
            redis.call(cmd, head[1], head[2], unpack(list, i, j))
        end
    end
end

-- HMGET `key` of every field in `list`, 1000 at a time, as one list.
local function hmget_chunks(key, list)
    local n = #list
    if n == 0 then
        return {}
    elseif n <= 1000 then
        return redis.call('HMGET', key, unpack(list))
    end
    local out = {}
    for i = 1, n, 1000 do
        local j = math.min(i + 999, n)
        for _, x in ipairs(redis.call('HMGET', key, unpack(list, i, j))) do
            out[#out + 1] = x
        end
    end
    return out
end

-- Seed an empty store once, and add catalog products the shop lacks.
-- ARGV: epoch (used if the store is empty), instance, n, then n times
-- (sku, name, price_cents, stock). Returns {was_empty (0/1), epoch, boot,
-- instance number, added sku, ...}.
local function seed(keys, args)
    local p = keys[1]
    local inst = args[2]
    local epoch = redis.call('HGET', p .. ':counters', 'shop')
    local was_empty = 0
    if not epoch then
        if redis.call('EXISTS', p .. ':skus', p .. ':belt', p .. ':orders',
                      p .. ':next_id', p .. ':counters') > 0 then
            return redis.error_reply('OLDSHOP the store holds a shop ' ..
                                         'without shopd\'s marker ' ..
                                         '(written by an older shopd, ' ..
                                         'or damaged): not seeding over it')
        end
        epoch = args[1]
        redis.call('HSET', p .. ':counters', 'shop', epoch, 'last_id', 0)
        redis.call('XGROUP', 'CREATE', p .. ':belt', GROUP, '0', 'MKSTREAM')
        was_empty = 1
    end
    local boot = redis.call('HINCRBY', p .. ':boot', inst, 1)
    local no = redis.call('HGET', p .. ':inst', inst)
    if not no then
        no = redis.call('INCR', p .. ':inst_count')
        redis.call('HSET', p .. ':inst', inst, no)
        redis.call('HSET', p .. ':inst_names', no, inst)
    end
    local out = {was_empty, epoch, boot, tonumber(no)}
    local n = tonumber(args[3])
    for i = 0, n - 1 do
        local sku = args[4 + i * 4]
        local key = p .. ':p:' .. sku
        if redis.call('EXISTS', key) == 0 then
            local stock = args[7 + i * 4]
            redis.call('HSET', key, 'name', args[5 + i * 4],
                       'price_cents', args[6 + i * 4], 'restocked', 0,
                       'initial', stock)
            redis.call('HSET', p .. ':stock', sku, stock)
            redis.call('HSET', p .. ':sold', sku, 0)
            redis.call('ZADD', p .. ':skus',
                       redis.call('ZCARD', p .. ':skus'), sku)
            out[#out + 1] = sku
        end
    end
    return out
end

local function hex(s)
    return (string.gsub(s, '.', function(c)
        return string.format('%02x', string.byte(c))
    end))
end

-- The value remembered with an idempotency key: the request's
-- fingerprint and what became of it (no HTTP answer).
local function idem_value(fp, outcome)
    return hex(fp) .. '\n' .. outcome
end

-- The first bucket of records still kept when `last` ids were given.
local function lowest_bucket(last, hist)
    return math.floor((last - hist + 1) / B)
end

-- Which results of a batch are final already: one HMGET per record
-- bucket still kept. Returns {index -> record} for those found, and each
-- result's bucket.
local function finals(p, args, at, n, low)
    local byb, order, bks = {}, {}, {}
    for i = 0, n - 1 do
        local bk = math.floor(tonumber(args[at + i * 4]) / B)
        bks[i] = bk
        if bk >= low then
            if not byb[bk] then
                byb[bk] = {}
                order[#order + 1] = bk
            end
            local l = byb[bk]
            l[#l + 1] = i
        end
    end
    local found = {}
    for _, bk in ipairs(order) do
        local ids = {}
        for k, i in ipairs(byb[bk]) do
            ids[k] = args[at + i * 4]
        end
        local v = redis.call('HMGET', p .. ':f:' .. bk, unpack(ids))
        for k, i in ipairs(byb[bk]) do
            if v[k] then
                found[i] = v[k]
            end
        end
    end
    return found, bks
end

-- The stock and sold of every SKU of a batch: one HMGET each.
local function shelf(p, args, at, n)
    local skus, seen = {}, {}
    for i = 0, n - 1 do
        local sku = args[at + i * 4 + 1]
        if not seen[sku] then
            seen[sku] = true
            skus[#skus + 1] = sku
        end
    end
    local st, so = {}, {}
    if #skus > 0 then
        local a = hmget_chunks(p .. ':stock', skus)
        local b = hmget_chunks(p .. ':sold', skus)
        for k, sku in ipairs(skus) do
            st[sku] = tonumber(a[k] or '0')
            so[sku] = tonumber(b[k] or '0')
        end
    end
    return st, so
end

-- Write the changed stock and sold, and the new records, per bucket.
local function write_back(p, st, so, touched, recs, rorder)
    if #touched > 0 then
        local a, b = {}, {}
        for _, sku in ipairs(touched) do
            a[#a + 1] = sku
            a[#a + 1] = int(st[sku])
            b[#b + 1] = sku
            b[#b + 1] = int(so[sku])
        end
        call_chunks('HSET', {p .. ':stock'}, a)
        call_chunks('HSET', {p .. ':sold'}, b)
    end
    for _, bk in ipairs(rorder) do
        call_chunks('HSET', {p .. ':f:' .. bk}, recs[bk])
    end
end

-- Results: n times (order id, sku, quantity, record tail "|<processed
-- us>|<worker>|<processing instance's number>"). For an order not final
-- yet: take the stock if there is enough and record the final status; a
-- final one (a second delivery) is counted and left. Appends {status,
-- applied (0/1)} per order to `out`.
local function process(p, args, at, n, c, ino, hist, out)
    local belt = p .. ':belt'
    local low = lowest_bucket(c.last_id, hist)
    local found, bks = finals(p, args, at, n, low)
    local st, so = shelf(p, args, at, n)
    local touched, dirty, done = {}, {}, {}
    local recs, rorder, acks = {}, {}, {}
    for i = 0, n - 1 do
        local b = at + i * 4
        local id, sku, q = args[b], args[b + 1], tonumber(args[b + 2])
        local bk = bks[i]
        local status = st[sku] >= q and 1 or 2
        local fresh
        if done[id] then
            fresh = false -- twice in this very batch
        elseif bk >= low then
            fresh = not found[i]
            if fresh then
                if not recs[bk] then
                    recs[bk] = {}
                    rorder[#rorder + 1] = bk
                end
                local l = recs[bk]
                l[#l + 1] = id
                l[#l + 1] = (status == 1 and '1' or '2') .. args[b + 3]
                acks[#acks + 1] = id -- an entry id without "-0" means "-0"
            end
        else
            fresh = redis.call('XACK', belt, GROUP, id) == 1
        end
        if fresh then
            done[id] = status
            if status == 1 then
                if not dirty[sku] then
                    dirty[sku] = true
                    touched[#touched + 1] = sku
                end
                st[sku] = st[sku] - q
                so[sku] = so[sku] + q
                c.fulfilled = c.fulfilled + 1
            else
                c.out_of_stock = c.out_of_stock + 1
            end
            c.processed = c.processed + 1
            out[#out + 1] = status
            out[#out + 1] = 1
        else
            c.double_deliveries = c.double_deliveries + 1
            local old = found[i] and tonumber(string.sub(found[i], 1, 1))
            out[#out + 1] = old or done[id] or 0
            out[#out + 1] = 0
        end
    end
    write_back(p, st, so, touched, recs, rorder)
    call_chunks('XACK', {belt, GROUP}, acks)
    return at + n * 4
end

-- Accepts: n times (the order packed as its entry's field o, keyed (""
-- none, or "1" followed by endpoint, idempotency key, fingerprint)). Appends per order {0, id} accepted, {1, 0} the
-- shop-wide belt is full, {2, value} the key exists (its value).
local function accept(p, args, at, n, c, ino, cap, ttl, hist, out)
    local belt = p .. ':belt'
    local depth = c.accepted - c.processed
    local last = c.last_id
    local k = 0
    local b = at
    for _ = 1, n do
        local kkey, old = nil, nil
        local keyed = args[b + 1] ~= ''
        if keyed then
            kkey = p .. ':idem:' .. args[b + 2] .. ':' .. args[b + 3]
            old = redis.call('GET', kkey)
        end
        if old then
            out[#out + 1] = 2
            out[#out + 1] = old
        elseif depth >= cap then
            out[#out + 1] = 1
            out[#out + 1] = 0
            c.rejected_full = c.rejected_full + 1
        else
            k = k + 1
            local id = int(last + k)
            redis.call('XADD', belt, id .. '-0', 'o', args[b])
            if kkey then
                redis.call('SET', kkey, idem_value(args[b + 4], id), 'EX',
                           ttl)
            end
            depth = depth + 1
            out[#out + 1] = 0
            out[#out + 1] = last + k
        end
        b = b + (keyed and 5 or 2)
    end
    if k > 0 then
        c.last_id = last + k
        c.accepted = c.accepted + k
        -- Record buckets that fell out of the last `hist` orders go.
        local dels = {}
        for bk = math.max(lowest_bucket(last, hist), 0),
                 lowest_bucket(last + k, hist) - 1 do
            dels[#dels + 1] = p .. ':f:' .. bk
        end
        call_chunks('DEL', {}, dels)
    end
    return b
end

-- Restocks: n times (sku, quantity, endpoint, idempotency key ("" none),
-- fingerprint). Appends per restock {0, stock,
-- sold, restocked} done, or {2, value, 0, 0} the key exists.
local function restock(p, args, at, n, c, ttl, out)
    for i = 0, n - 1 do
        local b = at + i * 5
        local sku, qty = args[b], tonumber(args[b + 1])
        local kkey, old = nil, nil
        if args[b + 3] ~= '' then
            kkey = p .. ':idem:' .. args[b + 2] .. ':' .. args[b + 3]
            old = redis.call('GET', kkey)
        end
        local pkey = p .. ':p:' .. sku
        if old then
            out[#out + 1] = 2
            out[#out + 1] = old
            out[#out + 1] = 0
            out[#out + 1] = 0
        else
            local stock = redis.call('HINCRBY', p .. ':stock', sku, qty)
            local rs = redis.call('HINCRBY', pkey, 'restocked', qty)
            local sold = tonumber(redis.call('HGET', p .. ':sold', sku) or
                                      '0')
            c.restocked = c.restocked + qty
            if kkey then
                -- The numbers of this very restock.
                redis.call('SET', kkey,
                           idem_value(args[b + 4], stock .. ' ' .. sold ..
                                          ' ' .. rs), 'EX', ttl)
            end
            out[#out + 1] = 0
            out[#out + 1] = stock
            out[#out + 1] = sold
            out[#out + 1] = rs
        end
    end
end

-- The id of the oldest order not final (pending or not yet delivered), or
-- nil when every order is final.
local function oldest_open(belt)
    local x = redis.call('XPENDING', belt, GROUP)
    if x[1] > 0 then
        return tonumber(string.match(x[2], '^(%d+)'))
    end
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', belt)) do
        for k = 1, #g - 1, 2 do
            if g[k] == 'last-delivered-id' then
                return tonumber(string.match(g[k + 1], '^(%d+)')) + 1
            end
        end
    end
    return nil
end

-- Drop entries older than both the oldest open order and the last `hist`
-- orders (whole stream nodes only: MINID ~).
local function trim(p, c, hist)
    local belt = p .. ':belt'
    local keep = c.last_id - hist + 1
    local open = oldest_open(belt)
    if open and open < keep then
        keep = open
    end
    if keep > 1 then
        redis.call('XTRIM', belt, 'MINID', '~', int(keep) .. '-0')
    end
end

-- One commit, atomic: results, then accepts, then restocks.
-- ARGV: epoch, instance, instance number, lane, boot, seq, capacity, ttl,
-- history, nresults, naccepts, nrestocks, then the three lists (above).
-- Returns {replayed (0/1), then per result 2, per accept 2, per restock 4
-- values}. The same (instance, lane, boot, seq) again returns the first
-- outcome with replayed = 1 and changes nothing.
local function commit(keys, args)
    local p = keys[1]
    local c = counters(p)
    if c.shop ~= args[1] then
        return noshop()
    end
    local inst, ino, lane = args[2], args[3], args[4]
    local boot, seq = tonumber(args[5]), tonumber(args[6])
    local tkey = p .. ':t:' .. inst .. ':' .. lane
    local prev = redis.call('GET', tkey)
    if prev then
        local nl = string.find(prev, '\n', 1, true)
        local pb, ps = string.match(string.sub(prev, 1, nl - 1),
                                    '^(%d+) (%d+)$')
        pb, ps = tonumber(pb), tonumber(ps)
        if pb == boot and ps == seq then
            local out = cmsgpack.unpack(string.sub(prev, nl + 1))
            out[1] = 1
            return out
        end
        if pb > boot or (pb == boot and ps > seq) then
            return redis.error_reply('STALE a newer commit of this lane ' ..
                                         'was applied')
        end
    end
    local cap, ttl, hist = tonumber(args[7]), tonumber(args[8]),
                           tonumber(args[9])
    local nres, nacc, nrst = tonumber(args[10]), tonumber(args[11]),
                             tonumber(args[12])
    local was = {}
    for i = 2, #COUNTERS do
        was[i] = c[COUNTERS[i]]
    end
    local out = {0}
    local at = process(p, args, 13, nres, c, ino, hist, out)
    at = accept(p, args, at, nacc, c, ino, cap, ttl, hist, out)
    restock(p, args, at, nrst, c, ttl, out)
    -- The counters that moved, in one command.
    local h = {}
    for i = 2, #COUNTERS do
        if c[COUNTERS[i]] ~= was[i] then
            h[#h + 1] = COUNTERS[i]
            h[#h + 1] = int(c[COUNTERS[i]])
        end
    end
    if #h > 0 then
        redis.call('HSET', p .. ':counters', unpack(h))
    end
    if math.floor(c.accepted / 256) ~= math.floor(was[3] / 256) or
        math.floor(c.processed / 256) ~= math.floor(was[5] / 256) then
        trim(p, c, hist)
    end
    redis.call('SET', tkey, args[5] .. ' ' .. args[6] .. '\n' ..
                   cmsgpack.pack(out),
               'EX', TAG_TTL)
    return out
end

-- Count orders claimed from another consumer. ARGV: epoch, n.
local function reclaimed(keys, args)
    local p = keys[1]
    if redis.call('HGET', p .. ':counters', 'shop') ~= args[1] then
        return noshop()
    end
    return redis.call('HINCRBY', p .. ':counters', 'reclaimed',
                      tonumber(args[2]))
end

local function name_of(p, no)
    return redis.call('HGET', p .. ':inst_names', no) or ''
end

-- Whether order `id` (its entry exists, its record does not, its bucket is
-- gone) is still open: taken by a worker, or not delivered yet.
local function is_open(belt, id)
    local x = redis.call('XPENDING', belt, GROUP, id .. '-0', id .. '-0', 1)
    if #x > 0 then
        return true
    end
    local open = oldest_open(belt)
    return open ~= nil and tonumber(id) >= open
end

-- One order. ARGV: epoch, id, history. Returns {} when it is not kept,
-- else {status (0 queued, 1 fulfilled, 2 out_of_stock), sku, quantity,
-- customer ("" none, else "+" then the name), accepted_ns, processed_ns
-- ("0" while queued), worker (-1 while queued), accepted_by,
-- processed_by}.
local function order(keys, args)
    local p = keys[1]
    local c = counters(p)
    if c.shop ~= args[1] then
        return noshop()
    end
    local id, hist = args[2], tonumber(args[3])
    local belt = p .. ':belt'
    local e = redis.call('XRANGE', belt, id .. '-0', id .. '-0')
    if #e == 0 then
        return {}
    end
    local sku, q, t, a, cust = string.match(e[1][2][2] or '',
                                            '^([^|]*)|(%d+)|(%d+)|(%d+)|(.*)$')
    local out = {0, sku or '', tonumber(q or '0'), cust or '', t or '0', '0',
                 -1, name_of(p, a or '0'), ''}
    local bucket = math.floor(tonumber(id) / B)
    if bucket >= lowest_bucket(c.last_id, hist) then
        local rec = redis.call('HGET', p .. ':f:' .. bucket, id)
        if rec then
            local st, us, w, pi = string.match(rec,
                                               '^(%d)|(%d+)|(%-?%d+)|(%d+)$')
            out[1] = tonumber(st)
            out[6] = us .. '000'
            out[7] = tonumber(w)
            out[9] = name_of(p, pi)
        end
        return out
    end
    -- Its record's bucket is gone: kept only while it is open.
    if is_open(belt, id) then
        return out
    end
    return {}
end

-- The products: {sku, name, price_cents, initial, stock, sold, restocked,
-- ...} in insertion order. ARGV: epoch, then how many (the first n; 0 or
-- none: every product).
local function products(keys, args)
    local p = keys[1]
    if redis.call('HGET', p .. ':counters', 'shop') ~= args[1] then
        return noshop()
    end
    local out = {}
    local n = tonumber(args[2] or '0') or 0
    local skus = redis.call('ZRANGE', p .. ':skus', 0, n > 0 and n - 1 or -1)
    if #skus == 0 then
        return out
    end
    local st = hmget_chunks(p .. ':stock', skus)
    local so = hmget_chunks(p .. ':sold', skus)
    for k, sku in ipairs(skus) do
        local h = redis.call('HMGET', p .. ':p:' .. sku, 'name',
                             'price_cents', 'initial', 'restocked')
        out[#out + 1] = sku
        out[#out + 1] = h[1]
        out[#out + 1] = tonumber(h[2] or '0')
        out[#out + 1] = tonumber(h[3] or '0')
        out[#out + 1] = tonumber(st[k] or '0')
        out[#out + 1] = tonumber(so[k] or '0')
        out[#out + 1] = tonumber(h[4] or '0')
    end
    return out
end

-- Shop-wide figures: {accepted, rejected_full, processed, fulfilled,
-- out_of_stock, double_deliveries, reclaimed, restocked, belt, pending,
-- last_id, consumers}. ARGV: epoch.
local function stats(keys, args)
    local p = keys[1]
    local belt = p .. ':belt'
    local c = counters(p)
    if c.shop ~= args[1] then
        return noshop()
    end
    local out = {}
    for i = 3, #COUNTERS do
        out[#out + 1] = c[COUNTERS[i]]
    end
    out[#out + 1] = c.accepted - c.processed
    local x = redis.call('XPENDING', belt, GROUP)
    out[#out + 1] = x[1]
    out[#out + 1] = c.last_id
    out[#out + 1] = #redis.call('XINFO', 'CONSUMERS', belt, GROUP)
    return out
end

redis.register_function('shopd_seed', seed)
redis.register_function('shopd_commit', commit)
redis.register_function('shopd_reclaimed', reclaimed)
redis.register_function{function_name = 'shopd_order', callback = order,
                        flags = {'no-writes'}}
redis.register_function{function_name = 'shopd_products',
                        callback = products, flags = {'no-writes'}}
redis.register_function{function_name = 'shopd_stats', callback = stats,
                        flags = {'no-writes'}}
