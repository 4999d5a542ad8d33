/**
 * React bindings. `react` (>= 18) is an optional peer dependency, needed only for this module.
 *
 * One client per provider: it is created lazily (a render React throws away never connects),
 * opened in an effect, and closed on unmount one task later, so StrictMode's mount → unmount →
 * mount in development keeps the one connection instead of opening a second. Hooks read the
 * client through `useSyncExternalStore`, and `useStatushub(selector)` re-renders a component only
 * when its slice changes.
 */
import { createContext, createElement, useContext, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import type { ReactNode } from 'react';
import { connect } from './client.js';
import type { Connection, ConnectionState, ConnectOptions, StatushubClient } from './client.js';
import { invalidateOnStatusSync } from './query.js';
import type { InvalidationOptions, QueryInvalidator } from './query.js';
import type { HubState } from './state.js';

const ClientContext = createContext<StatushubClient | null>(null);

export type StatushubProviderProps =
  | ({ client: StatushubClient; children?: ReactNode } & { [K in keyof ConnectOptions]?: never })
  | (ConnectOptions & { client?: never; children?: ReactNode });

/** Clients a provider closes on unmount, with the pending close (cancelled by a remount). */
const pendingClose = new WeakMap<StatushubClient, ReturnType<typeof setTimeout>>();

/**
 * Makes a client available to the hooks below. Either pass `client` (made with `connect()`
 * anywhere, e.g. at module level; the provider neither opens a second connection nor closes it),
 * or the `connect()` options (`url`, `token`, …): the provider then creates the client once,
 * opens it on mount and closes it on unmount. Later changes of these props are ignored; remount
 * the provider (a `key`) to connect with others.
 */
export function StatushubProvider(props: StatushubProviderProps) {
  const external = props.client;
  // useState's initializer may run twice under StrictMode: the client is lazy, so the spare
  // one never opens a socket.
  const [own] = useState<StatushubClient | null>(() =>
    external ? null : connect({ ...(props as ConnectOptions), autoConnect: false }),
  );
  const client = external ?? own!;
  useEffect(() => {
    clearTimeout(pendingClose.get(client));
    pendingClose.delete(client);
    client.open();
    if (external) return undefined;
    return () => {
      // One task later: StrictMode's immediate remount cancels it; a real unmount closes.
      pendingClose.set(
        client,
        setTimeout(() => {
          pendingClose.delete(client);
          client.close();
        }, 0),
      );
    };
  }, [client, external]);
  return createElement(ClientContext.Provider, { value: client }, props.children);
}

/** The provider's client (for `on(...)`, `fetchStatus()`, …). Throws outside a provider. */
export function useStatushubClient(): StatushubClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error('useStatushub hooks need a <StatushubProvider> above them');
  return client;
}

const identity = (s: HubState) => s;

/**
 * A slice of the hub state, e.g. `useStatushub((s) => s.phones['wa-1'])`. The component
 * re-renders only when the selected value changes (`isEqual`, default `Object.is`); a selector
 * may build a new object, then pass an `isEqual` such as {@link shallowEqual}. Without a
 * selector: the whole state.
 */
export function useStatushub(): HubState;
export function useStatushub<T>(selector: (state: HubState) => T, isEqual?: (a: T, b: T) => boolean): T;
export function useStatushub<T>(selector?: (state: HubState) => T, isEqual: (a: T, b: T) => boolean = Object.is): T | HubState {
  const client = useStatushubClient();
  const select = (selector ?? identity) as (state: HubState) => T;
  // Memo of the last (state, selection): getSnapshot must return the same value until it changes.
  const memo = useRef<{ state: HubState; value: T; select: typeof select } | null>(null);
  const get = (): T => {
    const state = client.getState();
    const last = memo.current;
    if (last && last.state === state && last.select === select) return last.value;
    const value = select(state);
    if (last && isEqual(last.value, value)) {
      memo.current = { state, value: last.value, select };
      return last.value;
    }
    memo.current = { state, value, select };
    return value;
  };
  return useSyncExternalStore(client.subscribe, get, get);
}

/** `{ state, lastResume, error }`; re-renders when any of them changes. */
export function useConnection(): Connection {
  const client = useStatushubClient();
  const get = () => client.connection;
  return useSyncExternalStore(client.onConnection, get, get);
}

/**
 * Keeps `queryClient` fresh from the hub: each key a `status_sync` lists, also replayed after a
 * resume, and every query the helper manages after a reset snapshot (see `invalidateOnStatusSync`).
 */
export function useStatusSyncInvalidation(queryClient: QueryInvalidator, options?: InvalidationOptions): void {
  const client = useStatushubClient();
  const keys = JSON.stringify(options?.queryKeys ?? []);
  useEffect(
    () => invalidateOnStatusSync(client, queryClient, options),
    // eslint-disable-next-line react-hooks/exhaustive-deps -- options compared by value
    [client, queryClient, keys],
  );
}

/** Equal when both are the same object or objects with the same keys and `Object.is` values. */
export function shallowEqual<T>(a: T, b: T): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && Object.is((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** @deprecated Since 0.2: `useConnection().state` under a provider. Reads a client passed in. */
export function useStatushubStatus(client: Pick<StatushubClient, 'onStatus' | 'status'>): ConnectionState {
  const get = (): ConnectionState => client.status;
  return useSyncExternalStore(client.onStatus, get, get);
}
