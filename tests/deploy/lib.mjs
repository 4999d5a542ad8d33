// Helpers for the deployment checks: read the repository's deployment files the
// way their tools do (Compose interpolation and merge keys, nginx's block syntax),
// and find the programs the checks run. Missing programs fail the test, naming
// what to install; nothing is skipped.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
export const BIN = process.env.STATUSHUB_BIN ?? path.join(REPO_ROOT, 'target', 'debug', 'statushub');

export function repoFile(relative) {
  return readFileSync(path.join(REPO_ROOT, relative), 'utf8');
}

/** The path of `name` on PATH (or in /usr/sbin), or a failure naming the Debian package. */
export function requireProgram(name, debianPackage) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  throw new Error(`'${name}' is missing: apt-get install -y ${debianPackage} (.ci/run installs it)`);
}

export function requireBinary() {
  if (!existsSync(BIN)) {
    throw new Error(`statushub binary not found at ${BIN}: run \`cargo build\` in ${REPO_ROOT} (or set STATUSHUB_BIN)`);
  }
  return BIN;
}

/** KEY=VALUE lines of an env file (Compose's .env syntax without quotes or exports). */
export function parseEnvFile(text) {
  const env = {};
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const eq = trimmed.indexOf('=');
    if (eq < 1) throw new Error(`not a KEY=VALUE line: ${line}`);
    env[trimmed.slice(0, eq)] = trimmed.slice(eq + 1);
  }
  return env;
}

/**
 * Compose variable interpolation of one string: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`. A required variable that is missing
 * throws with its message, as `docker compose` refuses to start.
 */
export function interpolate(text, env) {
  return text.replace(/\$(\$|[A-Za-z_][A-Za-z0-9_]*|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\})/g,
    (whole, simple, name, colon, op, arg) => {
      if (simple === '$') return '$';
      if (!whole.startsWith('${')) return env[simple] ?? '';
      const value = env[name];
      const missing = colon ? !value : value === undefined;
      if (!op) return value ?? '';
      if (op === '-') return missing ? arg : value;
      if (missing) throw new Error(`required variable ${name} is missing a value: ${arg}`);
      return value;
    });
}

function interpolateDeep(node, env) {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((item) => interpolateDeep(item, env));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateDeep(v, env)]));
  }
  return node;
}

/** docker-compose.yml as Compose reads it: YAML merge keys applied, then interpolated with `env`. */
export function loadCompose(env) {
  const raw = YAML.parse(repoFile('docker-compose.yml'), { merge: true });
  return { raw, resolved: interpolateDeep(raw, env) };
}

/** A service's command as a list of words. */
export function commandWords(service) {
  const cmd = service.command ?? [];
  return Array.isArray(cmd) ? cmd.map(String) : String(cmd).trim().split(/\s+/);
}

/**
 * nginx's configuration syntax as a tree: every directive is `{name, args, children}`,
 * `children` set for blocks. Comments, quotes and escapes are handled; includes are not
 * followed (the caller reads the included file).
 */
export function parseNginx(text) {
  const tokens = [];
  const re = /#[^\n]*|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([{};])|([^\s{};"'#]+)/g;
  for (const m of text.matchAll(re)) {
    if (m[0].startsWith('#')) continue;
    if (m[1] !== undefined || m[2] !== undefined) tokens.push({ word: m[1] ?? m[2] });
    else if (m[3]) tokens.push({ punct: m[3] });
    else tokens.push({ word: m[4] });
  }
  let i = 0;
  function block(closing) {
    const directives = [];
    let words = [];
    while (i < tokens.length) {
      const t = tokens[i++];
      if (t.punct === ';') {
        if (!words.length) throw new Error('nginx: empty directive');
        directives.push({ name: words[0], args: words.slice(1) });
        words = [];
      } else if (t.punct === '{') {
        const children = block(true);
        directives.push({ name: words[0], args: words.slice(1), children });
        words = [];
      } else if (t.punct === '}') {
        if (!closing || words.length) throw new Error('nginx: unexpected }');
        return directives;
      } else {
        words.push(t.word);
      }
    }
    if (closing || words.length) throw new Error('nginx: unexpected end of file');
    return directives;
  }
  return block(false);
}

/** Every directive named `name` in the tree, at any depth. */
export function findAll(tree, name, out = []) {
  for (const d of tree) {
    if (d.name === name) out.push(d);
    if (d.children) findAll(d.children, name, out);
  }
  return out;
}

/** nginx time ("1h", "60s", "90") in seconds. */
export function nginxSeconds(value) {
  const units = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(value);
  if (!m) throw new Error(`not an nginx time: ${value}`);
  return Number(m[1]) * units[m[2] ?? 's'];
}

/** Runs a program, returning {status, stdout, stderr} without throwing on a non-zero exit. */
export function run(file, args, options = {}) {
  try {
    const stdout = execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
    return { status: 0, stdout, stderr: '' };
  } catch (err) {
    if (err.status === undefined || err.status === null) throw err;
    return { status: err.status, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}
