// The status page's "Sync jobs" panel in Debian's Chromium against the real statushub binary:
// a job started and reported on by a backend shows a progress bar that moves and finishes.
//
//   cargo build && cd tests/browser && npm ci && npm test
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { API_KEY, launchBrowser, mintToken, openPage, screenshot, startHub, tempDir, waitForRow, waitForSnapshot } from './harness.mjs';

/** POSTs as a backend; returns [status, body]. */
async function call(hub, path, body) {
  const response = await fetch(`${hub.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return [response.status, await response.json()];
}

/** The job row's progress bar as {value, max} (null until it has one). */
const bar = (page, id) =>
  page.evaluate((key) => {
    const el = document.querySelector(`#jobs tr[data-key="${CSS.escape(key)}"] progress`);
    return el ? { value: el.getAttribute('value'), max: el.getAttribute('max') } : null;
  }, id);

function waitForBar(page, id, value, timeout = 5000) {
  return page.waitForFunction(
    ([key, want]) => document.querySelector(`#jobs tr[data-key="${CSS.escape(key)}"] progress`)?.getAttribute('value') === want,
    [id, value],
    { timeout },
  );
}

test('a sync job shows a progress bar that moves and finishes', { timeout: 60_000 }, async () => {
  const dataDir = await tempDir('statushub-browser-data-');
  const hub = await startHub({ dataDir });
  let browser;
  let page;
  try {
    browser = await launchBrowser();
    page = await openPage(browser.context, hub, await mintToken('acct-jobs'));
    await waitForSnapshot(page);

    const [status, job] = await call(hub, '/v1/accounts/acct-jobs/syncs', { kind: 'orders-import', total: 200 });
    assert.equal(status, 201, JSON.stringify(job));
    const id = job.syncId;
    await waitForRow(page, 'jobs', id, 'running');
    assert.deepEqual(await bar(page, id), { value: '0', max: '200' });

    const [reported] = await call(hub, `/v1/accounts/acct-jobs/syncs/${id}/progress`, { done: 80, results: { orders: 78 } });
    assert.equal(reported, 200);
    await waitForBar(page, id, '80');

    const [finished] = await call(hub, `/v1/accounts/acct-jobs/syncs/${id}/progress`, {
      done: 200,
      status: 'complete',
      results: { orders: 190, claims: 10 },
    });
    assert.equal(finished, 200);
    await waitForRow(page, 'jobs', id, 'completed');
    assert.deepEqual(await bar(page, id), { value: '200', max: '200' });
    const text = await page.$eval(`#jobs tr[data-key="${id}"]`, (tr) => tr.textContent ?? '');
    assert.match(text, /200 \/ 200 · claims 10, orders 190/);
  } finally {
    if (page) await screenshot(page, 'sync-jobs').catch(() => {});
    await browser?.close().catch(() => {});
    hub.kill();
    await rm(dataDir, { recursive: true, force: true });
  }
});
