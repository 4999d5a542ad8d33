// The Dockerfile builds the locked release binary with the pinned toolchain and
// ships it in a small image as a non-root user; .dockerignore keeps build output
// and node_modules out of the context but nothing the build reads; and the
// image's health check (deploy/healthcheck.sh) tells a ready hub from a gone one,
// run here against the real binary.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { REPO_ROOT, repoFile, requireBinary, run } from './lib.mjs';

/** Dockerfile instructions: continuation lines joined, comments dropped. */
function dockerfile() {
  return repoFile('Dockerfile').replace(/\\\n/g, ' ').split('\n')
    .map((line) => line.trim()).filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [, op, rest] = /^(\S+)\s*(.*)$/.exec(line);
      return { op: op.toUpperCase(), rest };
    });
}

test('multi-stage: Rust builder pinned like rust-toolchain.toml, cargo build --release --locked', () => {
  const steps = dockerfile();
  const froms = steps.filter((s) => s.op === 'FROM');
  assert.equal(froms.length, 2, 'a build stage and a runtime stage');
  const channel = /channel\s*=\s*"([^"]+)"/.exec(repoFile('rust-toolchain.toml'))[1];
  const rustArg = steps.find((s) => s.op === 'ARG' && s.rest.startsWith('RUST_VERSION='));
  assert.equal(rustArg?.rest, `RUST_VERSION=${channel}`, 'the builder runs the toolchain rust-toolchain.toml pins (no download)');
  assert.match(froms[0].rest, /^rust:\$\{RUST_VERSION\}-bookworm AS build$/);
  assert.ok(steps.some((s) => s.op === 'RUN' && /cargo build --release --locked\b/.test(s.rest)), 'cargo build --release --locked');
  assert.match(froms[1].rest, /^(debian:bookworm-slim|gcr\.io\/distroless\/cc-debian12)\b/, 'a small runtime on the builder\'s glibc');
});

test('runtime: non-root user, port, health check, and every copied file exists', () => {
  const steps = dockerfile();
  const runtime = steps.slice(steps.findLastIndex((s) => s.op === 'FROM'));
  const user = runtime.filter((s) => s.op === 'USER').at(-1)?.rest;
  assert.ok(user, 'the runtime stage sets USER');
  assert.doesNotMatch(user, /^(0|root)(:|$)/, 'and it is not root');
  assert.deepEqual(runtime.filter((s) => s.op === 'EXPOSE').map((s) => s.rest), ['8080']);
  assert.match(runtime.find((s) => s.op === 'HEALTHCHECK')?.rest ?? '', /CMD \["statushub-healthcheck"\]/);
  assert.match(runtime.find((s) => s.op === 'ENV')?.rest ?? '', /STATUSHUB_LISTEN=0\.0\.0\.0:8080/);
  for (const copy of runtime.filter((s) => s.op === 'COPY' && !/--from=/.test(s.rest))) {
    const source = copy.rest.split(/\s+/).find((word) => !word.startsWith('--'));
    assert.ok(existsSync(path.join(REPO_ROOT, source)), `COPY ${source}: the file is in the repository`);
  }
});

test('.dockerignore drops target/ and node_modules/ but keeps everything the build reads', () => {
  const patterns = repoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  // Docker's matching for these simple patterns: anchored at the context root, `**/` any depth,
  // a directory pattern also covers what is inside it.
  const toRegex = (p) => new RegExp(`^${p.replace(/\/$/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*\*\//g, '\0').replace(/\*/g, '[^/]*').replace(/\0/g, '(?:.*/)?')}(?:/.*)?$`);
  const ignored = (file) => patterns.some((p) => toRegex(p).test(file));
  for (const file of ['target/debug/statushub', 'tests/node/node_modules/ws/index.js', 'web-client/node_modules/x', '.git/HEAD']) {
    assert.ok(ignored(file), `${file} stays out of the build context`);
  }
  // What `cargo build` reads: the manifests, the lock file, the sources, the page it embeds
  // (include_str! of web-client/page/*), the workspace member, and the health check.
  const listed = run('git', ['ls-files'], { cwd: REPO_ROOT }).stdout.split('\n').filter(Boolean);
  const needed = listed.filter((f) => /^(Cargo\.(toml|lock)|rust-toolchain\.toml|src\/|web-client\/(page|src)\/|bench\/loadgen\/|deploy\/)/.test(f));
  assert.ok(needed.some((f) => f.startsWith('web-client/page/')), 'the embedded page is in the repository');
  for (const file of needed) assert.equal(ignored(file), false, `${file} is needed by the build but .dockerignore drops it`);
});

test('statushub-healthcheck: healthy while the hub answers /readyz, unhealthy once it is gone', async (t) => {
  const bin = requireBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'statushub-health-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STATUSHUB_')));
  const hub = spawn(bin, ['serve', '--dev', '--listen', '127.0.0.1:0', '--data-dir', dir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => hub.kill('SIGKILL'));
  let out = '';
  hub.stderr.on('data', () => {});
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not print its URL within 20 s:\n${out}`)), 20_000);
    hub.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    hub.once('exit', (code) => { clearTimeout(timer); reject(new Error(`hub exited (${code}):\n${out}`)); });
  });
  const listen = new URL(url).host;
  const check = () => run('bash', [path.join(REPO_ROOT, 'deploy/healthcheck.sh')], { env: { ...env, STATUSHUB_LISTEN: `0.0.0.0:${new URL(url).port}` } });

  const healthy = check();
  assert.equal(healthy.status, 0, `healthy hub on ${listen} reported unhealthy: ${healthy.stderr}`);

  hub.kill('SIGTERM');
  await once(hub, 'exit');
  const gone = check();
  assert.equal(gone.status, 1, 'a stopped hub must be reported unhealthy');
  assert.match(gone.stderr, /nothing listens/);
});
