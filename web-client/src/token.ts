/**
 * Reading a client token (JWT) without verifying it: the hub verifies every token; the SDK and
 * the status page only read claims for display, an early "expired" message, and to tell their
 * own account's events from an admin's other accounts. The one decoder in the SDK.
 */

/** The claims statushub tokens carry (see the contract's "Identity"). */
export interface TokenClaims {
  sub?: unknown;
  account_id?: unknown;
  exp?: unknown;
  role?: unknown;
}

/** The token's claims; `{}` when the token cannot be read. */
export function decodeClaims(token: string): TokenClaims {
  try {
    const payload = token.split('.')[1];
    if (!payload) return {};
    const claims: unknown = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/')));
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? (claims as TokenClaims) : {};
  } catch {
    return {};
  }
}

/** The `account_id` claim as a string; `undefined` when absent or unreadable. */
export function tokenAccount(token: string): string | undefined {
  const id = decodeClaims(token).account_id;
  return id == null ? undefined : String(id);
}
