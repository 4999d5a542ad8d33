/**
 * Pure state reducer: applies snapshots and events in strict per-account seq order.
 * Never mutates its inputs; unchanged parts of the state keep their identity.
 */
import type { HubEvent, MonitorState, PhoneStatusChanged, Snapshot, StatusSync, SyncProgress } from './types.js';

/** The snapshot's sections, in the order a page shows them: the one list of them. */
export const SECTIONS = ['phones', 'credentials', 'monitors', 'jobs'] as const;
export type Section = (typeof SECTIONS)[number];

export interface HubState {
  /** `null` until the first snapshot (the baseline) arrived. */
  readonly accountId: string | null;
  /** Last applied seq of the account (the snapshot's seq, or the last event's). */
  readonly seq: number;
  /**
   * The epoch `seq` belongs to (the last snapshot's `epoch`), sent back with `since` on resume so
   * the hub can tell a lost history from a gap; absent when the hub sent none.
   */
  readonly epoch?: string;
  readonly phones: Readonly<Record<string, PhoneStatusChanged>>;
  /** Keyed `{provider}:{userId}` (see {@link credentialKey}); {@link credentialsByProvider} groups them. */
  readonly credentials: Readonly<Record<string, StatusSync>>;
  readonly monitors: Readonly<Record<string, MonitorState>>;
  readonly jobs: Readonly<Record<string, SyncProgress>>;
}

export const initialState: HubState = Object.freeze({
  accountId: null,
  seq: 0,
  phones: {},
  credentials: {},
  monitors: {},
  jobs: {},
});

/** What {@link applyEvent} made of an event. */
export type EventOutcome =
  /** In order (seq = lastSeq + 1): the new state. */
  | { type: 'applied'; state: HubState }
  /** seq <= lastSeq: already seen, ignore. */
  | { type: 'duplicate' }
  /** seq > lastSeq + 1: events were missed; the caller must resync. */
  | { type: 'gap'; expected: number; received: number }
  /** No snapshot yet: the caller may hold the event until one arrives. */
  | { type: 'no_baseline' }
  /** Event of another account than the state's (admin tokens): not part of this state. */
  | { type: 'foreign' }
  /** No usable meta (accountId and integer seq): cannot be ordered. */
  | { type: 'invalid' };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** True when `value` looks like a snapshot (object with accountId and integer seq). */
export function isSnapshot(value: unknown): value is Snapshot {
  return isObject(value) && value.accountId != null && isSeq(value.seq);
}

/**
 * Replaces the state with a snapshot. A snapshot is the whole state of the account, so nothing
 * of the old state survives it. One exception: a snapshot without `reset` for the same account
 * that is older than the state (snapshot.seq < state.seq) is stale and returns `state` unchanged.
 * A `reset: true` snapshot always wins.
 */
export function applySnapshot(state: HubState, snapshot: Snapshot): HubState {
  const accountId = String(snapshot.accountId);
  if (!snapshot.reset && state.accountId === accountId && snapshot.seq < state.seq) return state;
  const next: Record<string, unknown> = { accountId, seq: snapshot.seq };
  if (typeof snapshot.epoch === 'string' && snapshot.epoch !== '') next.epoch = snapshot.epoch;
  for (const name of SECTIONS) {
    const section: unknown = snapshot[name];
    next[name] = isObject(section) ? { ...section } : {};
  }
  next.credentials = rekeyCredentials(next.credentials as Record<string, StatusSync>);
  return next as unknown as HubState;
}

/**
 * Applies one event if it is the next in sequence; see {@link EventOutcome}. With `gapsExpected`
 * (a filtered subscription, whose seqs skip the events it does not follow) any newer seq applies.
 */
export function applyEvent(state: HubState, ev: HubEvent, gapsExpected = false): EventOutcome {
  const meta = ev.meta as Partial<HubEvent['meta']> | undefined;
  if (!isObject(meta) || meta.accountId == null || !isSeq(meta.seq)) return { type: 'invalid' };
  if (state.accountId === null) return { type: 'no_baseline' };
  if (String(meta.accountId) !== state.accountId) return { type: 'foreign' };
  if (meta.seq <= state.seq) return { type: 'duplicate' };
  if (meta.seq > state.seq + 1 && !gapsExpected) return { type: 'gap', expected: state.seq + 1, received: meta.seq };
  return { type: 'applied', state: { ...reduceData(state, ev.event, ev.data), seq: meta.seq } };
}

/** Which section an event updates, under which key, with which value (`undefined` removes the key). */
const targets: Record<string, (d: Record<string, unknown>) => [Section, unknown, unknown]> = {
  phone_status_changed: (d) => ['phones', d.phoneNumberId, d],
  status_sync: (d) => ['credentials', typeof d.provider === 'string' && d.userId != null ? credentialKey(d.provider, String(d.userId)) : undefined, d],
  health_changed: (d) => ['monitors', d.monitorId, d.current],
  monitor_removed: (d) => ['monitors', d.monitorId, undefined],
  sync_progress: (d) => ['jobs', d.syncId, d],
};

/**
 * Folds one event's payload into the state maps (no seq handling). Custom events, and payloads
 * without their key field, change nothing.
 */
export function reduceData(state: HubState, event: string, data: unknown): HubState {
  const target = Object.hasOwn(targets, event) ? targets[event] : undefined;
  if (!target || !isObject(data)) return state;
  const [name, key, value] = target(data);
  if (typeof key !== 'string' && typeof key !== 'number') return state;
  if (value === undefined) {
    const { [String(key)]: _removed, ...rest } = state[name];
    return { ...state, [name]: rest };
  }
  return { ...state, [name]: { ...state[name], [key]: value } };
}

/** The section and key an event changes; `undefined` for custom events and payloads without their key. */
export function eventSection(event: string, data: unknown): [Section, string] | undefined {
  const target = Object.hasOwn(targets, event) ? targets[event] : undefined;
  if (!target || !isObject(data)) return undefined;
  const [name, key] = target(data);
  return typeof key === 'string' || typeof key === 'number' ? [name, String(key)] : undefined;
}

/** The key of a credential entry: `{provider}:{userId}`, as the hub keys the snapshot. */
export const credentialKey = (provider: string, userId: string): string => `${provider}:${userId}`;

/**
 * A hub from before per-user keys stored entries under the bare provider name; they carry
 * `provider` and `userId`, so they move to their `{provider}:{userId}` key unless a newer entry
 * already has it.
 */
function rekeyCredentials(credentials: Record<string, StatusSync>): Record<string, StatusSync> {
  const out: Record<string, StatusSync> = {};
  const legacy: StatusSync[] = [];
  for (const [key, entry] of Object.entries(credentials)) {
    if (isObject(entry) && typeof entry.provider === 'string' && entry.userId != null && key === entry.provider) legacy.push(entry);
    else out[key] = entry;
  }
  for (const entry of legacy) {
    const key = credentialKey(entry.provider, String(entry.userId));
    if (!Object.hasOwn(out, key)) out[key] = entry;
  }
  return out;
}

/** The provider-level view: each provider's entries, one per user, sorted by user id. */
export function credentialsByProvider(state: Pick<HubState, 'credentials'>): Record<string, StatusSync[]> {
  const out: Record<string, StatusSync[]> = {};
  for (const entry of Object.values(state.credentials)) (out[entry.provider] ??= []).push(entry);
  for (const list of Object.values(out)) list.sort((a, b) => String(a.userId).localeCompare(String(b.userId)));
  return out;
}

/** One user's last credential test of one provider, or `undefined`. */
export const credentialOf = (state: Pick<HubState, 'credentials'>, provider: string, userId: string): StatusSync | undefined =>
  state.credentials[credentialKey(provider, userId)];
