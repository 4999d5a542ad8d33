/** TanStack Query helper, typed structurally so `@tanstack/query-core` is not a dependency. */
import type { StatushubClient, Unsubscribe } from './client.js';
import type { QueryKey } from './types.js';

/** The part of a TanStack `QueryClient` used here. */
export interface QueryInvalidator {
  invalidateQueries(filters: { queryKey: QueryKey }): unknown;
}

/**
 * On every `status_sync`, invalidates each query key it lists in `invalidateQueries`.
 * Returns a function that stops it.
 */
export function invalidateOnStatusSync(
  client: Pick<StatushubClient, 'onStatusSync'>,
  queryClient: QueryInvalidator,
): Unsubscribe {
  return client.onStatusSync((data) => {
    for (const queryKey of data.invalidateQueries ?? []) {
      if (Array.isArray(queryKey)) void queryClient.invalidateQueries({ queryKey });
    }
  });
}
