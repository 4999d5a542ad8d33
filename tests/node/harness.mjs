// Shared harness for the statushub end-to-end tests.
//
// Every test starts the real binary (`statushub serve`) on 127.0.0.1:0 with its
// own temporary data dir, talks to it over HTTP (global fetch) and Socket.IO
// (socket.io-client), and stops it again. Nothing here is shared between tests.
//
// Environment:
//   STATUSHUB_BIN        path of the binary (default <repo>/target/debug/statushub)
//   STATUSHUB_TEST_LOGS  set to 1 to copy the server's stderr to this process's stderr
//   STATUSHUB_KEEP_DATA  set to 1 to keep the temporary data dirs for inspection
//   RUST_LOG             passed through to the server

import { spawn, execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { io } from 'socket.io-client';

const execFileAsync = promisify(execFile);

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
export const BIN = process.env.STATUSHUB_BIN ?? path.join(REPO_ROOT, 'target', 'debug', 'statushub');

const READY_TIMEOUT_MS = 20_000;
// Longer than the hub's own worst-case shutdown (9 s, docs/OPERATIONS.md), so a slow one still ends in a clean exit.
const STOP_TIMEOUT_MS = 15_000;
// A SIGTERM exit slower than this is reported on stderr (it is not a test failure).
const SLOW_STOP_MS = 3_000;
const HTTP_TIMEOUT_MS = 10_000;
const LOG_KEEP_CHARS = 64 * 1024;
const LISTENING_RE = /listening on (http:\/\/[^\s]+)/;

// ---------------------------------------------------------------------------
// Small utilities

/** A short random suffix, so accounts and ids never collide between tests. */
export function uid(prefix = 'x') {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * Wait until `predicate()` returns a truthy value and return that value.
 * Fails after `timeout` ms with `message` (a string or a function producing
 * one, called at failure time so it can describe the current state).
 */
export async function waitFor(predicate, { timeout = 5_000, interval = 10, message } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() >= deadline) {
      const what = typeof message === 'function' ? message() : (message ?? String(predicate));
      throw new Error(`timed out after ${timeout} ms waiting for: ${what}`);
    }
    await delay(interval);
  }
}

function ensureBinary() {
  if (!existsSync(BIN)) {
    throw new Error(
      `statushub binary not found at ${BIN}. Run \`cargo build\` in ${REPO_ROOT} first ` +
        '(or point STATUSHUB_BIN at a built binary).',
    );
  }
}

/** The inherited environment without STATUSHUB_* settings (flags decide everything). */
function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('STATUSHUB_')) env[k] = v;
  }
  return { ...env, ...extra };
}

// Child processes still alive when this test file's process exits are killed,
// so a failing test never leaves a server behind.
const liveChildren = new Set();
const tempDirs = new Set();
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  if (process.env.STATUSHUB_KEEP_DATA !== '1') {
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  }
});

/** A fresh temporary data dir, removed when the test process exits. */
export function makeDataDir() {
  const dir = mkdtempSync(path.join(tmpdir(), 'statushub-e2e-'));
  tempDirs.add(dir);
  return dir;
}

// ---------------------------------------------------------------------------
// Server lifecycle

/**
 * Start `statushub serve` on 127.0.0.1:0 and wait for its "listening on" line.
 *
 * Options: dataDir (reuse one, e.g. after a crash), secret, apiKeys, rustLog, env.
 * Returns { url, stop, kill, dataDir, apiKey, apiKeys, secret, proc, logs, tabs }.
 */
export async function startServer({
  dataDir = makeDataDir(),
  secret = `secret-${randomBytes(16).toString('hex')}`,
  apiKeys = [`key-${randomBytes(12).toString('hex')}`, `key-${randomBytes(12).toString('hex')}`],
  rustLog = process.env.RUST_LOG,
  env = {},
} = {}) {
  ensureBinary();
  const args = [
    'serve',
    '--listen', '127.0.0.1:0',
    '--data-dir', dataDir,
    '--jwt-secret', secret,
    '--api-keys', apiKeys.join(','),
  ];
  const proc = spawn(BIN, args, {
    env: childEnv({ ...(rustLog ? { RUST_LOG: rustLog } : {}), ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(proc);

  let stdout = '';
  let stderr = '';
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      liveChildren.delete(proc);
      resolve({ code, signal });
    });
  });
  let exitInfo = null;
  exited.then((info) => {
    exitInfo = info;
  });
  let spawnError = null;
  proc.once('error', (err) => {
    spawnError = err;
  });

  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-LOG_KEEP_CHARS);
    if (process.env.STATUSHUB_TEST_LOGS === '1') process.stderr.write(chunk);
  });
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    stdout = (stdout + chunk).slice(-LOG_KEEP_CHARS);
  });

  const logs = () => `--- stdout ---\n${stdout}\n--- stderr (tail) ---\n${stderr}`;

  let url;
  try {
    const match = await waitFor(
      () => {
        if (spawnError) throw new Error(`could not start ${BIN}: ${spawnError.message}`);
        if (exitInfo) {
          throw new Error(
            `statushub exited before listening (code ${exitInfo.code}, signal ${exitInfo.signal})\n${logs()}`,
          );
        }
        return LISTENING_RE.exec(stdout);
      },
      {
        timeout: READY_TIMEOUT_MS,
        interval: 20,
        message: () => `"listening on http://…" on stdout of ${BIN} ${args.join(' ')}\n${logs()}`,
      },
    );
    url = match[1].replace(/\/+$/, '');
  } catch (err) {
    proc.kill('SIGKILL');
    await exited;
    throw err;
  }

  const tabs = new Set();
  const closeTabs = () => {
    for (const tab of tabs) tab.close();
    tabs.clear();
  };

  const server = {
    url,
    dataDir,
    secret,
    apiKeys,
    apiKey: apiKeys[0],
    proc,
    tabs,
    logs,
    exited,
    get running() {
      return exitInfo === null;
    },
    /** SIGTERM, wait for exit; SIGKILL if it does not exit in time. Returns {code, signal}. */
    async stop({ timeout = STOP_TIMEOUT_MS } = {}) {
      closeTabs();
      if (exitInfo) return exitInfo;
      const started = Date.now();
      proc.kill('SIGTERM');
      const timer = new AbortController();
      let result = await Promise.race([
        exited,
        delay(timeout, null, { signal: timer.signal }).catch(() => null),
      ]);
      timer.abort();
      if (!result) {
        proc.kill('SIGKILL');
        result = await exited;
      }
      const took = Date.now() - started;
      if (took > SLOW_STOP_MS) {
        process.stderr.write(
          `harness: statushub at ${url} took ${took} ms to stop after SIGTERM ` +
            `(exit ${JSON.stringify(result)})\n${logs().slice(-4000)}\n`,
        );
      }
      return result;
    },
    /** kill -9, as a crash would. Tabs are left alone: they see the disconnect. */
    async kill() {
      if (exitInfo) return exitInfo;
      proc.kill('SIGKILL');
      return exited;
    },
  };
  return server;
}

// ---------------------------------------------------------------------------
// Tokens

const b64url = (value) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/**
 * Mint an HS256 JWT with `claims`. `exp` defaults to one hour from now
 * (`omitExp: true` leaves it out).
 */
export function mintToken(secret, claims, { omitExp = false } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iat: now, ...claims };
  if (!omitExp && payload.exp === undefined) payload.exp = now + 3600;
  const signingInput = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}`;
  const signature = createHmac('sha256', secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}

/** A token for `account` signed with the server's secret. */
export function tokenFor(server, account, { user = uid('user'), role } = {}) {
  return mintToken(server.secret, { sub: user, account_id: account, ...(role ? { role } : {}) });
}

/** Mint a token with the binary's own `statushub token` subcommand. */
export async function cliToken(secret, { account, user, role, ttl } = {}) {
  ensureBinary();
  const args = ['token', '--account', account, '--user', user, '--jwt-secret', secret];
  if (role) args.push('--role', role);
  if (ttl) args.push('--ttl', ttl);
  const { stdout } = await execFileAsync(BIN, args, { env: childEnv(), timeout: 10_000 });
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length === 0) throw new Error(`statushub ${args.join(' ')} printed nothing`);
  return lines[lines.length - 1];
}

// ---------------------------------------------------------------------------
// HTTP

/**
 * One HTTP request. `body` is JSON-encoded unless `rawBody` is given.
 * `apiKey` defaults to the server's first key; pass null to send none.
 * Returns { status, headers, body (parsed JSON or null), text }.
 */
export async function api(server, method, urlPath, { body, rawBody, apiKey = server.apiKey, headers = {} } = {}) {
  const h = { ...headers };
  if (apiKey) h.authorization = `Bearer ${apiKey}`;
  let payload;
  if (rawBody !== undefined) {
    payload = rawBody;
    h['content-type'] ??= 'application/json';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${server.url}${urlPath}`, {
    method,
    headers: h,
    body: payload,
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

const accountPath = (account) => `/v1/accounts/${encodeURIComponent(account)}`;

/** A complete phone test body; `fields` override the defaults. */
export function phoneTestBody(fields = {}) {
  return {
    phoneNumberId: uid('phone'),
    isActive: true,
    qualityRating: 'GREEN',
    displayPhoneNumber: '+1 555-0100',
    verifiedName: 'Acme Support',
    testedAt: new Date().toISOString(),
    ...fields,
  };
}

function expectAck(res, what, account) {
  if (res.status !== 201) {
    throw new Error(`${what}: expected 201, got ${res.status}: ${res.text}`);
  }
  const ack = res.body;
  if (!ack || typeof ack.id !== 'string' || !Number.isInteger(ack.seq) || ack.accountId !== account) {
    throw new Error(`${what}: malformed 201 answer: ${res.text}`);
  }
  return ack;
}

/** POST a phone test; asserts 201 and returns { ack, body } (body = what was sent). */
export async function publishPhoneTest(server, account, fields = {}) {
  const body = phoneTestBody(fields);
  const res = await api(server, 'POST', `${accountPath(account)}/phone-tests`, { body });
  return { ack: expectAck(res, `phone test for ${account}`, account), body };
}

/** POST a generic event; asserts 201 and returns the ack {id, accountId, seq, publishedAt}. */
export async function publishEvent(server, account, event, data = {}) {
  const res = await api(server, 'POST', `${accountPath(account)}/events`, { body: { event, data } });
  return expectAck(res, `event ${event} for ${account}`, account);
}

/** Raw POST of a phone test (no assertion): for tests that expect failures. */
export function postPhoneTest(server, account, opts) {
  return api(server, 'POST', `${accountPath(account)}/phone-tests`, opts);
}

/** Raw POST of an event (no assertion). */
export function postEvent(server, account, opts) {
  return api(server, 'POST', `${accountPath(account)}/events`, opts);
}

/** GET /status; asserts 200 and returns the snapshot. */
export async function getStatus(server, account) {
  const res = await api(server, 'GET', `${accountPath(account)}/status`);
  if (res.status !== 200) throw new Error(`GET status: expected 200, got ${res.status}: ${res.text}`);
  return res.body;
}

/** GET /events?since=N once; returns the raw response. */
export function getEventsPage(server, account, since = 0, opts) {
  return api(server, 'GET', `${accountPath(account)}/events?since=${since}`, opts);
}

/**
 * Every retained event after `since`, following pages until an empty one
 * (so it works whether or not the server caps a page).
 */
export async function getAllEvents(server, account, since = 0) {
  const all = [];
  let cursor = since;
  for (let page = 0; page < 10_000; page++) {
    const res = await getEventsPage(server, account, cursor);
    if (res.status !== 200 || !Array.isArray(res.body?.events)) {
      throw new Error(`GET events?since=${cursor}: expected 200 with events[], got ${res.status}: ${res.text}`);
    }
    const { events } = res.body;
    if (events.length === 0) return all;
    all.push(...events);
    const last = events[events.length - 1].seq;
    if (!(last > cursor)) throw new Error(`GET events?since=${cursor} did not advance (last seq ${last})`);
    cursor = last;
  }
  throw new Error('GET events: too many pages');
}

// ---------------------------------------------------------------------------
// Socket.IO tabs

/**
 * Open a Socket.IO "tab" to `server` without waiting for the outcome.
 *
 * Options: account (token minted with the server's secret), or token (used as
 * is; `null` sends no token at all); since; transports (default websocket);
 * name (for messages).
 *
 * The returned recorder keeps every received event, in arrival order, as
 * { event, data, meta }.
 */
export function openTab(server, { account, token, user, role, since, transports = ['websocket'], name } = {}) {
  if (token === undefined) token = tokenFor(server, account, { user, role });
  const auth = {};
  if (token !== null) auth.token = token;
  if (since !== undefined) auth.since = since;

  const socket = io(server.url, {
    auth,
    transports,
    forceNew: true,
    reconnection: false,
    timeout: 5_000,
  });

  const tab = {
    name: name ?? `${account ?? 'tab'}[${transports.join('+')}]`,
    socket,
    events: [],
    connects: 0,
    connectErrors: [],
    disconnects: [],

    /** Events named `event` (all when omitted). */
    named(event) {
      return event === undefined ? [...this.events] : this.events.filter((e) => e.event === event);
    },
    /** Events carrying a meta (i.e. everything but the snapshot). */
    sequenced() {
      return this.events.filter((e) => e.meta && Number.isInteger(e.meta.seq));
    },
    seqs() {
      return this.sequenced().map((e) => e.meta.seq);
    },
    lastSeq() {
      const s = this.seqs();
      return s.length ? s[s.length - 1] : undefined;
    },
    transport() {
      return socket.io.engine?.transport?.name;
    },
    describe() {
      const list = this.events
        .slice(-20)
        .map((e) => `${e.event}${e.meta ? `#${e.meta.seq}@${e.meta.accountId}` : ''}`)
        .join(', ');
      return (
        `${this.name}: connected=${socket.connected} connects=${this.connects} ` +
        `connect_errors=[${this.connectErrors.map((e) => e.message).join('; ')}] ` +
        `disconnects=[${this.disconnects.join('; ')}] events(${this.events.length}, last 20)=[${list}]`
      );
    },

    async waitConnected(timeout = 10_000) {
      await waitFor(
        () => {
          if (this.connectErrors.length) {
            throw new Error(`${this.name} refused: ${this.connectErrors[0].message}`);
          }
          return socket.connected;
        },
        { timeout, message: () => `connect of ${this.describe()}` },
      );
      return this;
    },
    /** Wait for a connect_error and return it (fails if the socket connects instead). */
    async waitRefused(timeout = 10_000) {
      return waitFor(
        () => {
          if (this.connects > 0) throw new Error(`${this.name} connected but should have been refused`);
          return this.connectErrors[0];
        },
        { timeout, message: () => `connect_error on ${this.describe()}` },
      );
    },
    /** Wait for an event matching `match` (a name or a predicate over {event,data,meta}). */
    async waitForEvent(match, timeout = 10_000) {
      const pred = typeof match === 'function' ? match : (e) => e.event === match;
      return waitFor(() => this.events.find(pred), {
        timeout,
        message: () => `event ${typeof match === 'string' ? match : 'matching predicate'} on ${this.describe()}`,
      });
    },
    /** Wait until at least `count` events match `match`; returns them. */
    async waitForCount(match, count, timeout = 10_000) {
      const pred = typeof match === 'function' ? match : (e) => e.event === match;
      return waitFor(
        () => {
          const found = this.events.filter(pred);
          return found.length >= count ? found : null;
        },
        { timeout, message: () => `${count} events matching ${match} on ${this.describe()}` },
      );
    },
    close() {
      socket.disconnect();
      server.tabs.delete(this);
    },
  };

  socket.on('connect', () => {
    tab.connects += 1;
  });
  socket.on('connect_error', (err) => {
    tab.connectErrors.push(err);
  });
  socket.on('disconnect', (reason) => {
    tab.disconnects.push(reason);
  });
  socket.onAny((event, data, meta) => {
    tab.events.push({ event, data, meta });
  });

  server.tabs.add(tab);
  return tab;
}

/** Open a tab and wait until it is connected. */
export async function connectTab(server, opts) {
  return openTab(server, opts).waitConnected();
}

// ---------------------------------------------------------------------------
// Assertion helpers shared by the tests

/** [from, from+1, …, to] */
export function range(from, to) {
  const out = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}
