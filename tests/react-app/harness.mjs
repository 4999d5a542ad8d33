// The app suite's harness: the built app served from loopback, the real statushub binary (its
// own data dir, a tiny retention so a tab can fall behind it), and Debian's Chromium through
// playwright-core. No browser is ever downloaded; a missing one fails the suite, never skips it.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const here = fileURLToPath(new URL('.', import.meta.url));
export const SECRET = 'react-app-test-secret';
export const API_KEY = 'react-app-test-key';
const CHROMIUM = process.env.STATUSHUB_CHROMIUM ?? '/usr/bin/chromium';
/** Without these Chromium tries to reach the internet (field notes). */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function hubBinary() {
  const bin = process.env.STATUSHUB_BIN ?? join(here, '..', '..', 'target', 'debug', 'statushub');
  if (!existsSync(bin)) throw new Error(`statushub binary not found at ${bin}: run \`cargo build\` first (or set STATUSHUB_BIN)`);
  return bin;
}

export const tempDir = (prefix) => mkdtemp(join(tmpdir(), prefix));

/** Serves the Vite build (dist/) on 127.0.0.1; `npm test` builds it first. */
export async function serveApp() {
  const dist = join(here, 'dist');
  if (!existsSync(join(dist, 'index.html'))) throw new Error('tests/react-app/dist is missing: run `npm run build` (npm test does)');
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json' };
  const server = createServer(async (req, res) => {
    const path = normalize(new URL(req.url ?? '/', 'http://x').pathname).replace(/^(\.\.[/\\])+/, '');
    const file = join(dist, path === '/' ? 'index.html' : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

/** `statushub serve` on `port` (0: a free one); resolves once it prints its URL. A restart reuses the port. */
export async function startHub({ dataDir, port = 0, origin, retentionEvents = 3 }) {
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--jwt-secret', SECRET, '--api-keys', API_KEY, '--allowed-origins', origin, '--retention-events', String(retentionEvents)];
  for (let attempt = 0; ; attempt++) {
    try {
      return await spawnHub(args);
    } catch (e) {
      if (port === 0 || attempt >= 20 || !/cannot bind/.test(String(e.message))) throw e;
      await new Promise((r) => setTimeout(r, 100)); // the old socket is still closing
    }
  }
}

function spawnHub(args) {
  const proc = spawn(hubBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
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
        async stop() {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          const timeout = setTimeout(() => proc.kill('SIGKILL'), 15_000);
          const result = await exited;
          clearTimeout(timeout);
          if (result.code !== 0) throw new Error(`statushub exited with ${JSON.stringify(result)}; stderr:\n${stderr}`);
        },
        kill: () => proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'),
      });
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`statushub exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr}`));
    });
  });
}

export async function mintToken(account, user) {
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

/** Chromium from Debian. Each tab gets its own context, so one can go offline alone. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (never a downloaded browser)`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  return browser;
}

/** Opens the app as `token` against `hub` and waits until the connection is ready and the queries loaded. */
export async function openApp(browser, app, hub, token) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
  page.problems = problems;
  await page.goto(`${app.url}/?hub=${encodeURIComponent(hub.url)}&token=${encodeURIComponent(token)}`);
  await page.waitForFunction(() => document.getElementById('connection')?.dataset.state === 'ready', null, { timeout: 15_000 });
  await page.waitForFunction(() => [...document.querySelectorAll('[data-query]')].every((li) => li.textContent !== 'loading'), null, { timeout: 10_000 });
  return { context, page };
}

/** Waits until `fn(arg)` in the page is truthy. */
export const until = (page, fn, arg, timeout = 10_000) => page.waitForFunction(fn, arg, { timeout });

export const text = (page, selector) => page.$eval(selector, (e) => e.textContent);

export async function cleanup(...dirs) {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}
