/**
 * The options of an SSH connection: what callers give
 * ({@linkcode SshConnectOptions}), checked once into the form the
 * connection uses ({@linkcode resolveOptions}).
 *
 * @module
 */
import { Buffer } from "node:buffer";
// @ts-types="npm:@types/ssh2@1.15.6"
import { utils } from "npm:ssh2@1.17.0";
import type { SshConnectionError } from "./errors.ts";
import { type HostKey, parsePublicKey } from "../host_keys.ts";

/**
 * Decides whether to trust a host key at first contact.
 *
 * @param key The key the server presented.
 * @returns Whether to accept it.
 */
export type HostKeyVerifier = (key: HostKey) => boolean | Promise<boolean>;

/** Options of `SshConnection.connect` (see `connection.ts`). */
export interface SshConnectOptions {
  /** Host name or address. */
  host: string;
  /**
   * The port.
   *
   * @default {22}
   */
  port?: number;
  /** The login user. */
  user: string;
  /** The private key (OpenSSH or PEM), as text or bytes. Never logged. */
  privateKey: string | Uint8Array;
  /** The passphrase of an encrypted private key. */
  passphrase?: string;
  /**
   * The host's key: an OpenSSH public key line (`"ssh-ed25519 AAAA…"`), a
   * fingerprint (`"SHA256:…"`), or a function that decides at first contact.
   * Without it the host's entry in `knownHostsPath` is used, and without one
   * the first key seen is trusted. Whichever way, the key accepted first is
   * pinned for the life of the connection and every reconnect must present
   * it.
   */
  hostKey?: string | HostKeyVerifier;
  /**
   * An OpenSSH `known_hosts` file to look the host up in, when `hostKey` is
   * not given. Read at first contact; a missing file is no error.
   */
  knownHostsPath?: string;
  /**
   * Whether to trust a host whose key is neither given nor in
   * `knownHostsPath` (like OpenSSH's `StrictHostKeyChecking=accept-new`).
   * When `false`, such a host is refused with a `HostKeyMismatchError`.
   *
   * @default {true}
   */
  acceptUnknownHostKey?: boolean;
  /**
   * Time allowed for one attempt (TCP connect, handshake, authentication), in
   * milliseconds.
   *
   * @default {15000}
   */
  connectTimeout?: number;
  /**
   * How many times to try again after a failed attempt that may succeed on a
   * retry (refused, timed out, reset), at first connect and at each
   * reconnect. Authentication and host key failures are never retried.
   *
   * @default {5}
   */
  retries?: number;
  /**
   * The first backoff delay in milliseconds; it doubles on each retry, with
   * jitter (each delay is drawn between half and all of its nominal value).
   *
   * @default {250}
   */
  retryDelay?: number;
  /**
   * The longest backoff delay, in milliseconds.
   *
   * @default {5000}
   */
  maxRetryDelay?: number;
  /**
   * Interval of SSH keepalive messages in milliseconds; `0` turns them off.
   * After `keepaliveCountMax` unanswered ones the connection counts as lost.
   *
   * @default {10000}
   */
  keepaliveInterval?: number;
  /**
   * Unanswered keepalives before the connection counts as lost.
   *
   * @default {3}
   */
  keepaliveCountMax?: number;
  /**
   * Reconnect on its own when the connection drops. When `false`, a drop
   * closes the connection.
   *
   * @default {true}
   */
  reconnect?: boolean;
  /** Called each time the connection drops, with the reason, before reconnecting. */
  onDisconnect?: (error: SshConnectionError) => void;
  /** Called each time a reconnect succeeds. */
  onReconnect?: () => void;
  /** Aborts the first connect (retries included). */
  signal?: AbortSignal;
}

/** {@linkcode SshConnectOptions} checked, with their defaults filled in. */
export interface ResolvedOptions {
  host: string;
  port: number;
  user: string;
  privateKey: Buffer;
  passphrase?: string;
  hostKey?: string | HostKeyVerifier;
  knownHostsPath?: string;
  acceptUnknownHostKey: boolean;
  connectTimeout: number;
  retries: number;
  retryDelay: number;
  maxRetryDelay: number;
  keepaliveInterval: number;
  keepaliveCountMax: number;
  reconnect: boolean;
  onDisconnect?: (error: SshConnectionError) => void;
  onReconnect?: () => void;
}

/**
 * Checks a connection's options and fills in their defaults.
 *
 * @param options The options as given.
 * @returns The options the connection uses; the private key as a `Buffer`.
 * @throws {TypeError} Naming the option to fix (never quoting the key).
 *
 * @example
 * ```ts
 * import { resolveOptions } from "./options.ts";
 *
 * try {
 *   resolveOptions({ host: "10.0.0.5", user: "sky", privateKey: "nope", port: 0 });
 * } catch (error) {
 *   console.log((error as Error).message); // Cannot connect over SSH: 'port' must be an integer from 1 to 65535, got 0
 * }
 * ```
 */
export function resolveOptions(options: SshConnectOptions): ResolvedOptions {
  const fail = (message: string) => {
    throw new TypeError(`Cannot connect over SSH: ${message}`);
  };
  if (typeof options?.host !== "string" || !options.host) {
    fail(
      `'host' must be a non-empty string, got ${JSON.stringify(options?.host)}`,
    );
  }
  if (typeof options.user !== "string" || !options.user) {
    fail(
      `'user' must be a non-empty string, got ${JSON.stringify(options.user)}`,
    );
  }
  const port = options.port ?? 22;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    fail(`'port' must be an integer from 1 to 65535, got ${port}`);
  }
  const key = options.privateKey;
  if (typeof key !== "string" && !(key instanceof Uint8Array)) {
    // Never quote the key itself.
    fail(`'privateKey' must be a string or a Uint8Array, got ${typeof key}`);
  }
  const number = (
    name: keyof SshConnectOptions,
    value: unknown,
    fallback: number,
  ) => {
    const v = value ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      fail(
        `'${name}' must be a non-negative number, got ${JSON.stringify(value)}`,
      );
    }
    return v as number;
  };
  const privateKey = typeof key === "string"
    ? Buffer.from(key)
    : Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const parsed = utils.parseKey(privateKey, options.passphrase);
  const first = Array.isArray(parsed) ? parsed[0] : parsed;
  if (parsed instanceof Error || !first?.isPrivateKey()) {
    // The parser's message never quotes the key.
    fail(
      `'privateKey' is not a usable private key: ${
        parsed instanceof Error ? parsed.message : "it is a public key"
      }`,
    );
  }
  const hostKey = options.hostKey;
  if (typeof hostKey === "string" && !hostKey.startsWith("SHA256:")) {
    try {
      parsePublicKey(hostKey);
    } catch (error) {
      fail(
        `'hostKey' must be a public key line or a SHA256 fingerprint: ${
          (error as Error).message
        }`,
      );
    }
  } else if (
    hostKey !== undefined && typeof hostKey !== "string" &&
    typeof hostKey !== "function"
  ) {
    fail(`'hostKey' must be a string or a function, got ${typeof hostKey}`);
  }
  const retries = number("retries", options.retries, 5);
  if (!Number.isInteger(retries)) {
    fail(`'retries' must be an integer, got ${retries}`);
  }
  return {
    host: options.host,
    port,
    user: options.user,
    privateKey,
    passphrase: options.passphrase,
    hostKey: options.hostKey,
    knownHostsPath: options.knownHostsPath,
    acceptUnknownHostKey: options.acceptUnknownHostKey ?? true,
    connectTimeout: number("connectTimeout", options.connectTimeout, 15_000) ||
      15_000,
    retries,
    retryDelay: number("retryDelay", options.retryDelay, 250),
    maxRetryDelay: number("maxRetryDelay", options.maxRetryDelay, 5_000),
    keepaliveInterval: number(
      "keepaliveInterval",
      options.keepaliveInterval,
      10_000,
    ),
    keepaliveCountMax: number(
      "keepaliveCountMax",
      options.keepaliveCountMax,
      3,
    ),
    reconnect: options.reconnect ?? true,
    onDisconnect: options.onDisconnect,
    onReconnect: options.onReconnect,
  };
}

/**
 * `host:port`, with an IPv6 host in brackets.
 *
 * @param host The host name or address.
 * @param port The port.
 * @returns The address, for messages.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./options.ts";
 *
 * console.log(formatAddress("fd00::5", 22)); // [fd00::5]:22
 * ```
 */
export function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
