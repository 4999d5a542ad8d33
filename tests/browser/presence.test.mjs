// The status page's tabs line (presence) in Debian's Chromium against the real statushub binary:
// every open tab of the account is counted, with the seq they are all at.
//
//   cargo build && cd tests/browser && npm ci && npm test
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { launchBrowser, mintToken, openPage, phoneTest, screenshot, startHub, tempDir } from './harness.mjs';

/** Waits until the page's tabs line reads `text`; returns it. */
async function tabsLine(page, text, timeout = 15_000) {
  await page.waitForFunction((want) => document.getElementById('tabs')?.textContent === want, text, { timeout });
  return page.$eval('#tabs', (t) => ({ hidden: t.hidden, lagging: t.classList.contains('lagging'), title: t.title }));
}

test('two tabs of an account show "2 tabs, all at seq N" as the account moves on', { timeout: 60_000 }, async () => {
  const dataDir = await tempDir('statushub-browser-data-');
  const hub = await startHub({ dataDir });
  let browser;
  const pages = [];
  try {
    browser = await launchBrowser();
    const token = await mintToken('acct-p', 'presence-user');
    pages.push(await openPage(browser.context, hub, token));
    pages.push(await openPage(browser.context, hub, token));
    for (const page of pages) await tabsLine(page, '2 tabs, all at seq 0');

    await phoneTest(hub, 'acct-p', 'wa-1', true);
    await phoneTest(hub, 'acct-p', 'wa-2', false);
    for (const page of pages) {
      const line = await tabsLine(page, '2 tabs, all at seq 2');
      assert.equal(line.hidden, false);
      assert.equal(line.lagging, false);
      assert.match(line.title, /socketio · presence-user · node-[0-9a-f]{12}: seq 2/);
    }
    await pages[1].close();
    await tabsLine(pages[0], '1 tab, at seq 2');
    assert.deepEqual(pages[0].problems, []);
  } finally {
    if (pages[0]) await screenshot(pages[0], 'presence').catch(() => {});
    await browser?.close().catch(() => {});
    hub.kill();
    await rm(dataDir, { recursive: true, force: true });
  }
});
