// End-to-end test of the live dashboard (GET /, /events) in a real browser:
// headless Debian chromium driven by playwright-core, against real shopd
// processes (one fresh server per test, stopped by PID afterwards).
//
// Run through tests/ui/run.sh (`make test-ui`), which installs what is missing
// and builds ./shopd. Environment:
//   SHOPD_BIN      server binary (default: <repo>/shopd)
//   UI_OUT         screenshot directory (default: <repo>/build/ui)
//   CHROMIUM_BIN   browser (default: /usr/bin/chromium)
//   UI_HEADED=1    show the browser (needs a display)
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const SHOPD = process.env.SHOPD_BIN || path.join(ROOT, 'shopd');
const OUT = process.env.UI_OUT || path.join(ROOT, 'build', 'ui');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// Page-condition waits; generous for a loaded 2-core box, never fixed sleeps.
const LIVE_MS = 5000;   // SSE connected and the first snapshot painted
const WAIT_MS = 30000;  // anything that needs orders to flow (1000 from a busy browser)
const TEST_MS = 90000;  // one whole test

// Chromium logs every non-2xx fetch as a console error; the belt test sends
// more orders than the belt holds, so 503 queue_full answers are expected.
const CONSOLE_503 =
  /^Failed to load resource: the server responded with a status of 503\b/;

mkdirSync(OUT, { recursive: true });
const tmp = mkdtempSync(path.join(tmpdir(), 'shopd-ui-'));

// ---- shopd processes --------------------------------------------------------

const servers = new Set();

/* Start shopd on a free loopback port; resolve once it says where it listens. */
function startShopd(args = [], env = {}) {
  return new Promise((resolve, reject) => {
    const argv = ['--bind', '127.0.0.1', '--port', '0', ...args];
    const child = spawn(SHOPD, argv, {
      stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env },
    });
    const srv = { child, log: '', port: 0, exited: null };
    servers.add(srv);
    const timer = setTimeout(() => {
      reject(new Error(`shopd did not report its port within 10 s:\n${srv.log}`));
    }, 10000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      srv.log += chunk;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(srv.log);
      if (m && !srv.port) {
        srv.port = Number(m[1]);
        srv.url = `http://127.0.0.1:${srv.port}`;
        clearTimeout(timer);
        resolve(srv);
      }
    });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code, sig) => {
      srv.exited = { code, sig };
      if (!srv.port) {
        clearTimeout(timer);
        reject(new Error(`shopd ${argv.join(' ')} exited (${code ?? sig}):\n${srv.log}`));
      }
    });
  });
}

/* SIGTERM by PID, wait for the drain; SIGKILL if it hangs. */
async function stopShopd(srv) {
  servers.delete(srv);
  if (srv.exited) return srv.exited;
  const done = new Promise((r) => srv.child.once('exit', (code, sig) => r({ code, sig })));
  process.kill(srv.child.pid, 'SIGTERM');
  let t;
  const killer = new Promise((r) => {
    t = setTimeout(() => {
      if (!srv.exited) process.kill(srv.child.pid, 'SIGKILL');
      r();
    }, 10000);
  });
  await Promise.race([done, killer]);
  clearTimeout(t);
  return done;
}

process.on('exit', () => {
  for (const s of servers) if (!s.exited) try { process.kill(s.child.pid, 'SIGKILL'); } catch { /* gone */ }
  rmSync(tmp, { recursive: true, force: true });
});

async function stats(srv) {
  const r = await fetch(`${srv.url}/stats`, { cache: 'no-store' });
  assert.equal(r.status, 200, '/stats status');
  return r.json();
}

// ---- browser ----------------------------------------------------------------

let browser;
let current = null; // { srv, ctx } of the running test, cleaned in afterEach

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: !process.env.UI_HEADED,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
      .filter((a) => a !== '--headless' || !process.env.UI_HEADED),
  });
});

after(async () => {
  if (browser) await browser.close();
});

afterEach(async () => {
  if (!current) return;
  const { srv, ctx } = current;
  current = null;
  if (ctx) await ctx.close().catch(() => {});
  if (srv) {
    const ex = await stopShopd(srv);
    // A clean SIGTERM drain exits 0; anything else is worth a failure.
    assert.equal(ex.code, 0, `shopd exit ${ex.code ?? ex.sig}:\n${srv.log}`);
  }
});

const diag = new WeakMap(); // page -> { srv, errors }, for failure messages

/* A fresh shopd and a page on its dashboard, with console/page errors recorded. */
async function open(args, viewport = { width: 1280, height: 800 }, env = {}) {
  const srv = await startShopd(args, env);
  current = { srv, ctx: null };
  const ctx = await browser.newContext({ viewport });
  current.ctx = ctx;
  const page = await ctx.newPage();
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) =>
    errors.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  diag.set(page, { srv, errors });
  const resp = await page.goto(srv.url + '/', { waitUntil: 'load' });
  assert.equal(resp.status(), 200, 'GET / status');
  assert.match(resp.headers()['content-type'] || '', /^text\/html/, 'GET / content-type');
  await waitFor(page, '#conn', /^live \(SSE\)$/, LIVE_MS);
  return { srv, page, errors };
}

/*
 * Wait (polling the page) until the trimmed textContent of sel matches the
 * regular expression re, or, with a number, until the number the page prints
 * there ("1,000" reads as 1000) compares to it: cmp is one of = >= > <=.
 */
async function waitFor(page, sel, cond, timeout = WAIT_MS) {
  const spec = cond instanceof RegExp
    ? { re: cond.source, flags: cond.flags }
    : { cmp: cond[0], n: cond[1] };
  try {
    await page.waitForFunction(([s, c]) => {
      const e = document.querySelector(s);
      if (!e) return false;
      const t = e.textContent.trim();
      if (c.re !== undefined) return new RegExp(c.re, c.flags).test(t);
      if (!/^[\d,]+$/.test(t)) return false;
      const v = Number(t.replaceAll(',', ''));
      return c.cmp === '=' ? v === c.n : c.cmp === '>=' ? v >= c.n
        : c.cmp === '>' ? v > c.n : v <= c.n;
    }, [sel, spec], { timeout, polling: 50 });
  } catch (e) {
    const now = await page.locator(sel).first().textContent().catch(() => '(missing)');
    const want = cond instanceof RegExp ? String(cond) : cond.join(' ');
    const d = diag.get(page);
    const errs = d ? d.errors.slice(0, 8).join('\n  ') : '';
    const log = d ? d.srv.log.trimEnd().split('\n').slice(-6).join('\n  ') : '';
    throw new Error(`timed out after ${timeout} ms waiting for ${sel} ${want}; it reads "${now}"` +
      (errs ? `\nbrowser errors so far:\n  ${errs}` : '') + `\nshopd log (tail):\n  ${log}`);
  }
}

/* Numbers as the page prints them (en-US grouping, "–" for none). */
const int = (t) => (/^[\d,]+$/.test(t) ? Number(t.replaceAll(',', '')) : NaN);
async function num(page, sel) {
  return int((await page.locator(sel).textContent()).trim());
}

function noErrors(errors, allow = null) {
  const left = allow ? errors.filter((e) => !allow.test(e.replace(/^console: /, ''))) : errors;
  assert.deepEqual(left, [], 'console/page errors');
}

const send = (page, n) => page.getByRole('button', { name: `send ${n}`, exact: true }).click();

// ---- tests ------------------------------------------------------------------

test('page loads live over SSE with no console errors', { timeout: TEST_MS }, async () => {
  const { page, errors } = await open([]);
  assert.match(await page.title(), /shopd/);
  const h1 = page.getByRole('heading', { level: 1 });
  assert.match(await h1.textContent(), /shopd/);
  assert.ok(await h1.isVisible(), 'heading visible');
  // The first snapshot is painted: belt, counters, workers, inventory.
  await waitFor(page, '#belt-text', /^depth 0 of 1,024 slots/, LIVE_MS);
  assert.equal(await num(page, '#c-acc'), 0, '#c-acc');
  assert.match(await page.locator('#w-sum').textContent(), /^0 of \d+ busy$/);
  assert.equal(await page.locator('#inv li').count(), 12, 'one inventory bar per demo product');
  assert.ok(await page.locator('#unsafe').isHidden(), '#unsafe hidden by default');
  assert.ok(await page.locator('#drain').isHidden(), '#drain hidden');
  assert.equal(await page.locator('#over').textContent(), '0', '#over');
  noErrors(errors);
});

test('"send 100" moves the live counters', { timeout: TEST_MS }, async () => {
  const { srv, page, errors } = await open([]);
  await waitFor(page, '#c-acc', ['=', 0], LIVE_MS);
  await send(page, 100);
  await waitFor(page, '#announce', /^Sent 100 of 100: 100 accepted \(202\), 0 rejected \(503\)\.$/);
  // The send tallies are painted on the next animation frame.
  await waitFor(page, '#s-ok', ['=', 100]);
  assert.equal(await num(page, '#s-503'), 0, '#s-503');
  await waitFor(page, '#c-acc', ['>=', 100]);
  const st = await stats(srv);
  assert.equal(st.orders.accepted, 100, '/stats orders.accepted');
  assert.equal(await num(page, '#c-acc'), st.orders.accepted, '#c-acc equals /stats');
  await waitFor(page, '#c-proc', ['=', 100]);
  noErrors(errors);
});

test('the belt fills under --work-ms 20 and drains back to 0', { timeout: TEST_MS }, async () => {
  // 2 workers x 20 ms = 100 orders/s; the browser sends faster, so the
  // 32-slot belt fills, overflows into 503 queue_full, and then drains.
  // (A small belt keeps this certain on a slow, loaded machine too.)
  const { srv, page, errors } = await open(['--work-ms', '20', '--workers', '2',
    '--queue-capacity', '32']);
  await waitFor(page, '#belt-text', /^depth 0 of 32 slots/, LIVE_MS);
  await send(page, 1000);
  // A belt at least three quarters full and busy workers, seen live.
  // Text, cells and workers are read in one go: a 32-slot belt drains in
  // 0.3 s, so on a busy box it can be empty again a moment later.
  const beltFull = () => page.waitForFunction(() => {
    const m = /^depth ([\d,]+) of 32 slots/.exec(document.getElementById('belt-text').textContent);
    const depth = m ? Number(m[1]) : -1;
    const on = document.querySelectorAll('#belt i.on').length;
    const busy = /^([12]) of 2 busy$/.exec(document.getElementById('w-sum').textContent);
    return depth >= 24 && busy ? { depth, on, busy: Number(busy[1]) } : false;
  }, null, { timeout: WAIT_MS, polling: 50 }).then((h) => h.jsonValue(), async () => {
    throw new Error(`belt never 3/4 full with busy workers: "${
      await page.locator('#belt-text').textContent()}", ${await page.locator('#w-sum').textContent()}`);
  });
  const seen = await beltFull();
  assert.ok(seen.depth > 0, 'belt depth > 0');
  assert.equal(seen.on, seen.depth, `one filled cell per waiting order (${seen.on} cells, depth ${seen.depth})`);
  // The screenshot should show the belt full: retake it (a few times at
  // most) if the belt had drained by the time it was captured.
  for (let i = 0; i < 4; i++) {
    if (i) await beltFull();
    const shot = await page.screenshot();
    const after = await page.locator('#belt-text').textContent();
    if (/^depth (1[6-9]|2\d|3[0-2]) of/.test(after) || i === 3) {
      writeFileSync(path.join(OUT, 'dashboard-1280.png'), shot);
      break;
    }
    if (/^Sent /.test(await page.locator('#announce').textContent())) {
      writeFileSync(path.join(OUT, 'dashboard-1280.png'), shot); // burst over: keep what we have
      break;
    }
  }

  await waitFor(page, '#announce', /^Sent 1,000 of 1,000: [\d,]+ accepted \(202\), [\d,]+ rejected \(503\)\.$/);
  const m = /: ([\d,]+) accepted \(202\), ([\d,]+) rejected/.exec(await page.locator('#announce').textContent());
  const [ok, full] = [int(m[1]), int(m[2])];
  await waitFor(page, '#s-ok', ['=', ok]);
  await waitFor(page, '#s-503', ['=', full]);
  assert.equal(ok + full, 1000, `202 (${ok}) + 503 (${full}) = 1000`);
  assert.ok(full > 0, 'some orders were turned away with 503');
  await waitFor(page, '#rej', ['>', 0]);
  assert.ok(await page.locator('#rejlog li').count() > 0, 'rejections logged');

  // Drains: depth back to 0, workers idle, every accepted order processed.
  await waitFor(page, '#belt-text', /^depth 0 of 32 slots/);
  await waitFor(page, '#w-sum', /^0 of 2 busy$/);
  await waitFor(page, '#c-proc', ['=', ok]);
  const st = await stats(srv);
  assert.equal(st.queue.depth, 0);
  assert.equal(st.orders.accepted, ok, '/stats accepted = 202s seen by the page');
  assert.equal(st.orders.processed, ok, '/stats processed');
  assert.equal(st.orders.rejected_full, full, '/stats rejected_full = 503s seen by the page');
  assert.equal(st.queue.high_water, 32, 'high-water mark: the belt was full');
  assert.equal(await num(page, '#c-rfull'), full, '#c-rfull');
  await page.screenshot({ path: path.join(OUT, 'dashboard-1280-drained.png') });
  // Chromium logs each 503 as "Failed to load resource"; nothing else allowed.
  noErrors(errors, CONSOLE_503);
});

const gemCatalog = path.join(tmp, 'gem.json');
writeFileSync(gemCatalog, JSON.stringify(
  { products: [{ sku: 'gem', name: 'Gem', price_cents: 100, stock: 300 }] }));

test('--unsafe-inventory oversells, in red', { timeout: TEST_MS }, async () => {
  const { srv, page, errors } = await open(['--unsafe-inventory', '--workers', '4',
    '--catalog', gemCatalog]);
  await waitFor(page, '#over', /^0$/, LIVE_MS);
  assert.ok(await page.locator('#unsafe').isVisible(), 'red warning visible');
  assert.match(await page.locator('#unsafe').textContent(), /Unsafe inventory mode is ON/);
  await send(page, 1000);
  await waitFor(page, '#announce', /^Sent 1,000 of 1,000: 1,000 accepted \(202\), 0 rejected/);
  await waitFor(page, '#c-proc', ['=', 1000]);
  const st = await stats(srv);
  assert.equal(st.unsafe_inventory, true);
  assert.equal(st.orders.processed, 1000);
  const gem = st.inventory.gem;
  assert.ok(st.oversold > 0, `/stats oversold ${st.oversold} > 0 (stock ${gem.stock}, sold ${gem.sold})`);
  assert.equal(gem.sold - 300, st.oversold, 'oversold = sold beyond the stock that existed');
  await waitFor(page, '#over', ['=', st.oversold]);
  assert.equal(await page.locator('#over').getAttribute('class'), 'bad', '#over in red');
  assert.equal(await num(page, '#unsafe-over'), st.oversold, 'oversold in the banner');
  assert.ok(await page.locator('#unsafe').isVisible(), 'red warning still visible');
  assert.match(await page.locator('#inv li').first().textContent(), /✗ stock \+ sold = .*oversold/);
  await page.screenshot({ path: path.join(OUT, 'dashboard-unsafe.png') });
  noErrors(errors);
});

test('default mode (the lock) never oversells under the same load', { timeout: TEST_MS }, async () => {
  const { srv, page, errors } = await open(['--workers', '4', '--catalog', gemCatalog]);
  assert.ok(await page.locator('#unsafe').isHidden(), '#unsafe hidden');
  await send(page, 1000);
  await waitFor(page, '#announce', /^Sent 1,000 of 1,000: 1,000 accepted \(202\), 0 rejected/);
  await waitFor(page, '#c-proc', ['=', 1000]);
  const st = await stats(srv);
  assert.equal(st.unsafe_inventory, false);
  assert.equal(st.oversold, 0, '/stats oversold');
  assert.equal(st.inventory.gem.stock, 0);
  assert.equal(st.inventory.gem.sold, 300, 'exactly the stock sold');
  assert.equal(st.orders.out_of_stock, 700);
  await waitFor(page, '#inv li', /stock 0 · sold 300/);
  assert.equal(await page.locator('#over').textContent(), '0', '#over 0');
  assert.equal(await page.locator('#over').getAttribute('class'), 'good', '#over green');
  assert.match(await page.locator('#inv li').first().textContent(), /✓ stock \+ sold = 300 = initial/);
  assert.ok(await page.locator('#unsafe').isHidden(), '#unsafe still hidden');
  noErrors(errors);
});

test('a restock shows: restocked per product, and the invariant counts it', { timeout: TEST_MS }, async () => {
  const token = 'ui-admin-token-0123456789';
  const { srv, page, errors } = await open(['--workers', '2', '--catalog', gemCatalog],
    undefined, { SHOPD_ADMIN_TOKEN: token });
  await send(page, 1000);
  await waitFor(page, '#c-proc', ['=', 1000]);
  const r = await fetch(`${srv.url}/products/gem/restock`, {
    method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: '{"quantity":50}',
  });
  assert.equal(r.status, 200, 'restock status');
  assert.equal((await r.json()).restocked, 50);
  await waitFor(page, '#inv li', /stock 50 · sold 300 · restocked 50/);
  assert.match(await page.locator('#inv li').first().textContent(),
    /✓ stock \+ sold = 350 = initial \+ restocked/);
  const html = await page.content();
  assert.ok(!html.includes(token), 'the token is not on the page');
  noErrors(errors);
});

test('phone width 375x800: no horizontal overflow', { timeout: TEST_MS }, async () => {
  const { page, errors } = await open([], { width: 375, height: 800 });
  await send(page, 100);
  await waitFor(page, '#announce', /^Sent 100 of 100: /);
  await waitFor(page, '#c-proc', ['=', 100]);
  const w = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    body: document.body.scrollWidth,
    inner: window.innerWidth,
  }));
  assert.equal(w.inner, 375);
  assert.ok(w.doc <= 375, `documentElement.scrollWidth ${w.doc} <= 375`);
  assert.ok(w.body <= 375, `body.scrollWidth ${w.body} <= 375`);
  // Every send button fits on screen and is big enough to tap.
  for (const n of [1, 100, 1000]) {
    const box = await page.getByRole('button', { name: `send ${n}`, exact: true }).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375 && box.height >= 44, `send ${n} button box`);
  }
  await page.screenshot({ path: path.join(OUT, 'dashboard-375.png'), fullPage: true });
  noErrors(errors);
});

test('server gone: a readable red pill, stale panels dimmed, live state cleared; back over SSE after a restart with fresh counts', { timeout: TEST_MS }, async () => {
  const { srv, page } = await open([]);
  await send(page, 100);
  await waitFor(page, '#s-ok', ['=', 100]);
  await waitFor(page, '#c-proc', ['=', 100]);
  const port = srv.port;

  // The server goes away (a clean stop: the afterEach has nothing to stop).
  const ex = await stopShopd(srv);
  assert.equal(ex.code, 0, 'first shopd drained');
  current.srv = null;
  await waitFor(page, '#conn', /^server unreachable/, 10000);
  const look = await page.evaluate(() => {
    const c = getComputedStyle(document.getElementById('conn'));
    return {
      color: c.color, background: c.backgroundColor,
      stale: document.body.classList.contains('stale'),
      opacity: Number(getComputedStyle(document.querySelector('main')).opacity),
      uptime: document.getElementById('uptime').textContent,
      drainHidden: document.getElementById('drain').hidden,
      busy: document.querySelectorAll('#workers li.busy').length,
    };
  });
  assert.notEqual(look.color, look.background, 'pill text readable on its background');
  assert.equal(look.color, 'rgb(255, 255, 255)', 'pill text is white');
  assert.ok(look.stale && look.opacity < 1, `panels dimmed (opacity ${look.opacity})`);
  assert.equal(look.uptime, 'no server', 'uptime cleared');
  assert.ok(look.drainHidden, 'no draining pill while the server is gone');
  assert.equal(look.busy, 0, 'no worker shown busy');
  await page.screenshot({ path: path.join(OUT, 'dashboard-offline.png'), fullPage: true });

  // A new server on the same port: live over SSE within a few seconds,
  // the page's own send counts reset, the panels no longer stale.
  const again = await startShopd(['--port', String(port)]);
  current.srv = again;
  await waitFor(page, '#conn', /^live \(SSE\)$/, 5000);
  await waitFor(page, '#s-ok', ['=', 0], 2000);
  await waitFor(page, '#c-acc', ['=', 0], 2000);
  assert.ok(!(await page.evaluate(() => document.body.classList.contains('stale'))), 'not stale');
  await waitFor(page, '#announce', /restarted/, 2000);
});

// ---- the shop floor (SPEC §11) ---------------------------------------------

const FLOOR_TOKEN = 'ui-floor-token-0123456789abc';

async function adminFloor(srv) {
  const r = await fetch(`${srv.url}/admin/floor`, {
    headers: { Authorization: `Bearer ${FLOOR_TOKEN}` }, cache: 'no-store',
  });
  assert.equal(r.status, 200, 'GET /admin/floor');
  return r.json();
}

async function unlock(page, token) {
  await page.locator('#f-token').fill(token);
  await page.locator('#f-unlock').click();
}

test('floor controls: a wrong token keeps them locked; the right one drives elves, pause, faults', { timeout: TEST_MS }, async () => {
  const { srv, page, errors } = await open(['--workers', '2'], undefined,
    { SHOPD_ADMIN_TOKEN: FLOOR_TOKEN });
  await waitFor(page, '#f-workers', ['=', 2], LIVE_MS);
  assert.ok(await page.locator('#f-more').isDisabled(), '+ locked before a token');

  await unlock(page, 'not-the-token-at-all');
  await waitFor(page, '#f-msg', /^Wrong token: the controls stay locked\.$/, LIVE_MS);
  assert.ok(await page.locator('#f-more').isDisabled(), '+ still locked after a wrong token');
  assert.equal((await adminFloor(srv)).workers, 2);

  await unlock(page, FLOOR_TOKEN);
  await waitFor(page, '#f-msg', /^Controls unlocked/, LIVE_MS);
  assert.ok(await page.locator('#f-more').isEnabled(), '+ unlocked');
  await page.locator('#f-more').click();
  await waitFor(page, '#f-workers', ['=', 3], LIVE_MS);
  assert.equal((await adminFloor(srv)).workers, 3, '/admin/floor after +');
  await page.locator('#f-less').click();
  await waitFor(page, '#f-workers', ['=', 2], LIVE_MS);
  assert.equal((await stats(srv)).workers, 2, '/stats workers after -');

  await page.locator('#f-pause').click();
  await waitFor(page, '#f-paused', /^paused$/, LIVE_MS);
  assert.equal((await adminFloor(srv)).paused, true, 'paused');
  await page.locator('#f-pause').click();
  await waitFor(page, '#f-paused', /^working$/, LIVE_MS);

  await page.locator('#f-err').fill('0.5');
  await page.locator('#f-for').fill('30');
  await page.locator('#f-inject').click();
  await waitFor(page, '#faults li', /503 injected_fault · ends in (29|30) s$/, LIVE_MS);
  assert.equal((await adminFloor(srv)).faults.error_rate, 0.5);
  await page.locator('#f-end').click();
  await page.waitForFunction(() => document.querySelectorAll('#faults li').length === 0,
    null, { timeout: LIVE_MS });

  const html = await page.content();
  assert.ok(!html.includes(FLOOR_TOKEN), 'the token is not on the page');
  assert.ok(!srv.log.includes(FLOOR_TOKEN), 'the token is not in the log');
  noErrors(errors, /status of 401\b/);
});

test('a live resize: one elf, a full belt, then eight elves drain it', { timeout: TEST_MS }, async () => {
  const { srv, page, errors } = await open(['--workers', '1', '--work-ms', '20',
    '--queue-capacity', '64'], undefined, { SHOPD_ADMIN_TOKEN: FLOOR_TOKEN });
  await unlock(page, FLOOR_TOKEN);
  await waitFor(page, '#f-msg', /^Controls unlocked/, LIVE_MS);
  send(page, 1000);
  await page.waitForFunction(() => {
    const m = /^depth ([\d,]+) of 64/.exec(document.getElementById('belt-text').textContent);
    return m && Number(m[1]) >= 40;
  }, null, { timeout: WAIT_MS, polling: 50 });
  for (let i = 0; i < 7; i++) {
    await page.locator('#f-more').click();
    await waitFor(page, '#f-workers', ['=', 2 + i], LIVE_MS);
  }
  await waitFor(page, '#w-sum', /^[2-8] of 8 busy$/, WAIT_MS);
  await page.screenshot({ path: path.join(OUT, 'floor-resize.png') });
  await waitFor(page, '#announce', /^Sent 1,000 of 1,000: /);
  await waitFor(page, '#belt-text', /^depth 0 of 64 slots/);
  const st = await stats(srv);
  assert.equal(st.workers, 8);
  assert.equal(st.orders.processed, st.orders.accepted, 'every accepted order processed');
  noErrors(errors, CONSOLE_503);
});
