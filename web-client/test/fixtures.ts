import type { EventMeta, HealthChanged, PhoneStatusChanged, Snapshot, StatusSync, SyncProgress } from '../src/types.js';

export const ACCOUNT = 'acct-1';

export const meta = (seq: number, accountId = ACCOUNT): EventMeta => ({
  accountId,
  seq,
  id: `evt-${accountId}-${seq}`,
  publishedAt: '2026-01-01T00:00:00Z',
});

export const phone = (phoneNumberId: string, isActive = true): PhoneStatusChanged => ({
  phoneNumberId,
  isActive,
  qualityRating: 'GREEN',
  displayPhoneNumber: '+1 555 0100',
  verifiedName: 'Acme',
  lastTestedAt: '2026-01-01T00:00:00Z',
  status: isActive ? 'ACTIVE' : 'INACTIVE',
  timestamp: '2026-01-01T00:00:00Z',
});

export const statusSync = (provider: string, userId = 'u1', success = true): StatusSync => ({
  provider,
  userId,
  success,
  cacheInvalidated: true,
  statusRefreshed: true,
  servicesNotified: ['billing'],
  triggeredBy: 'credential-test',
  timestamp: '2026-01-01T00:00:00Z',
  invalidateQueries: [['credential-status', userId]],
});

export const health = (monitorId: string, h: 'healthy' | 'unhealthy'): HealthChanged => ({
  monitorId,
  kind: 'health_change',
  source: 'heartbeat',
  previous: { health: h === 'healthy' ? 'unhealthy' : 'healthy' },
  current: { health: h, latencyMs: 12, httpStatus: h === 'healthy' ? 200 : 500, lastChecked: '2026-01-01T00:00:00Z' },
  timestamp: '2026-01-01T00:00:00Z',
});

export const job = (syncId: string, done: number, total = 10): SyncProgress => ({
  syncId,
  kind: 'contacts',
  status: done >= total ? 'completed' : 'running',
  progress: { done, total },
  startedAt: '2026-01-01T00:00:00Z',
});

export const snapshot = (seq: number, extra: Partial<Snapshot> = {}): Snapshot => ({
  accountId: ACCOUNT,
  seq,
  phones: {},
  credentials: {},
  monitors: {},
  jobs: {},
  ...extra,
});

/** An unsigned JWT-shaped token carrying `account_id` (the client only reads the claim). */
export const jwt = (accountId: string, tag = ''): string => {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'user-1', account_id: accountId, exp: 9e9, tag })}.sig`;
};
