// The React + TanStack Query app in two Chromium tabs against the real hub: what issue 16 asks
// of the SDK as a frontend team uses it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { API_KEY, cleanup, launchBrowser, mintToken, openApp, post, serveApp, startHub, tempDir, text, until } from './harness.mjs';

let app;
let hub;
let browser;
let dataDir;
const tabs = [];

before(async () => {
  app = await serveApp();
  dataDir = await tempDir('statushub-react-app-');
  hub = await startHub({ dataDir, origin: app.url });
  browser = await launchBrowser();
});

after(async () => {
  for (const t of tabs) await t.context.close().catch(() => {});
  await browser?.close();
  await hub?.stop().catch(() => hub.kill());
  await app?.close();
  if (dataDir) await cleanup(dataDir);
});

async function open(account, user) {
  const tab = await openApp(browser, app, hub, await mintToken(account, user));
  tabs.push(tab);
  return tab;
}

const phoneTest = (account, phoneNumberId, isActive) => post(hub, `/v1/accounts/${account}/phone-tests`, { phoneNumberId, isActive });
const credentialTest = (account, userId, success) => post(hub, `/v1/accounts/${account}/credential-tests`, { provider: 'binance', userId, success, ...(success ? {} : { error: 'HTTP 401' }) });
const seqIs = (page, seq) => until(page, (want) => document.getElementById('seq')?.textContent === String(want), seq);
const windowValue = (page, fn) => page.evaluate(fn);

test('StrictMode mounts the provider twice and the tab still opens one connection', async () => {
  const { page } = await open('acct-strict', 'u1');
  // StrictMode is on (a development build): every effect ran twice on mount.
  assert.deepEqual((await windowValue(page, () => window.__app.connection)).slice(0, 2), ['connecting/none', 'connecting/none']);
  assert.deepEqual(await page.evaluate(() => window.__sockets.length), 1);
  // The hub agrees: one connection was ever opened, none even briefly beside it.
  const stats = await (await fetch(`${hub.url}/v1/stats`, { headers: { authorization: `Bearer ${API_KEY}` } })).json();
  assert.equal(stats.connections.socketio.opened, 1, 'Socket.IO connections ever opened');
  assert.equal(stats.subscriptions, 1);
  assert.deepEqual(page.problems, []);
});

test('a selector component does not re-render on unrelated events (counted)', async () => {
  const { page } = await open('acct-sel', 'u1');
  await phoneTest('acct-sel', 'wa-1', true);
  await until(page, () => document.querySelector('[data-phone="wa-1"]')?.textContent === 'ACTIVE');
  const before = await windowValue(page, () => ({ ...window.__app.renders }));
  await phoneTest('acct-sel', 'wa-2', true);
  await phoneTest('acct-sel', 'wa-2', false);
  await post(hub, '/v1/accounts/acct-sel/events', { event: 'deploy.finished', data: { version: '1' } });
  await credentialTest('acct-sel', 'u1', true);
  const last = await phoneTest('acct-sel', 'wa-3', true);
  await seqIs(page, last.seq);
  const afterUnrelated = await windowValue(page, () => ({ ...window.__app.renders }));
  assert.equal(afterUnrelated['phone:wa-1'], before['phone:wa-1'], 'wa-1 re-rendered on events about other things');
  assert.ok(afterUnrelated['phone:wa-2'] > before['phone:wa-2'], 'the counter counts: wa-2 did re-render');
  await phoneTest('acct-sel', 'wa-1', false);
  await until(page, () => document.querySelector('[data-phone="wa-1"]')?.textContent === 'INACTIVE');
  assert.ok((await windowValue(page, () => window.__app.renders['phone:wa-1'])) > before['phone:wa-1']);
});

test("two users' credentials for one provider coexist, in the state and in the queries", async () => {
  const a = await open('acct-cred', 'u1');
  const b = await open('acct-cred', 'u2');
  await credentialTest('acct-cred', 'u1', true);
  await credentialTest('acct-cred', 'u2', false);
  for (const { page } of [a, b]) {
    await until(page, () => document.querySelector('#binance [data-user="u1"]')?.textContent === 'OK' && document.querySelector('#binance [data-user="u2"]')?.textContent === 'FAILED');
    // Each query was invalidated by its user's status_sync and refetched from the hub.
    await until(page, () => document.querySelector('[data-query="u1"]')?.textContent === 'OK' && document.querySelector('[data-query="u2"]')?.textContent === 'FAILED');
  }
});

test('across a hub restart the state goes ready → reconnecting → ready; a tab back from a long offline period refetches stale queries', { timeout: 120_000 }, async () => {
  const a = await open('acct-gap', 'u1');
  const b = await open('acct-gap', 'u1');
  await credentialTest('acct-gap', 'u1', true);
  for (const { page } of [a, b]) await until(page, () => document.querySelector('[data-query="u1"]')?.textContent === 'OK');
  const fetchesBefore = await windowValue(b.page, () => window.__app.fetches.u1);

  // Restart the hub; tab B stays offline until the events it misses are beyond retention (3).
  await hub.stop();
  for (const { page } of [a, b]) await until(page, () => document.getElementById('connection')?.dataset.state === 'reconnecting', undefined, 15_000);
  await b.context.setOffline(true);
  hub = await startHub({ dataDir, port: hub.port, origin: app.url });
  await until(a.page, () => document.getElementById('connection')?.dataset.state === 'ready', undefined, 30_000);
  assert.equal(await a.page.$eval('#connection', (e) => e.dataset.resume), 'exact');
  const history = await windowValue(a.page, () => window.__app.connection);
  assert.deepEqual(history.slice(-3), ['ready/none', 'reconnecting/none', 'ready/exact'], `tab A went ${history}`);

  await credentialTest('acct-gap', 'u1', false);
  let last;
  for (let i = 0; i < 4; i++) last = await phoneTest('acct-gap', `wa-${i}`, true);
  // Tab A was live: its query refetched on the status_sync.
  await until(a.page, () => document.querySelector('[data-query="u1"]')?.textContent === 'FAILED');

  await b.context.setOffline(false);
  await until(b.page, () => document.getElementById('connection')?.dataset.state === 'ready', undefined, 30_000);
  await seqIs(b.page, last.seq);
  // The gap was older than retention: a reset snapshot, no status_sync replayed. Only the
  // helper's reset invalidation can refresh the query.
  await until(b.page, () => document.getElementById('connection')?.dataset.resume === 'reset');
  await until(b.page, () => document.querySelector('[data-query="u1"]')?.textContent === 'FAILED', undefined, 10_000);
  assert.ok((await windowValue(b.page, () => window.__app.fetches.u1)) > fetchesBefore, 'the query refetched');
  assert.equal(await text(b.page, '#binance [data-user="u1"]'), 'FAILED');
});
