// The browser tests' harness: the real statushub binary on loopback, Debian's Chromium driven by
// playwright-core, and small waits on conditions. No browser is ever downloaded.
import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const here = fileURLToPath(new URL('.', import.meta.url));
export const ARTIFACTS = join(here, 'artifacts');
export const SECRET = 'browser-test-secret';
export const API_KEY = 'browser-test-key';

/** Debian's Chromium; STATUSHUB_CHROMIUM points elsewhere (only to another system install). */
const CHROMIUM = process.env.STATUSHUB_CHROMIUM ?? '/usr/bin/chromium';
/** Without these Chromium tries to reach the internet (field notes). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function hubBinary() {
  const bin = process.env.STATUSHUB_BIN ?? join(here, '..', '..', 'target', 'debug', 'statushub');
  if (!existsSync(bin)) {
    throw new Error(`statushub binary not found at ${bin}: run \`cargo build\` first (or set STATUSHUB_BIN)`);
  }
  return bin;
}

export async function tempDir(prefix) {
  return mkdtemp(join(tmpdir(), prefix));
}

/**
 * Starts `statushub serve` and resolves once it prints its URL. `port` 0 picks a free one; a
 * restart passes the previous port (retried briefly in case the old socket is still closing).
 */
export async function startHub({ dataDir, port = 0, dev = false }) {
  const bin = hubBinary();
  const secrets = dev ? ['--dev'] : ['--jwt-secret', SECRET, '--api-keys', API_KEY];
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, ...secrets];
  let lastError;
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      return await spawnHub(bin, args);
    } catch (e) {
      lastError = e;
      if (port === 0 || !/cannot bind/.test(String(e.message))) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw lastError;
}

function spawnHub(bin, args) {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  let stdout = '';
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`statushub did not print its URL within 20 s; stderr:\n${stderr}`));
    }, 20_000);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/statushub listening on (http:\/\/127\.0\.0\.1:(\d+))/);
      if (!m) return;
      clearTimeout(timer);
      resolve({
        url: m[1],
        port: Number(m[2]),
        /** Everything printed up to the URL (the `--dev` banner). */
        banner: stdout,
        /** SIGTERM, then wait for a clean exit. */
        async stop() {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          const timeout = setTimeout(() => proc.kill('SIGKILL'), 15_000);
          const result = await exited;
          clearTimeout(timeout);
          if (result.code !== 0) throw new Error(`statushub exited with ${JSON.stringify(result)}; stderr:\n${stderr}`);
        },
        kill() {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
        },
      });
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`statushub exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr}`));
    });
  });
}

/** A client token minted by the binary itself (`statushub token`). */
export async function mintToken(account, user = 'browser-user') {
  const { stdout } = await promisify(execFile)(hubBinary(), ['token', '--account', account, '--user', user, '--jwt-secret', SECRET]);
  return stdout.trim();
}

/** POSTs as a backend service; returns the 201 receipt. */
export async function post(hub, path, body) {
  const response = await fetch(`${hub.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`POST ${path} answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

export const phoneTest = (hub, account, phoneNumberId, isActive, extra = {}) =>
  post(hub, `/v1/accounts/${account}/phone-tests`, { phoneNumberId, isActive, ...extra });

/** Chromium from Debian with a fresh profile; fails (never skips) when it is not installed. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (never a downloaded browser)`);
  }
  const profile = await tempDir('statushub-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1360, height: 860 },
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the status page as `token`'s account in a new tab, and waits for its first snapshot. */
export async function openPage(context, hub, token) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
  page.problems = problems;
  await page.goto(`${hub.url}/?token=${encodeURIComponent(token)}`);
  await waitForSnapshot(page);
  return page;
}

/** The badge is up and the snapshot applied (the header shows a seq). */
export async function waitForSnapshot(page, timeout = 10_000) {
  await page.waitForFunction(
    () => document.getElementById('badge')?.dataset.status === 'ready' && !document.getElementById('seq')?.hidden,
    null,
    { timeout },
  );
}

export const badge = (page) => page.$eval('#badge', (b) => b.dataset.status);

/** The status pill of a row, e.g. a phone's "ACTIVE". */
export const rowStatus = (page, section, key) =>
  page.evaluate(([s, k]) => document.querySelector(`#${s} tr[data-key="${CSS.escape(k)}"] .pill`)?.textContent ?? null, [section, key]);

/** Waits until a row's pill shows `status`. */
export function waitForRow(page, section, key, status, timeout = 5000) {
  return page.waitForFunction(
    ([s, k, want]) => document.querySelector(`#${s} tr[data-key="${CSS.escape(k)}"] .pill`)?.textContent === want,
    [section, key, status],
    { timeout },
  );
}

/** The event log's entries from `source` ('live' or 'history'), newest first: [{seq, event}]. */
export const logEntries = (page, source = 'live') =>
  page.$$eval(`#log li[data-source="${source}"]`, (lis) => lis.map((li) => ({ seq: Number(li.dataset.seq), event: li.dataset.event })));

/** Saves a screenshot under tests/browser/artifacts/ (gitignored). */
export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
