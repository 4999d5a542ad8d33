/** React bindings. `react` (>= 18) is an optional peer dependency, needed only for this module. */
import { useSyncExternalStore } from 'react';
import type { ConnectionStatus, StatushubClient } from './client.js';
import type { HubState } from './state.js';

/** The client's current state; re-renders on every change. */
export function useStatushub(client: Pick<StatushubClient, 'subscribe' | 'getState'>): HubState {
  return useSyncExternalStore(client.subscribe, client.getState, client.getState);
}

/** The client's connection status; re-renders when it changes. */
export function useStatushubStatus(client: Pick<StatushubClient, 'onStatus' | 'status'>): ConnectionStatus {
  const get = (): ConnectionStatus => client.status;
  return useSyncExternalStore(client.onStatus, get, get);
}
