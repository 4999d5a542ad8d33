// Monitor history on the status page, in Debian's Chromium against the real statushub binary: a
// monitor of a real endpoint on 127.0.0.1 shows an uptime bar of its recent checks, a latency
// sparkline and its uptime; when the endpoint goes down the bar shows failed checks. The page is
// opened with `?monitor=` and shows just that monitor.
//
//   cargo build && cd tests/browser && npm ci && npm test
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { API_KEY, launchBrowser, mintToken, phoneTest, screenshot, startHub, tempDir, waitForRow, waitForSnapshot } from './harness.mjs';

/** An endpoint on 127.0.0.1 that answers 200 while `up`, else 503. */
async function endpoint() {
  const state = { up: true, hits: 0 };
  const server = createServer((req, res) => {
    state.hits++;
    res.writeHead(state.up ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(state.up ? 'ok' : 'down');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { state, url: `http://127.0.0.1:${port}/health`, close: () => new Promise((r) => server.close(r)) };
}

async function putMonitor(hub, account, id, url) {
  const response = await fetch(`${hub.url}/v1/accounts/${account}/monitors/${id}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url, intervalMs: 1000, timeoutMs: 500, maxRetries: 0, backoffMultiplier: 1 }),
  });
  assert.equal(response.status, 201, await response.text());
}

/** The row's uptime bar as the page drew it. */
const bar = (page, id) =>
  page.evaluate((key) => {
    const row = document.querySelector(`#monitors tr[data-key="${CSS.escape(key)}"]`);
    const svg = row?.querySelector('svg.uptime-bar');
    if (!(svg instanceof SVGElement)) return null;
    return {
      up: Number(svg.dataset.up),
      down: Number(svg.dataset.down),
      downRects: svg.querySelectorAll('rect.down').length,
      uptime: row?.querySelector('td.uptime')?.textContent ?? null,
      sparkline: row?.querySelector('svg.sparkline path')?.getAttribute('d') ?? '',
    };
  }, id);

test('the uptime bar shows failed checks once the endpoint goes down', { timeout: 90_000 }, async () => {
  const dataDir = await tempDir('statushub-browser-history-');
  const hub = await startHub({ dataDir });
  const browser = await launchBrowser();
  const target = await endpoint();
  let page;
  try {
    const account = 'acct-history';
    await putMonitor(hub, account, 'api', target.url);
    await putMonitor(hub, account, 'other', target.url);
    await phoneTest(hub, account, 'wa-1', true);

    page = await browser.context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    const token = await mintToken(account);
    await page.goto(`${hub.url}/?token=${encodeURIComponent(token)}&monitor=api`);
    await waitForSnapshot(page);
    await waitForRow(page, 'monitors', 'api', 'healthy', 15_000);

    // `?monitor=api`: that row only, and no other panel.
    const shown = await page.evaluate(() => ({
      rows: [...document.querySelectorAll('#monitors tr')].map((tr) => /** @type {HTMLElement} */ (tr).dataset.key),
      phonesHidden: document.getElementById('phones')?.closest('section')?.hidden,
    }));
    assert.deepEqual(shown.rows, ['api']);
    assert.equal(shown.phonesHidden, true);

    // Passed checks fill the bar (it is read again every 15 s and on each change of health).
    await page.waitForFunction(
      () => Number(document.querySelector('#monitors tr[data-key="api"] svg.uptime-bar')?.dataset.up) >= 1,
      null,
      { timeout: 20_000 },
    );
    const before = await bar(page, 'api');
    assert.ok(before, 'the row has an uptime bar');
    assert.equal(before.down, 0, 'no failed check yet');
    assert.equal(before.downRects, 0);
    assert.equal(before.uptime, '100% / 100%');
    assert.match(before.sparkline, /^M0 /, 'a sparkline is drawn');

    target.state.up = false;
    await waitForRow(page, 'monitors', 'api', 'unhealthy', 15_000);
    await page.waitForFunction(
      () => Number(document.querySelector('#monitors tr[data-key="api"] svg.uptime-bar')?.dataset.down) >= 1,
      null,
      { timeout: 10_000 },
    );
    const after = await bar(page, 'api');
    assert.ok(after && after.downRects >= 1, 'the bar shows the failed check');
    assert.ok(after.up >= before.up, 'the passed checks are still on it');
    assert.notEqual(after.uptime, '100% / 100%', 'the uptime fell');
    assert.deepEqual(problems, []);
  } finally {
    if (page) await screenshot(page, 'monitor-history').catch(() => {});
    await browser.close().catch(() => {});
    hub.kill();
    await target.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
