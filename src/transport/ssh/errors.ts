/**
 * The errors of the SSH transport: a connection that could not be made or
 * was lost ({@linkcode SshConnectionError}, saying whether trying again may
 * help), a host key other than the expected one, and a refused login.
 *
 * @module
 */

// Errors

/**
 * A connection to a host could not be made, or was lost. `retriable` says
 * whether trying again may help (a refused or timed-out connection) or not
 * (wrong key, changed host key).
 *
 * @example
 * ```ts
 * import { SshConnectionError } from "./errors.ts";
 *
 * const error = new SshConnectionError("Connection to 10.0.0.5:22 lost", { retriable: true });
 * console.log(error.name); // "SshConnectionError"
 * ```
 */
export class SshConnectionError extends Error {
  /** Whether trying again may succeed. */
  readonly retriable: boolean;
  /**
   * Makes the error.
   *
   * @param message What failed, naming the host.
   * @param options The cause, and whether trying again may help.
   */
  constructor(
    message: string,
    options: { cause?: unknown; retriable?: boolean } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "SshConnectionError";
    this.retriable = options.retriable ?? false;
  }
}

/**
 * The host presented a key other than the pinned or known one: a different
 * machine, a reinstalled one, or someone in between. Never retried.
 *
 * @example
 * ```ts
 * import { HostKeyMismatchError } from "./errors.ts";
 *
 * const error = new HostKeyMismatchError("10.0.0.5:22", "SHA256:aaa", "SHA256:bbb");
 * console.log(error.message.includes("10.0.0.5:22")); // true
 * ```
 */
export class HostKeyMismatchError extends SshConnectionError {
  /** `host:port` of the server. */
  readonly address: string;
  /** Fingerprint(s) of the key(s) expected. */
  readonly expected: string;
  /** Fingerprint of the key the server presented. */
  readonly actual: string;
  /**
   * Makes the error.
   *
   * @param address `host:port`.
   * @param expected The fingerprint(s) expected.
   * @param actual The fingerprint presented.
   * @param reason Why it was refused, when not a plain mismatch.
   */
  constructor(
    address: string,
    expected: string,
    actual: string,
    reason?: string,
  ) {
    super(
      `Host key verification failed for ${address}: ` +
        (reason ?? `expected ${expected}, the server presented ${actual}`) +
        ". The machine at this address is not the one first contacted (or has new keys); " +
        "refusing to connect.",
      { retriable: false },
    );
    this.name = "HostKeyMismatchError";
    this.address = address;
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * The host refused the user and key. Never retried.
 *
 * @example
 * ```ts
 * import { SshAuthenticationError } from "./errors.ts";
 *
 * const error = new SshAuthenticationError("ubuntu@10.0.0.5:22");
 * console.log(error.message.includes("ubuntu@10.0.0.5:22")); // true
 * ```
 */
export class SshAuthenticationError extends SshConnectionError {
  /** `user@host:port`. */
  readonly target: string;
  /**
   * Makes the error.
   *
   * @param target `user@host:port`.
   * @param options The cause.
   */
  constructor(target: string, options: { cause?: unknown } = {}) {
    super(
      `Authentication refused by ${target}: the host does not accept this user with the ` +
        "given private key (publickey)",
      { cause: options.cause, retriable: false },
    );
    this.name = "SshAuthenticationError";
    this.target = target;
  }
}

/**
 * An error as an {@linkcode SshConnectionError}: itself when it is one, else
 * one saying `<what>: <its message>`, with it as the cause.
 *
 * @param error What was thrown.
 * @param what What failed, naming the host, e.g. `"Cannot connect to 10.0.0.5:22"`.
 * @param retriable Whether trying again may help, when `error` is no
 *   {@linkcode SshConnectionError}.
 * @returns The error.
 *
 * @example
 * ```ts
 * import { connectionError } from "./errors.ts";
 *
 * const error = connectionError(new Error("ECONNRESET"), "Cannot connect to 10.0.0.5:22");
 * console.log(error.message); // Cannot connect to 10.0.0.5:22: ECONNRESET
 * ```
 */
export function connectionError(
  error: unknown,
  what: string,
  retriable = false,
): SshConnectionError {
  if (error instanceof SshConnectionError) return error;
  return new SshConnectionError(
    `${what}: ${(error as Error)?.message ?? error}`,
    { cause: error, retriable },
  );
}
