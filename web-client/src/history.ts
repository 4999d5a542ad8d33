/**
 * Monitor history and uptime: typed reads of `GET …/monitors/{id}/history`, `…/{id}/uptime` and
 * `…/monitors/stats`, and the small pure helpers a dashboard draws them with (an uptime bar of
 * recent checks, a latency sparkline as an SVG path), so no chart library is needed.
 */
import { errorFromResponse, StatushubError } from './errors.js';
import type { MonitorHealth } from './types.js';

/** One check as the hub kept it (the last 24 h are kept one by one). */
export interface MonitorCheck {
  /** RFC 3339. */
  at: string;
  /** The check passed (answered in time with an expected status). */
  ok: boolean;
  /** The monitor's health after this check. */
  health: MonitorHealth;
  latencyMs: number;
  httpStatus?: number;
  error?: string;
  /** The `health_changed` kind, when this check changed the health. */
  transition?: string;
}

/** An hour of older checks, folded. */
export interface MonitorBucket {
  /** Start of the hour, RFC 3339. */
  start: string;
  checks: number;
  ok: number;
  healthy: number;
  unhealthy: number;
  unknown: number;
  transitions: number;
  latencyAvgMs: number;
  latencyMinMs: number;
  latencyMaxMs: number;
}

export interface MonitorTransition {
  at: string;
  kind: 'status_change' | 'health_change' | 'error_state' | 'recovery';
  health: MonitorHealth;
}

/** `GET …/monitors/{id}/history`, oldest first. */
export interface MonitorHistory {
  accountId: string;
  monitorId: string;
  from: string;
  to: string;
  checks: MonitorCheck[];
  buckets: MonitorBucket[];
  transitions: MonitorTransition[];
}

/** Figures per window; `uptime` is `null` for a window without checks. */
export interface MonitorUptime {
  accountId: string;
  monitorId: string;
  /** RFC 3339: the windows end here. */
  at: string;
  uptime: { '24h': number | null; '7d': number | null; '30d': number | null };
  checks: { '24h': number; '7d': number; '30d': number };
  /** Nearest-rank, over the passed checks of the last 24 h. */
  latencyMs: { p50: number | null; p95: number | null };
}

/** `GET …/monitors/stats`. */
export interface MonitorStats {
  accountId: string;
  monitors: number;
  healthy: number;
  unhealthy: number;
  unknown: number;
  transitions24h: number;
  checks24h: number;
}

/** Where and as whom to read: the hub's URL and a client token (or API key). */
export interface HistoryReadOptions {
  url: string;
  token: string | (() => string);
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** A time as RFC 3339, Unix milliseconds or a `Date`. */
export type TimeLike = string | number | Date;

export interface HistoryRange {
  /** Default: `to` − 24 h. */
  from?: TimeLike;
  /** Default: now. */
  to?: TimeLike;
  /** At most this many checks, the newest of the range (1–100000; the hub's default 10000). */
  limit?: number;
}

const timeParam = (t: TimeLike): string => (t instanceof Date ? String(t.getTime()) : String(t));

async function read<T>(options: HistoryReadOptions, path: string, query: Record<string, string> = {}): Promise<T> {
  const token = typeof options.token === 'function' ? options.token() : options.token;
  const doFetch = options.fetch ?? globalThis.fetch;
  const search = new URLSearchParams(query).toString();
  const base = options.url.replace(/\/+$/, '');
  let response: Response;
  try {
    response = await doFetch(`${base}${path}${search ? `?${search}` : ''}`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    });
  } catch (e) {
    throw new StatushubError(e instanceof Error ? e.message : String(e), 'transient', 'network', undefined, { cause: e });
  }
  if (!response.ok) throw await errorFromResponse(response);
  return (await response.json()) as T;
}

const monitorPath = (accountId: string, monitorId: string) =>
  `/v1/accounts/${encodeURIComponent(accountId)}/monitors/${encodeURIComponent(monitorId)}`;

/** A monitor's checks, hourly buckets and transitions in a range (default: the last 24 h). */
export function fetchMonitorHistory(
  options: HistoryReadOptions,
  accountId: string,
  monitorId: string,
  range: HistoryRange = {},
): Promise<MonitorHistory> {
  const query: Record<string, string> = {};
  if (range.from !== undefined) query.from = timeParam(range.from);
  if (range.to !== undefined) query.to = timeParam(range.to);
  if (range.limit !== undefined) query.limit = String(range.limit);
  return read(options, `${monitorPath(accountId, monitorId)}/history`, query);
}

/** A monitor's uptime over 24 h, 7 d and 30 d, and its latency p50/p95 over 24 h. */
export function fetchMonitorUptime(options: HistoryReadOptions, accountId: string, monitorId: string): Promise<MonitorUptime> {
  return read(options, `${monitorPath(accountId, monitorId)}/uptime`);
}

/** The account's monitors by health, and its checks and transitions of the last 24 h. */
export function fetchMonitorStats(options: HistoryReadOptions, accountId: string): Promise<MonitorStats> {
  return read(options, `/v1/accounts/${encodeURIComponent(accountId)}/monitors/stats`);
}

/** One slot of an uptime bar: a check that passed, one that failed, or no check (yet). */
export type UptimeSlot = 'up' | 'down' | 'none';

/**
 * The last `slots` checks as an uptime bar, oldest first; when there are fewer checks the bar
 * starts with `none`, so the newest check is always the last slot.
 */
export function uptimeBar(checks: readonly Pick<MonitorCheck, 'ok'>[], slots: number): UptimeSlot[] {
  const n = Math.max(0, Math.floor(slots));
  const recent = n === 0 ? [] : checks.slice(-n);
  const bar: UptimeSlot[] = new Array<UptimeSlot>(n - recent.length).fill('none');
  for (const check of recent) bar.push(check.ok ? 'up' : 'down');
  return bar;
}

/**
 * An SVG path (`d`) drawing `values` left to right across `width` × `height`, the largest value
 * at the top and 0 at the bottom (a flat line at the bottom when all are 0). Empty for no value;
 * one value is drawn as a flat line across.
 */
export function sparklinePath(values: readonly number[], width: number, height: number): string {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return '';
  const max = Math.max(...finite, 0);
  const y = (v: number) => round(max > 0 ? height - (Math.max(0, v) / max) * height : height);
  if (finite.length === 1) return `M0 ${y(finite[0] as number)}H${round(width)}`;
  const step = width / (finite.length - 1);
  return finite.map((v, i) => `${i === 0 ? 'M' : 'L'}${round(i * step)} ${y(v)}`).join('');
}

const round = (n: number) => Math.round(n * 100) / 100;

/** An uptime percentage for people: `99.95%`, `100%`, or `—` without checks. */
export function formatUptime(percent: number | null | undefined): string {
  if (percent == null || !Number.isFinite(percent)) return '—';
  if (percent >= 100) return '100%';
  // Never round a real outage up to 100%.
  return `${(Math.floor(percent * 100) / 100).toFixed(2)}%`;
}
