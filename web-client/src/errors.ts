/**
 * The SDK's one error type. Apps need to tell apart an error the client is already recovering
 * from (a dropped transport: it retries) from one that stopped it (the hub refused the token),
 * and both from a bug in their own listener; `kind` says which, `code` says what.
 */

/**
 * `transient`: the client keeps retrying and the error clears when it is ready again.
 * `fatal`: the client stopped (`disconnected`); a new token or a new client is needed.
 * `listener`: an app listener threw; the client carries on.
 */
export type ErrorKind = 'transient' | 'fatal' | 'listener';

export class StatushubError extends Error {
  override readonly name = 'StatushubError';
  constructor(
    message: string,
    readonly kind: ErrorKind,
    /** A stable word: the hub's code (`unauthorized`, `forbidden`, …) or the client's (`transport`, `protocol`, `gave_up`, `listener`). */
    readonly code: string,
    /** The HTTP status, for errors of `fetchStatus()`. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** True when the client stopped because of it. */
  get fatal(): boolean {
    return this.kind === 'fatal';
  }
}

/** Refusals the client cannot recover from by retrying: the hub said no to this token. */
const FATAL_REFUSAL = /unauthori[sz]ed|forbidden|expired|invalid|bad[_ ]request|signature|not allowed|refused/i;

/**
 * A `connect_error`: a refusal by the hub (socket.io-client does not retry those) is fatal, a
 * transport failure while socket.io-client keeps trying is transient.
 */
export function refusalError(error: unknown, retrying: boolean): StatushubError {
  const message = error instanceof Error ? error.message : String(error);
  const fatal = !retrying || FATAL_REFUSAL.test(message);
  const code = /forbidden/i.test(message)
    ? 'forbidden'
    : /expired/i.test(message)
      ? 'expired'
      : FATAL_REFUSAL.test(message)
        ? 'unauthorized'
        : fatal
          ? 'refused'
          : 'transport';
  return new StatushubError(message, fatal ? 'fatal' : 'transient', code, undefined, { cause: error });
}

/** An HTTP answer that is not 2xx, in the contract's `{"error":{"code","message"}}` shape when it is one. */
export async function errorFromResponse(response: Response): Promise<StatushubError> {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body?.error?.code === 'string') code = body.error.code;
    if (typeof body?.error?.message === 'string') message = body.error.message;
  } catch {
    // Not JSON: keep the status line.
  }
  const kind = response.status === 401 || response.status === 403 || response.status === 404 ? 'fatal' : 'transient';
  return new StatushubError(message, kind, code, response.status);
}

/** Wraps anything thrown into a StatushubError of `kind`. */
export function toStatushubError(e: unknown, kind: ErrorKind, code: string): StatushubError {
  if (e instanceof StatushubError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new StatushubError(message, kind, code, undefined, { cause: e });
}
