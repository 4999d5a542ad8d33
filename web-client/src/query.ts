/**
 * TanStack Query helper, typed structurally so `@tanstack/query-core` is not a dependency.
 *
 * Live `status_sync` events name the keys to refetch. A tab that was away needs more: the events
 * replayed on an exact resume arrive through the same listener, and after a reset snapshot no
 * event says what changed, so every query this helper manages is invalidated.
 */
import type { StatushubClient, Unsubscribe } from './client.js';
import type { QueryKey } from './types.js';

/** A query as TanStack passes it to a `predicate`. */
export interface QueryLike {
  readonly queryKey: QueryKey;
}

/** The part of a TanStack `QueryClient` used here. */
export interface QueryInvalidator {
  invalidateQueries(filters: { queryKey?: QueryKey; predicate?: (query: QueryLike) => boolean }): unknown;
}

export interface InvalidationOptions {
  /**
   * Key prefixes this helper also manages (invalidated after a reset), next to the hub's own
   * (`credential-status`, `api-credentials`, `{provider}-connectivity`, `account-balance`) and
   * the first element of every key an event listed.
   */
  queryKeys?: readonly QueryKey[];
}

/** First elements of the keys the hub lists by default (README, `status_sync`). */
const HUB_ROOTS = ['credential-status', 'api-credentials', 'account-balance'];

const startsWith = (key: QueryKey, prefix: QueryKey) =>
  prefix.length <= key.length && prefix.every((part, i) => Object.is(part, key[i]) || JSON.stringify(part) === JSON.stringify(key[i]));

/**
 * Invalidates each key a `status_sync` lists in `invalidateQueries`, live or replayed after a
 * resume; the keys of events that arrive together (a replay) are invalidated once each, as a
 * union. After a reset snapshot it invalidates every query it manages (see
 * {@link InvalidationOptions}). Returns a function that stops it.
 */
export function invalidateOnStatusSync(
  client: Pick<StatushubClient, 'onStatusSync'> & Partial<Pick<StatushubClient, 'onReset'>>,
  queryClient: QueryInvalidator,
  options: InvalidationOptions = {},
): Unsubscribe {
  const roots = new Set<unknown>(HUB_ROOTS);
  const prefixes = options.queryKeys ?? [];
  const manages = (key: QueryKey): boolean =>
    roots.has(key[0]) ||
    (typeof key[0] === 'string' && key[0].endsWith('-connectivity')) ||
    prefixes.some((p) => startsWith(key, p));

  let batch: Map<string, QueryKey> | null = null;
  let stopped = false;
  const flush = () => {
    const keys = batch;
    batch = null;
    if (stopped || !keys) return;
    for (const queryKey of keys.values()) void queryClient.invalidateQueries({ queryKey });
  };

  const stopSync = client.onStatusSync((data) => {
    const keys = (data.invalidateQueries ?? []).filter((k): k is QueryKey => Array.isArray(k));
    if (keys.length === 0) return;
    const first = batch === null;
    batch ??= new Map();
    for (const key of keys) {
      roots.add(key[0]);
      batch.set(JSON.stringify(key), key);
    }
    // Events in one burst (a replay after a resume) share one flush: each key once.
    if (first) queueMicrotask(flush);
  });
  const stopReset =
    client.onReset?.(() => {
      batch = null; // the reset covers them
      void queryClient.invalidateQueries({ predicate: (query) => manages(query.queryKey) });
    }) ?? (() => {});
  return () => {
    stopped = true;
    stopSync();
    stopReset();
  };
}
