/**
 * One SSH connection per host on `npm:ssh2`, shared by every command,
 * upload and check on it, and kept alive across drops.
 *
 * - **One TCP connection** carries every channel to a host; Nagle is off on
 *   it (`setNoDelay`), so a small round trip costs about 0.1 ms on a LAN
 *   instead of about 44 ms.
 * - **Host keys** are pinned at first contact (or taken from the given key or
 *   a `known_hosts` file) and checked again on every reconnect; a mismatch is
 *   a `HostKeyMismatchError` naming `host:port`.
 * - **Connection loss** errors every open channel (a cut stream never looks
 *   like a clean end), calls `onDisconnect`, and reconnects with bounded,
 *   jittered exponential backoff (`retry()`); when that gives up the
 *   connection is closed and {@linkcode SshConnection.closed} says why.
 * - Private keys are handed to `ssh2` and never logged, kept in messages or
 *   sent anywhere.
 *
 * Its parts: `handshake.ts` (one attempt), `exec.ts` (commands),
 * `sftp.ts` (files), `keepalive.ts`, `options.ts`, `errors.ts`.
 *
 * @module
 */
import type { Socket } from "node:net";
// @ts-types="npm:@types/ssh2@1.15.6"
import type { Client, ClientChannel, SFTPWrapper } from "npm:ssh2@1.17.0";
import { logger } from "../../log.ts";
import { retry } from "../../_retry.ts";
import type { HostKey } from "../host_keys.ts";
import { corked } from "./batching.ts";
import { settle } from "./callback.ts";
import { connectionError, SshConnectionError } from "./errors.ts";
import {
  adoptChannel,
  type OpenChannel,
  runToEnd,
  type SshExecOptions,
  type SshProcess,
  type SshRunOptions,
  type SshRunResult,
  withEnv,
} from "./exec.ts";
import { handshake } from "./handshake.ts";
import { unrefKeepalives } from "./keepalive.ts";
import {
  formatAddress,
  type ResolvedOptions,
  resolveOptions,
  type SshConnectOptions,
} from "./options.ts";
import { exists, type SftpSite, upload, type UploadFile } from "./sftp.ts";

const log = logger("ssh");

/**
 * The life of a connection: `"reconnecting"` while it (re)connects,
 * `"connected"`, and `"closed"` for good.
 */
export type SshConnectionState = "connected" | "reconnecting" | "closed";

/**
 * One SSH connection to one host, shared by every command, upload and check
 * on it, and kept alive across drops.
 *
 * @example
 * ```ts ignore
 * import { SshConnection } from "./connection.ts";
 *
 * await using ssh = await SshConnection.connect({
 *   host: "10.213.0.10",
 *   user: "skyrig0",
 *   privateKey: await Deno.readTextFile("/run/skyrig/client_ed25519"),
 * });
 * const { stdout } = await ssh.run("uname -a");
 * console.log(stdout, ssh.hostKey.fingerprint);
 * ```
 */
export class SshConnection {
  /** The host, as dialled. */
  readonly host: string;
  /** The port. */
  readonly port: number;
  /** The login user. */
  readonly user: string;
  /** Settles, never rejecting, when the connection is closed for good: with `undefined` after {@linkcode close}, or the error that ended it. */
  readonly closed: Promise<SshConnectionError | undefined>;

  #options: ResolvedOptions;
  #state: SshConnectionState = "reconnecting";
  #client: Client | null = null;
  #socket: Socket | null = null;
  /** Whether the connection lets the program end (see {@linkcode SshConnection.unref}). */
  #unref = false;
  #generation = 0;
  #pinned: HostKey | null = null;
  #ready: Promise<Client> | null = null;
  #sftp: Promise<SFTPWrapper> | null = null;
  #channels = new Set<OpenChannel>();
  #stop = new AbortController();
  #resolveClosed!: (error: SshConnectionError | undefined) => void;
  #closing: Promise<void> | null = null;
  /** What the SFTP functions use of this connection. */
  #sftpSite: SftpSite;

  private constructor(options: ResolvedOptions) {
    this.#options = options;
    this.host = options.host;
    this.port = options.port;
    this.user = options.user;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#sftpSite = {
      label: this.label,
      connected: () => this.#state === "connected" && this.#client !== null,
      sftp: () => this.#sftpSession(),
    };
  }

  /**
   * Connects, retrying what may succeed on a retry.
   *
   * @param options Where, who, which key, and how to verify the host.
   * @returns The connection, with the host key pinned.
   * @throws {TypeError} On bad options.
   * @throws {HostKeyMismatchError} When the host's key is not the expected one.
   * @throws {SshAuthenticationError} When the host refuses the user and key.
   * @throws {SshConnectionError} When every attempt failed.
   */
  static async connect(options: SshConnectOptions): Promise<SshConnection> {
    const connection = new SshConnection(resolveOptions(options));
    const abort = () => connection.#stop.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      if (options.signal?.aborted) throw options.signal.reason;
      connection.#ready = connection.#connectWithRetries();
      await connection.#ready;
      return connection;
    } catch (error) {
      await connection.#shutdown(undefined);
      throw error;
    } finally {
      options.signal?.removeEventListener("abort", abort);
    }
  }

  /** `host:port`, for messages. */
  get address(): string {
    return formatAddress(this.host, this.port);
  }

  /** `user@host:port`, for messages. */
  get label(): string {
    return `${this.user}@${this.address}`;
  }

  /** Where the connection is in its life. */
  get state(): SshConnectionState {
    return this.#state;
  }

  /** Counts the TCP connections made so far: 1 after connect, +1 per reconnect. */
  get generation(): number {
    return this.#generation;
  }

  /** The host key pinned at first contact; pass it as `hostKey` to a later connection to the same host. */
  get hostKey(): HostKey {
    if (!this.#pinned) {
      throw new SshConnectionError(`No host key pinned for ${this.address}`);
    }
    return this.#pinned;
  }

  /**
   * Starts a command. The command line is run by the login shell; quote
   * arguments with {@linkcode shellQuote}.
   *
   * @param command The command line.
   * @param options Environment variables.
   * @returns The running command.
   * @throws {SshConnectionError} When the connection is closed or cannot be restored, or the host refuses the channel.
   */
  async exec(
    command: string,
    options: SshExecOptions = {},
  ): Promise<SshProcess> {
    const line = withEnv(command, options.env);
    const client = await this.#live();
    const channel = await settle<ClientChannel>(
      (cb) => client.exec(line, cb),
      (error) => this.#channelError(error, "run a command"),
    );
    return adoptChannel(channel, this.#channels, this.#corked);
  }

  /** Runs a write to a channel with the socket corked (see `batching.ts`). */
  #corked = (write: () => void): void => corked(this.#socket, write);

  /**
   * Runs a short command to its end and collects its output.
   *
   * @param command The command line.
   * @param options Standard input, environment and an abort signal.
   * @returns The exit status and the decoded output; a non-zero exit is no error.
   * @throws {SshConnectionError} When the connection is lost before the command ends.
   */
  async run(
    command: string,
    options: SshRunOptions = {},
  ): Promise<SshRunResult> {
    options.signal?.throwIfAborted();
    return await runToEnd(await this.exec(command, options), options);
  }

  /**
   * Uploads files over SFTP into a directory, creating it and any
   * subdirectory. Each file is written under a temporary name and renamed
   * into place, so a file either has its full content or is absent.
   *
   * @param files The files, with paths relative to `remoteDir`.
   * @param remoteDir The target directory; relative paths (or `~/…`) are relative to the login directory.
   * @throws {TypeError} When a path is absolute or has `..`.
   * @throws {SshConnectionError} When the connection is lost or closed.
   * @throws {Error} When the server refuses a write (e.g. permission denied), naming the path.
   */
  upload(files: UploadFile[], remoteDir: string): Promise<void> {
    return upload(this.#sftpSite, files, remoteDir);
  }

  /**
   * Whether a path exists on the host (SFTP `stat`, following links).
   *
   * @param path The path; relative paths (or `~/…`) are relative to the login directory.
   * @returns `true` when it exists.
   * @throws {Error} When the server answers anything but "no such file" (e.g. permission denied).
   */
  exists(path: string): Promise<boolean> {
    return exists(this.#sftpSite, path);
  }

  /**
   * Drops the current TCP connection (if any) and makes a new one, verifying
   * the pinned host key. Open channels fail. Concurrent calls share one
   * reconnect.
   *
   * @throws {SshConnectionError} When the connection is closed or cannot be restored (it is then closed).
   */
  async reconnect(): Promise<void> {
    if (this.#state === "closed") throw this.#closedError();
    if (this.#state === "connected") {
      this.#drop(
        new SshConnectionError(
          `Connection to ${this.address} is being re-made`,
          {
            retriable: true,
          },
        ),
        true,
      );
    }
    await this.#ready;
  }

  /**
   * Closes the connection and everything on it. Open channels fail; timers
   * and the socket are released before it returns. Idempotent.
   */
  close(): Promise<void> {
    return this.#shutdown(undefined);
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -------------------------------------------------------------------------
  // Connecting

  /**
   * Connects: one attempt, then `retries` more for failures that may pass
   * (refused, timed out, reset), with jittered exponential backoff, until
   * the connection's stop signal ends it.
   */
  async #connectWithRetries(): Promise<Client> {
    const { retries, retryDelay, maxRetryDelay } = this.#options;
    const signal = this.#stop.signal;
    let attempts = 0;
    try {
      return await retry(async (attempt) => {
        attempts = attempt;
        let client: Client;
        try {
          client = await handshake(
            this.#options,
            this.#pinned,
            signal,
            (client, socket, presented) => {
              this.#pinned ??= presented ?? null;
              this.#adoptClient(client, socket);
            },
          );
        } catch (error) {
          throw connectionError(error, `Cannot connect to ${this.address}`);
        }
        // close() may have run while the attempt finished: it ends the client.
        if (this.#state === "closed") throw this.#closedError();
        this.#state = "connected";
        log.debug("Connected to {label} (connection {generation})", {
          label: this.label,
          generation: this.#generation,
        });
        return client;
      }, {
        maxAttempts: retries + 1,
        minDelay: retryDelay,
        maxDelay: maxRetryDelay,
        multiplier: 2,
        // Each delay is drawn between half and all of its nominal value.
        jitter: 0.5,
        signal,
        isRetriable: (error) =>
          this.#state !== "closed" && (error as SshConnectionError).retriable,
        onRetry: (error, _attempt, delay) =>
          log.debug(
            "Connecting to {label} failed ({message}); retrying in {delay} ms",
            {
              label: this.label,
              message: (error as Error).message,
              delay: Math.round(delay),
            },
          ),
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      // Retriable, and thrown all the same: the attempts are spent.
      if (error instanceof SshConnectionError && error.retriable) {
        throw new SshConnectionError(
          `Cannot connect to ${this.label} after ${attempts} attempt(s): ${error.message}`,
          { cause: error, retriable: true },
        );
      }
      throw error;
    }
  }

  /**
   * Lets the program end while the connection is open (and after a
   * reconnection): its user keeps the program alive while it waits for
   * something on it.
   *
   * @example
   * ```ts ignore
   * import { SshConnection } from "./connection.ts";
   *
   * const ssh = await SshConnection.connect({ host: "10.213.0.10", user: "skyrig0", privateKey: "…" });
   * ssh.unref(); // an idle connection no longer keeps the program alive
   * ```
   */
  unref(): void {
    this.#unref = true;
    this.#socket?.unref();
    unrefKeepalives();
  }

  #adoptClient(client: Client, socket: Socket): void {
    const generation = ++this.#generation;
    this.#client = client;
    this.#socket = socket;
    if (this.#unref) socket.unref();
    let lastError: Error | undefined;
    client.on("error", (error: Error) => lastError = error);
    client.on("close", () => {
      if (generation !== this.#generation || this.#client !== client) return;
      const reason = lastError ? `: ${lastError.message}` : "";
      this.#drop(
        new SshConnectionError(`Connection to ${this.address} lost${reason}`, {
          cause: lastError,
          retriable: true,
        }),
      );
    });
  }

  /**
   * The current connection is gone, or `deliberate`ly being replaced: fail
   * what used it, then reconnect or close.
   */
  #drop(error: SshConnectionError, deliberate = false): void {
    const client = this.#client;
    this.#client = null;
    this.#socket = null;
    this.#sftp = null;
    if (client) {
      client.removeAllListeners("close");
      client.on("error", () => {});
      client.destroy();
    }
    if (this.#state === "closed") return;
    if (!deliberate && !this.#options.reconnect) {
      this.#failChannels(error);
      this.#notify("onDisconnect", error);
      this.#shutdown(error);
      return;
    }
    // The state changes before anyone hears of the drop, so that what they
    // start waits for the new connection rather than using the old one.
    this.#state = "reconnecting";
    this.#ready = this.#connectWithRetries().then((client) => {
      this.#notify("onReconnect");
      return client;
    }, (failure) => {
      const final = connectionError(
        failure,
        `Cannot reconnect to ${this.label}`,
      );
      this.#shutdown(final);
      throw final;
    });
    // Whoever awaits it sees the failure; nobody awaiting is no unhandled rejection.
    this.#ready.catch(() => {});
    this.#failChannels(error);
    if (!deliberate) {
      log.info("{message}; reconnecting", { message: error.message });
      this.#notify("onDisconnect", error);
    }
  }

  #notify(
    callback: "onDisconnect" | "onReconnect",
    error?: SshConnectionError,
  ): void {
    try {
      if (callback === "onDisconnect") this.#options.onDisconnect?.(error!);
      else this.#options.onReconnect?.();
    } catch (callbackError) {
      log.error("{callback} threw: {error}", {
        callback,
        error: callbackError,
      });
    }
  }

  /** Closes for good, once; later calls get the first call's promise. */
  #shutdown(error: SshConnectionError | undefined): Promise<void> {
    this.#closing ??= this.#finish(error);
    return this.#closing;
  }

  async #finish(error: SshConnectionError | undefined): Promise<void> {
    this.#state = "closed";
    this.#stop.abort(
      new SshConnectionError(`Connection to ${this.address} closed`),
    );
    const client = this.#client;
    const socket = this.#socket;
    this.#client = null;
    this.#socket = null;
    this.#sftp = null;
    this.#failChannels(
      error ??
        new SshConnectionError(`Connection to ${this.address} closed`, {
          retriable: false,
        }),
    );
    if (client && socket) {
      client.removeAllListeners("close");
      client.on("error", () => {});
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => socket.destroy(), 2_000);
        socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        client.end();
        if (socket.destroyed) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
    this.#resolveClosed(error);
  }

  async #live(): Promise<Client> {
    if (this.#state === "closed") throw this.#closedError();
    if (this.#state === "connected" && this.#client) return this.#client;
    return await this.#ready!;
  }

  #closedError(): SshConnectionError {
    return new SshConnectionError(`Connection to ${this.label} is closed`, {
      retriable: false,
    });
  }

  #channelError(error: unknown, action: string): SshConnectionError {
    const message = (error as Error)?.message ?? String(error);
    return connectionError(
      error,
      `Cannot ${action} on ${this.label}`,
      /Not connected|No response|lost|closed/i.test(message),
    );
  }

  #failChannels(error: SshConnectionError): void {
    const channels = [...this.#channels];
    this.#channels.clear();
    for (const channel of channels) channel.fail(error);
  }

  // -------------------------------------------------------------------------
  // SFTP

  async #sftpSession(): Promise<SFTPWrapper> {
    const client = await this.#live();
    if (!this.#sftp) {
      const opening: Promise<SFTPWrapper> = settle<SFTPWrapper>(
        (cb) => client.sftp(cb),
        (error) => this.#channelError(error, "open SFTP"),
      ).then((sftp) => {
        sftp.on("close", () => {
          if (this.#sftp === opening) this.#sftp = null;
        });
        return sftp;
      });
      this.#sftp = opening;
      opening.catch(() => {
        if (this.#sftp === opening) this.#sftp = null;
      });
    }
    return await this.#sftp;
  }
}
