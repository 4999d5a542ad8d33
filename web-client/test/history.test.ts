import { describe, expect, it } from 'vitest';
import {
  fetchMonitorHistory,
  fetchMonitorStats,
  fetchMonitorUptime,
  formatUptime,
  sparklinePath,
  uptimeBar,
} from '../src/history.js';
import type { MonitorUptime } from '../src/history.js';

/** A fetch that records each request and answers with `status` and `body`. */
function recording(status: number, body: unknown) {
  const calls: Array<{ url: string; headers: Record<string, string> }> = [];
  const fetch = (async (url: string, init?: RequestInit) => {
    calls.push({ url, headers: (init?.headers ?? {}) as Record<string, string> });
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  }) as unknown as typeof globalThis.fetch;
  return { calls, fetch };
}

const uptime: MonitorUptime = {
  accountId: 'acme',
  monitorId: 'api',
  at: '2026-11-30T12:00:00Z',
  uptime: { '24h': 99.5, '7d': 99.9, '30d': null },
  checks: { '24h': 200, '7d': 1000, '30d': 0 },
  latencyMs: { p50: 12, p95: 40 },
};

describe('history reads', () => {
  it('reads uptime with the token and escapes the path', async () => {
    const { calls, fetch } = recording(200, uptime);
    const got = await fetchMonitorUptime({ url: 'http://hub.test/', token: 'tok', fetch }, 'ac me', 'a/b');
    expect(got).toEqual(uptime);
    expect(calls[0]?.url).toBe('http://hub.test/v1/accounts/ac%20me/monitors/a%2Fb/uptime');
    expect(calls[0]?.headers.authorization).toBe('Bearer tok');
  });

  it('sends the range as query parameters, dates as milliseconds', async () => {
    const { calls, fetch } = recording(200, { checks: [], buckets: [], transitions: [] });
    await fetchMonitorHistory({ url: 'http://hub.test', token: () => 'fresh', fetch }, 'acme', 'api', {
      from: new Date(1000),
      to: '2026-11-30T12:00:00Z',
      limit: 30,
    });
    const url = new URL(calls[0]?.url ?? '');
    expect(url.pathname).toBe('/v1/accounts/acme/monitors/api/history');
    expect(Object.fromEntries(url.searchParams)).toEqual({ from: '1000', to: '2026-11-30T12:00:00Z', limit: '30' });
    expect(calls[0]?.headers.authorization).toBe('Bearer fresh');
    await fetchMonitorHistory({ url: 'http://hub.test', token: 't', fetch }, 'acme', 'api');
    expect(calls[1]?.url).toBe('http://hub.test/v1/accounts/acme/monitors/api/history');
  });

  it("turns the hub's error answer into a StatushubError", async () => {
    const { fetch } = recording(404, { error: { code: 'not_found', message: 'no monitor "x"' } });
    const failed = fetchMonitorStats({ url: 'http://hub.test', token: 't', fetch }, 'acme');
    await expect(failed).rejects.toMatchObject({ name: 'StatushubError', code: 'not_found', status: 404, kind: 'fatal' });
  });

  it('calls a network failure transient', async () => {
    const fetch = (async () => {
      throw new TypeError('Failed to fetch');
    }) as unknown as typeof globalThis.fetch;
    await expect(fetchMonitorStats({ url: 'http://hub.test', token: 't', fetch }, 'acme')).rejects.toMatchObject({
      kind: 'transient',
      code: 'network',
    });
  });
});

describe('drawing helpers', () => {
  it('an uptime bar shows the newest checks last and pads the start', () => {
    const checks = [{ ok: true }, { ok: false }, { ok: true }];
    expect(uptimeBar(checks, 5)).toEqual(['none', 'none', 'up', 'down', 'up']);
    expect(uptimeBar(checks, 2)).toEqual(['down', 'up']);
    expect(uptimeBar(checks, 0)).toEqual([]);
    expect(uptimeBar([], 2)).toEqual(['none', 'none']);
  });

  it('a sparkline puts the largest value at the top and zero at the bottom', () => {
    expect(sparklinePath([0, 10, 5], 100, 20)).toBe('M0 20L50 0L100 10');
    expect(sparklinePath([7], 100, 20)).toBe('M0 0H100');
    expect(sparklinePath([0, 0], 10, 20)).toBe('M0 20L10 20');
    expect(sparklinePath([], 10, 20)).toBe('');
    expect(sparklinePath([1, Number.NaN, 3], 10, 30)).toBe('M0 20L10 0');
  });

  it('uptime is never rounded up to 100%', () => {
    expect(formatUptime(99.999)).toBe('99.99%');
    expect(formatUptime(100)).toBe('100%');
    expect(formatUptime(2 / 3 * 100)).toBe('66.66%');
    expect(formatUptime(null)).toBe('—');
  });
});
