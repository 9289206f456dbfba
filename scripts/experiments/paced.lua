-- paced.lua - wrk script: buy.lua's POST /buy at a fixed offered load.
--
--   PACED_RATE=2000 wrk -t1 -c20 -d5s -s scripts/experiments/paced.lua \
--       http://127.0.0.1:8080/buy
--
-- wrk is a closed-loop generator: each connection sends its next request
-- as soon as the answer arrives, so the load follows the server. Here each
-- connection waits connections * 1000 / PACED_RATE ms between an answer
-- and its next request (wrk's delay() hook), so the wrk process as a whole
-- offers about PACED_RATE requests per second whatever the server does with
-- them. That is close to an open-loop load for shopd because POST /buy never
-- waits for the workers: it answers 202 or 503 at once (SPEC.md section 1),
-- so the round trip (~0.1 ms) is small next to the pause. The pause is in
-- whole milliseconds (wrk's timer), so it is dithered: floor(d + U[0,1))
-- has mean d exactly.
--
-- wrk's timers fire late (by up to a few ms on a busy machine), so the
-- plain pause offers less than asked. Each thread therefore counts what it
-- sent in every whole second of the wall clock (os.time(), the only clock
-- wrk's Lua has) and scales its pause by sent / wanted at each new second,
-- within 0.2x..2x. From the second second on, the offered load is within a
-- few per cent of PACED_RATE; the scripts measure it anyway.
--
-- Everything else (the request bodies, the status counts, the BENCH line
-- that scripts/bench/run.sh and scripts/experiments/run.sh parse) is
-- buy.lua's, loaded from PACED_BASE (default scripts/wrk/buy.lua, relative
-- to the directory wrk runs in).
--
-- Environment: PACED_RATE (requests/s for the whole wrk process, required),
-- PACED_CONNECTIONS (the -c given to wrk, needed to spread the rate; the
-- scripts set it), PACED_THREADS (the -t given to wrk, default 1), plus
-- everything buy.lua reads.

dofile(os.getenv("PACED_BASE") or "scripts/wrk/buy.lua")

local pause_ms = 0   -- per connection, before the correction
local per_s = 0      -- this thread's share of PACED_RATE
local scale = 1.0    -- correction for late timers
local sent = 0       -- requests sent in the current second
local second = nil   -- that second (os.time())
local scale_ready = false -- a whole second has been counted

local base_init = init
function init(args)
    base_init(args)
    local rate = tonumber(os.getenv("PACED_RATE") or "")
    local conns = tonumber(os.getenv("PACED_CONNECTIONS") or "")
    if rate == nil or rate <= 0 or conns == nil or conns <= 0 then
        error("paced.lua: set PACED_RATE and PACED_CONNECTIONS > 0")
    end
    local threads = tonumber(os.getenv("PACED_THREADS") or "1") or 1
    pause_ms = conns * 1000 / rate
    per_s = rate / threads
    math.randomseed(os.time() + (id or 0) * 7919)
end

-- wrk calls delay() once before every request.
function delay()
    local now = os.time()
    if now ~= second then
        -- A whole second just ended (not the first, partial one): correct.
        if second ~= nil and now == second + 1 and scale_ready then
            local ratio = sent / per_s
            scale = math.min(2.0, math.max(0.2, scale * ratio))
        end
        scale_ready = second ~= nil
        second = now
        sent = 0
    end
    sent = sent + 1
    return math.floor(pause_ms * scale + math.random())
end
