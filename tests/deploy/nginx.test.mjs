// The committed nginx config (deploy/nginx/nginx.conf + statushub-proxy.conf) names
// every hub node of docker-compose.yml, keeps Socket.IO long-polling sessions on one
// node, passes WebSocket upgrades through, never buffers SSE, and is accepted by the
// real nginx (`nginx -t`), with the compose host names pointed at loopback.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  REPO_ROOT, findAll, loadCompose, nginxSeconds, parseEnvFile, parseNginx, repoFile, requireProgram, run,
} from './lib.mjs';

const MAIN = 'deploy/nginx/nginx.conf';
const RULES = 'deploy/nginx/statushub-proxy.conf';
const main = parseNginx(repoFile(MAIN));
const rules = parseNginx(repoFile(RULES));
const { resolved } = loadCompose(parseEnvFile(repoFile('.env.example')));
const hubNames = Object.keys(resolved.services).filter((n) => resolved.services[n].environment?.STATUSHUB_REDIS_URL);

const upstreams = Object.fromEntries(findAll(main, 'upstream').map((u) => [u.args[0], u.children]));
const locations = findAll(rules, 'location');
const location = (...args) => {
  const found = locations.find((l) => l.args.join(' ') === args.join(' '));
  assert.ok(found, `${RULES} has \`location ${args.join(' ')}\``);
  return found.children;
};
const directive = (block, name) => block.find((d) => d.name === name)?.args;
const header = (block, name) => findAll(block, 'proxy_set_header').find((d) => d.args[0] === name)?.args[1];
const upstreamOf = (block) => directive(block, 'proxy_pass')?.[0].replace(/^http:\/\//, '');

test('every upstream lists exactly the compose hub nodes, and the server includes the shared rules', () => {
  assert.ok(Object.keys(upstreams).length > 0, `${MAIN} defines upstreams`);
  for (const [name, body] of Object.entries(upstreams)) {
    const servers = body.filter((d) => d.name === 'server').map((d) => d.args[0]).sort();
    assert.deepEqual(servers, hubNames.map((h) => `${h}:8080`).sort(), `upstream ${name} = the compose hub services`);
  }
  for (const [name, body] of Object.entries(upstreams)) {
    if (!directive(body, 'keepalive')) continue;
    const idle = directive(body, 'keepalive_timeout');
    assert.ok(idle && nginxSeconds(idle[0]) < 60,
      `upstream ${name}: nginx must drop idle connections before the hub's 60 s idle timeout does`);
  }
  const server = findAll(main, 'server').find((d) => d.children);
  assert.deepEqual(directive(server.children, 'include'), ['/etc/nginx/statushub-proxy.conf']);
  assert.deepEqual(directive(server.children, 'listen'), ['8080'], 'listens on the port compose publishes');
});

test('Socket.IO long-polling is sticky: /socket.io/ goes to an upstream hashed on the client address', () => {
  const sio = location('/socket.io/');
  const upstream = upstreams[upstreamOf(sio)];
  assert.ok(upstream, `/socket.io/ proxies to an upstream defined in ${MAIN}`);
  const sticky = upstream.find((d) => d.name === 'ip_hash' ||
    (d.name === 'hash' && /remote_addr|cookie_/.test(d.args[0])));
  assert.ok(sticky, 'the Socket.IO upstream uses ip_hash or hash on the client address (or a cookie)');
});

test('WebSocket upgrades pass through on /socket.io/ and /ws, with HTTP/1.1 and long read timeouts', () => {
  assert.deepEqual(directive(rules, 'proxy_http_version'), ['1.1'], 'HTTP/1.1 to the hubs (needed for Upgrade)');
  const map = findAll(main, 'map').find((m) => m.args[0] === '$http_upgrade');
  assert.ok(map, `${MAIN} maps $http_upgrade to $connection_upgrade`);
  assert.equal(map.args[1], '$connection_upgrade');
  for (const path of ['/socket.io/', '/ws']) {
    const block = path === '/ws' ? location('=', '/ws') : location(path);
    assert.equal(header(block, 'Upgrade'), '$http_upgrade', `${path}: Upgrade passed through`);
    assert.equal(header(block, 'Connection'), '$connection_upgrade', `${path}: Connection: upgrade passed through`);
    assert.ok(nginxSeconds(directive(block, 'proxy_read_timeout')[0]) >= 3600, `${path}: read timeout of an hour or more`);
  }
  assert.equal(header(rules, 'Host'), '$http_host', 'the Host (with port) reaches the hubs, for their same-origin check');
});

test('SSE streams are not buffered and outlive the keep-alive interval', () => {
  const sse = locations.find((l) => l.args[0] === '~' && new RegExp(l.args[1]).test('/v1/accounts/demo/stream'));
  assert.ok(sse, 'a location matching /v1/accounts/{account}/stream');
  assert.equal(new RegExp(sse.args[1]).test('/v1/accounts/demo/events'), false, 'only the stream, not the REST paths');
  assert.deepEqual(directive(sse.children, 'proxy_buffering'), ['off']);
  assert.ok(nginxSeconds(directive(sse.children, 'proxy_read_timeout')[0]) >= 3600);
});

test('nginx -t accepts the config (compose host names pointed at loopback)', () => {
  const nginx = requireProgram('nginx', 'nginx');
  const dir = mkdtempSync(path.join(tmpdir(), 'statushub-nginx-'));
  try {
    let text = repoFile(MAIN)
      .replace('/etc/nginx/statushub-proxy.conf', path.join(REPO_ROOT, RULES))
      .replace(/^pid .*$/m, `pid ${dir}/nginx.pid;`);
    hubNames.forEach((name, i) => { text = text.replaceAll(`${name}:8080`, `127.0.0.1:${18081 + i}`); });
    // Temp dirs of the test's own (nginx -t checks they can be created).
    text = text.replace('http {', `http {\n    client_body_temp_path ${dir}/body;\n    proxy_temp_path ${dir}/proxy;\n` +
      `    fastcgi_temp_path ${dir}/fastcgi;\n    uwsgi_temp_path ${dir}/uwsgi;\n    scgi_temp_path ${dir}/scgi;`);
    writeFileSync(path.join(dir, 'nginx.conf'), text);
    // stdout is not a pipe here: nginx opens /dev/stdout for the access log, which a socket refuses.
    const check = () => run(nginx, ['-t', '-q', '-e', path.join(dir, 'error.log'), '-p', dir, '-c', path.join(dir, 'nginx.conf')],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    const result = check();
    assert.equal(result.status, 0, `nginx -t refused ${MAIN}:\n${result.stderr}${result.stdout}`);
    // And it is not a rubber stamp: a broken rule is refused.
    writeFileSync(path.join(dir, 'nginx.conf'), text.replace('least_conn;', 'least_conn'));
    assert.notEqual(check().status, 0, 'nginx -t must refuse a directive without its semicolon');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
