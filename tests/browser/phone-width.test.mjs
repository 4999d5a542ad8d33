// The status page on a phone: 390×844 (an iPhone 12–15 in portrait), every panel holding data,
// long values included. The page must never scroll sideways: tables stack into cards instead.
//
//   cargo build && cd tests/browser && npm ci && npm test
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { join } from 'node:path';
import { API_KEY, ARTIFACTS, launchBrowser, logEntries, mintToken, openPage, phoneTest, post, screenshot, startHub, tempDir, waitForRow } from './harness.mjs';

const PHONE = { width: 390, height: 844 };

/** Creates (PUT) a heartbeat monitor; returns the answer's status. */
async function putMonitor(hub, account, id, settings) {
  const response = await fetch(`${hub.url}/v1/accounts/${account}/monitors/${id}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(settings),
  });
  const text = await response.text();
  assert.ok([200, 201].includes(response.status), `PUT monitor ${id} answered ${response.status}: ${text}`);
}

/** How far the page scrolls sideways, and which elements stick out of the viewport. */
const overflow = (page) =>
  page.evaluate(() => {
    const width = window.innerWidth;
    const out = [...document.querySelectorAll('body *')]
      .filter((e) => e.getClientRects().length > 0 && e.getBoundingClientRect().right > width + 0.5)
      .filter((e) => !e.closest('.visually-hidden'))
      .slice(0, 5)
      .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.className ? `.${String(e.className).trim().replace(/\s+/g, '.')}` : ''} right=${Math.round(e.getBoundingClientRect().right)}`);
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth: width, out };
  });

test('at 390 px wide every panel holds data and the page never scrolls sideways', { timeout: 60_000 }, async () => {
  const dataDir = await tempDir('statushub-browser-phone-');
  const hub = await startHub({ dataDir });
  const browser = await launchBrowser();
  let page;
  try {
    const account = 'acct-phone-width-with-a-long-account-id';
    await phoneTest(hub, account, 'wa-120363025550100-business-line', true, {
      displayPhoneNumber: '+1 555 0100',
      verifiedName: 'Acme Worldwide Customer Support and Billing',
      qualityRating: 'GREEN',
    });
    await phoneTest(hub, account, 'wa-2', false, { displayPhoneNumber: '+44 20 7946 0000' });
    await post(hub, `/v1/accounts/${account}/credential-tests`, {
      provider: 'binance',
      userId: 'user-0b7f6c2e-9a41-4c55-8d1e-3f2a7c9d1e44',
      success: false,
      error: 'HTTP 401 from https://api.binance.com/api/v3/account: API-key format invalid; signature for this request is not valid',
    });
    await post(hub, `/v1/accounts/${account}/credential-tests`, { provider: 'meta', userId: 'u-1', success: true });
    // One monitor that answers (this hub's own /healthz) and one that cannot (nothing on port 9).
    await putMonitor(hub, account, 'hub-health', { url: `${hub.url}/healthz`, intervalMs: 1000, timeoutMs: 500, maxRetries: 0, backoffMultiplier: 1 });
    await putMonitor(hub, account, 'payments-gateway-eu-west-1-primary', {
      url: 'http://127.0.0.1:9/an/endpoint/with/a/rather/long/path?and=query&string=too',
      intervalMs: 1000,
      timeoutMs: 500,
      maxRetries: 0,
      backoffMultiplier: 1,
    });

    page = await browser.context.newPage();
    await page.setViewportSize(PHONE);
    const token = await mintToken(account);
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${hub.url}/?token=${encodeURIComponent(token)}`);
    await waitForRow(page, 'phones', 'wa-2', 'INACTIVE', 10_000);
    await waitForRow(page, 'credentials', 'binance:user-0b7f6c2e-9a41-4c55-8d1e-3f2a7c9d1e44', 'FAILED', 10_000);
    await waitForRow(page, 'monitors', 'hub-health', 'healthy', 15_000);
    await waitForRow(page, 'monitors', 'payments-gateway-eu-west-1-primary', 'unhealthy', 15_000);
    // A live event, so the log has an entry from this tab too.
    await phoneTest(hub, account, 'wa-3', true);
    await waitForRow(page, 'phones', 'wa-3', 'ACTIVE', 5000);
    assert.ok((await logEntries(page)).length > 0, 'the event log shows the live event');
    for (const section of ['phones', 'credentials', 'monitors']) {
      const rows = await page.$$eval(`#${section} tr`, (trs) => trs.length);
      assert.ok(rows >= 2, `${section} holds ${rows} rows`);
    }

    const { scrollWidth, innerWidth, out } = await overflow(page);
    assert.equal(innerWidth, PHONE.width);
    assert.ok(scrollWidth <= innerWidth, `the page scrolls sideways: scrollWidth ${scrollWidth} > ${innerWidth}; sticking out: ${out.join(', ')}`);
    assert.deepEqual(out, [], 'no element sticks out of the viewport');

    // Each stacked cell still says what it is.
    const label = await page.$eval('#credentials tr[data-key="binance:user-0b7f6c2e-9a41-4c55-8d1e-3f2a7c9d1e44"] td:nth-child(4)', (td) => getComputedStyle(td, '::before').content);
    assert.match(label, /Error/i);
    assert.deepEqual(problems, []);
  } finally {
    if (page) {
      await screenshot(page, 'phone-390').catch(() => {});
      // What the phone shows first, at its real size.
      await page.screenshot({ path: join(ARTIFACTS, 'phone-390-top.png') }).catch(() => {});
    }
    await browser.close().catch(() => {});
    hub.kill();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('at 390 px wide the sign-in form fits too', { timeout: 60_000 }, async () => {
  const dataDir = await tempDir('statushub-browser-phone-signin-');
  const hub = await startHub({ dataDir });
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    await page.setViewportSize(PHONE);
    await page.goto(hub.url);
    await page.waitForSelector('#signin:not([hidden])');
    const { scrollWidth, innerWidth, out } = await overflow(page);
    assert.ok(scrollWidth <= innerWidth, `scrollWidth ${scrollWidth} > ${innerWidth}; sticking out: ${out.join(', ')}`);
    assert.deepEqual(out, []);
    await screenshot(page, 'phone-390-signin');
  } finally {
    await browser.close().catch(() => {});
    hub.kill();
    await rm(dataDir, { recursive: true, force: true });
  }
});
