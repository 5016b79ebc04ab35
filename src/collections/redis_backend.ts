/**
 * The collections backend on Redis or Valkey: each collection is one of the
 * server's own structures (a dict a hash, a set a set, a counter `INCRBY`, a
 * queue a list taken with `BLMOVE`), and what must be atomic (versioned
 * writes, a barrier's round, a lock's grant and release, forgetting a lost
 * node) is a Lua script run on the server (`redis_scripts.ts`, which also
 * shows the key layout). Values are the pool's codec bytes, sent and read as
 * `Buffer`s.
 *
 * Loaded on first use only, by the client and by the worker process of each
 * node (never by the sandbox), with `npm:ioredis`: a pool without Redis never
 * downloads it nor ships it.
 *
 * @module
 */
// By full specifier, as the library shipped to nodes resolves no bare names
// (the version is the one pinned in deno.json).
import { Redis as IORedis } from "npm:ioredis@6.1.0";
import { Buffer } from "node:buffer";
import type {
  CollectionBackend,
  CollectionCall,
  CollectionsContext,
  Page,
  QueueTake,
} from "./backend.ts";
import { MAX_NAME_LENGTH } from "./backend.ts";
import { ConfigError, PoolClosedError } from "../errors.ts";
import { instanceInfo } from "../instance.ts";
import { sleep } from "../_timers.ts";
import { startHeadServer } from "./redis_head.ts";
import * as lua from "./redis_scripts.ts";

/** What a backend on Redis is opened with (sent to each node as it is). */
export interface RedisBackendConfig {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…` (TLS). */
  url: string;
  /** The namespace of every key, ending with `:`. */
  prefix: string;
  /** Delete every key under the prefix at `close()` (the client's backend only). */
  clearOnClose: boolean;
  /** How long to wait for the server at start, in milliseconds. */
  connectTimeoutMs: number;
  /** Who opens it: the client, or a node's worker. */
  role: "client" | "node";
  /**
   * The server runs on the head node (`sky.Redis({ on: "head" })`): its
   * port and password; `url` is then made from the head's address.
   */
  head?: { port: number; password: string };
}

/** How long a completed barrier round's replies wait for their waiters. */
const WAKE_EXPIRY_MS = 3_600_000;
/** The longest one blocking wait for a lock, between looks at its lease. */
const LOCK_POLL_MS = 1_000;
/** Idle blocking connections kept for the next blocked call. */
const IDLE_BLOCKING = 4;
/** Items per page of a listing. */
const PAGE = 256;

/**
 * The URL with its password replaced by `***`, for messages.
 *
 * @param url A Redis URL.
 * @returns The URL, safe to print.
 *
 * @example
 * ```ts
 * import { redactUrl } from "./redis_backend.ts";
 *
 * console.log(redactUrl("redis://:s3cret@10.0.0.5:6379")); // redis://:***@10.0.0.5:6379
 * ```
 */
export function redactUrl(url: string): string {
  return url.replace(/^(\w+:\/\/[^:@/]*:)[^@/]*@/, "$1***@");
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function bytes(value: unknown): Uint8Array {
  const b = value as Buffer;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
}

function connectProblem(error: unknown): string {
  const e = error as { code?: string; message?: string } | undefined;
  const message = e?.message ?? String(error);
  if (/WRONGPASS|NOAUTH|invalid password|AUTH/i.test(message)) {
    return `the server refused the credentials (${message}): check the password in the URL`;
  }
  switch (e?.code) {
    case "ECONNREFUSED":
      return `connection refused (${message}): is redis-server running and listening there?`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `the host name does not resolve (${message})`;
    case "ETIMEDOUT":
      return `no answer (${message}): is the address reachable from here?`;
  }
  return message;
}

/**
 * Opens the backend: connects, checks the credentials with a `PING`, and
 * rejects with a {@linkcode ConfigError} naming the (redacted) URL and why
 * when it cannot, leaving no connection behind. What each node's worker
 * calls (see `WorkerBackendSpec`), and the client too.
 *
 * @param config The server, the key prefix and whether to clear at close.
 * @param context The pool, whose id keeps its holders apart from another pool's on a shared prefix.
 * @returns The backend.
 * @throws {ConfigError} When the URL is malformed or the server cannot be
 *   reached or refuses the credentials.
 *
 * @example
 * ```ts ignore
 * import { openBackend } from "./redis_backend.ts";
 *
 * const backend = await openBackend(
 *   { url: "redis://127.0.0.1:6379", prefix: "skyward:demo:", clearOnClose: true, connectTimeoutMs: 5000, role: "client" },
 *   { poolId: "demo" },
 * );
 * console.log(await backend.call({ kind: "counter", name: "n", op: "add", n: 1 }, "client")); // 1
 * await backend.close();
 * ```
 */
export async function openBackend(
  config: RedisBackendConfig,
  context?: CollectionsContext,
  signal?: AbortSignal,
): Promise<CollectionBackend> {
  const deadline = Date.now() + config.connectTimeoutMs;
  let url = config.url;
  let server: Promise<string> | undefined;
  if (config.head) {
    const address = await headAddress(config, context, deadline, signal);
    const head = config.role === "node" && instanceInfo().isHead;
    if (head) {
      server = (await startHeadServer({ bind: address, ...config.head }))
        .ended;
    }
    url = `redis://:${encodeURIComponent(config.head.password)}@${
      head ? "127.0.0.1" : address
    }:${config.head.port}`;
  }
  const where = redactUrl(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(
      `Cannot open the collections on Redis: '${where}' is not a URL (expected redis://[:password@]host[:port][/db])`,
    );
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new ConfigError(
      `Cannot open the collections on Redis: '${where}' is not a redis:// or rediss:// URL`,
    );
  }
  for (let attempt = 0;; attempt++) {
    const tried = await connect(url, config, context);
    if ("client" in tried) {
      return new RedisBackend(
        tried.client,
        config,
        context?.poolId ?? "",
        server !== undefined,
      );
    }
    // A server on the head node may not be up yet: wait for it, while it
    // has not failed and time is left.
    const failed = server &&
      await Promise.race([server, sleep(0).then(() => undefined)]);
    if (
      !config.head || failed || Date.now() >= deadline ||
      !RETRIABLE.has((tried.error as { code?: string })?.code ?? "")
    ) {
      // A node's worker connects too: a URL only the client reaches (e.g.
      // 127.0.0.1 with remote nodes) fails here, on the node.
      const from = config.role === "client"
        ? ""
        : ` from node ${Deno.hostname()} (each node connects to the server itself: the URL must be reachable from every node, not only from the client)`;
      throw new ConfigError(
        `Cannot open the collections on Redis at ${where}${from}: ${
          failed
            ? `redis-server did not start: ${failed}`
            : connectProblem(tried.error)
        }`,
        { cause: tried.error },
      );
    }
    await sleep(Math.min(250 * (attempt + 1), 2_000), signal);
  }
}

/** Connection errors worth another try while a head node's server starts. */
const RETRIABLE = new Set([
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ECONNRESET",
]);

/** One attempt to connect and check the credentials; nothing left open when it fails. */
async function connect(
  url: string,
  config: RedisBackendConfig,
  context: CollectionsContext | undefined,
): Promise<{ client: IORedis } | { error: unknown }> {
  let connected = false;
  let last: unknown;
  const client = new IORedis(url, {
    // Seen in CLIENT LIST: whose connection it is.
    connectionName: `skyward/${context?.poolId ?? ""}/${config.role}`,
    lazyConnect: true,
    protocol: 2,
    // The calls of concurrent tasks, sent in one write per tick.
    enableAutoPipelining: true,
    connectTimeout: Math.max(1, config.connectTimeoutMs),
    maxRetriesPerRequest: 3,
    // No retry before the first connection (a bad address fails at once);
    // after it, reconnect with a bounded backoff.
    retryStrategy: (times) => connected ? Math.min(times * 100, 2_000) : null,
  });
  client.on("error", (error) => {
    last = error;
  });
  try {
    await client.connect();
    await client.ping();
    connected = true;
    return { client };
  } catch (error) {
    client.disconnect();
    return { error: last ?? error };
  }
}

/** The head node's private address: from the pool on the client, from `instanceInfo()` on a node. */
async function headAddress(
  config: RedisBackendConfig,
  context: CollectionsContext | undefined,
  deadline: number,
  signal?: AbortSignal,
): Promise<string> {
  if (config.role === "client") {
    if (!context?.headAddress) {
      throw new ConfigError(
        'Cannot open sky.Redis({ on: "head" }) outside a pool: it needs a head node',
      );
    }
    return await context.headAddress();
  }
  for (;;) {
    const address = instanceInfo().headAddr;
    if (address) return address;
    if (Date.now() >= deadline) {
      throw new ConfigError(
        `Cannot open the collections on the head node's Redis from node ${Deno.hostname()}: the head node has no address yet`,
      );
    }
    await sleep(100, signal);
  }
}

/** One blocked call: its connection, and how to end it. */
interface Blocked {
  holder: string;
  end(reason: unknown): void;
}

class RedisBackend implements CollectionBackend {
  readonly #client: IORedis;
  readonly #config: RedisBackendConfig;
  readonly #idle: IORedis[] = [];
  readonly #blocked = new Set<Blocked>();
  /** Holders forgotten here (ids are never reused): their calls are refused. */
  readonly #forgotten = new Set<string>();
  readonly #poolId: string;
  /** Each script's command name (see `#eval`). */
  readonly #scripts = new Map<string, string>();
  #closed: Error | null = null;

  /** Whether this node started the server (the head's): it shuts it down at close. */
  readonly #ownsServer: boolean;

  constructor(
    client: IORedis,
    config: RedisBackendConfig,
    poolId: string,
    ownsServer: boolean,
  ) {
    this.#client = client;
    this.#config = config;
    this.#poolId = poolId;
    this.#ownsServer = ownsServer;
  }

  #key(tag: string, name: string): string {
    return `${this.#config.prefix}${tag}:${name}`;
  }

  /** A holder's hash; holders are the pool's own ("client", node ids), so a prefix shared by pools keeps them apart. */
  #holderKey(holder: string): string {
    return `${this.#config.prefix}h:${this.#poolId}/${holder}`;
  }

  /**
   * Runs a script by its SHA-1 (`EVALSHA`, falling back to `EVAL` when the
   * server does not know it yet): ioredis's `defineCommand`, one command per
   * script, defined on first use.
   */
  #eval(
    script: string,
    keys: string[],
    args: (string | Buffer | number)[],
  ): Promise<unknown> {
    let name = this.#scripts.get(script);
    if (name === undefined) {
      name = `skyward${this.#scripts.size}`;
      this.#client.defineCommand(name, { lua: script });
      this.#scripts.set(script, name);
    }
    const run = (this.#client as unknown as Record<
      string,
      (...a: (string | Buffer | number)[]) => Promise<unknown>
    >)[`${name}Buffer`];
    return run.call(this.#client, keys.length, ...keys, ...args);
  }

  async call(
    call: CollectionCall,
    holder: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    if (this.#closed) throw this.#closed;
    if (this.#forgotten.has(holder)) throw gone(holder);
    if (
      typeof call.name !== "string" || call.name.length === 0 ||
      call.name.length > MAX_NAME_LENGTH
    ) {
      throw new RangeError(
        `Cannot use ${call.kind} ${
          JSON.stringify(call.name)
        }: a name has 1 to ${MAX_NAME_LENGTH} characters`,
      );
    }
    signal?.throwIfAborted();
    switch (call.kind) {
      case "dict":
        return await this.#dict(call);
      case "set":
        return await this.#set(call);
      case "counter":
        return await this.#counter(call);
      case "queue":
        return await this.#queue(call, holder, signal);
      case "barrier":
        return await this.#barrier(call, holder, signal);
      case "lock":
        return await this.#lock(call, holder, signal);
    }
  }

  async #dict(call: Extract<CollectionCall, { kind: "dict" }>) {
    const d = this.#key("d", call.name);
    const dv = this.#key("dv", call.name);
    const c = this.#client;
    switch (call.op) {
      case "get": {
        const v = await c.hgetBuffer(d, call.key);
        return v === null ? undefined : bytes(v);
      }
      case "has":
        return (await c.hexists(d, call.key)) === 1;
      case "delete":
        return (await this.#eval(lua.DICT_DELETE, [d, dv], [call.key])) === 1;
      case "set":
        await this.#eval(lua.DICT_SET, [d, dv], [
          call.key,
          toBuffer(call.value),
        ]);
        return undefined;
      case "getVersioned": {
        const [present, value, version] = await this.#eval(
          lua.DICT_GET_VERSIONED,
          [d, dv],
          [call.key],
        ) as [number, Buffer, Buffer];
        return present === 1
          ? { value: bytes(value), version: Number(text(version)) }
          : { version: Number(text(version)) };
      }
      case "setIfVersion": {
        const write = call.value !== undefined;
        return (await this.#eval(lua.DICT_SET_IF_VERSION, [d, dv], [
          call.key,
          String(call.version),
          write ? "1" : "0",
          write ? toBuffer(call.value!) : "",
        ])) === 1;
      }
      case "keys":
      case "entries": {
        const [next, flat] = await c.hscanBuffer(
          d,
          call.cursor ?? "0",
          "COUNT",
          PAGE,
        );
        const items: unknown[] = [];
        for (let i = 0; i < flat.length; i += 2) {
          const key = text(flat[i]);
          items.push(call.op === "keys" ? key : [key, bytes(flat[i + 1])]);
        }
        return page(items, text(next));
      }
      case "size":
        return await c.hlen(d);
    }
  }

  async #set(call: Extract<CollectionCall, { kind: "set" }>) {
    const s = this.#key("s", call.name);
    const c = this.#client;
    switch (call.op) {
      case "add":
        return (await c.sadd(s, toBuffer(call.value))) === 1;
      case "delete":
        return (await c.srem(s, toBuffer(call.value))) === 1;
      case "has":
        return (await c.sismember(s, toBuffer(call.value))) === 1;
      case "values": {
        const [next, members] = await c.sscanBuffer(
          s,
          call.cursor ?? "0",
          "COUNT",
          PAGE,
        );
        return page(members.map(bytes), text(next));
      }
      case "size":
        return await c.scard(s);
    }
  }

  async #counter(call: Extract<CollectionCall, { kind: "counter" }>) {
    const k = this.#key("c", call.name);
    switch (call.op) {
      case "add": {
        if (!Number.isSafeInteger(call.n)) {
          throw new RangeError(
            `Cannot add ${call.n} to counter ${
              JSON.stringify(call.name)
            }: a counter adds integers within Number.MAX_SAFE_INTEGER`,
          );
        }
        try {
          return Number(
            text(await this.#eval(lua.COUNTER_ADD, [k], [String(call.n)])),
          );
        } catch (error) {
          const m = /RANGE (-?\d+)/.exec(String((error as Error).message));
          if (!m) throw error;
          throw new RangeError(
            `Cannot add ${call.n} to counter ${
              JSON.stringify(call.name)
            } (now ${m[1]}): it would pass Number.MAX_SAFE_INTEGER`,
          );
        }
      }
      case "value": {
        const v = await this.#client.get(k);
        return v === null ? 0 : Number(v);
      }
      case "reset":
        await this.#client.del(k);
        return undefined;
    }
  }

  async #queue(
    call: Extract<CollectionCall, { kind: "queue" }>,
    holder: string,
    signal?: AbortSignal,
  ) {
    const q = this.#key("q", call.name);
    const qc = this.#key("qc", call.name);
    switch (call.op) {
      case "put":
        if (call.value.byteLength === 0) {
          throw new TypeError(
            `Cannot put into queue ${
              JSON.stringify(call.name)
            }: an encoded value is never empty`,
          );
        }
        return (await this.#eval(lua.QUEUE_PUT, [q, qc], [
          toBuffer(call.value),
        ])) === 1;
      case "tryGet":
        return take(await this.#eval(lua.QUEUE_TRY_GET, [q, qc], []), "empty");
      case "size":
        return Number(await this.#eval(lua.QUEUE_SIZE, [q, qc], []));
      case "close":
        await this.#eval(lua.QUEUE_CLOSE, [q, qc], []);
        return undefined;
      case "get":
        return await this.#queueGet(call.name, call.timeoutMs, holder, signal);
    }
  }

  /** A blocking get: `BLMOVE` into the call's own list, then handed over. */
  async #queueGet(
    name: string,
    timeoutMs: number | undefined,
    holder: string,
    signal?: AbortSignal,
  ): Promise<QueueTake> {
    const id = crypto.randomUUID();
    const q = this.#key("q", name);
    const qi = this.#key("qi", id);
    const h = this.#holderKey(holder);
    await this.#client.hset(h, `q${id}`, name);
    try {
      await this.#blocking(
        holder,
        signal,
        (conn) => conn.blmoveBuffer(q, qi, "LEFT", "RIGHT", seconds(timeoutMs)),
      );
    } catch (error) {
      await this.#eval(lua.QUEUE_RESTORE, [qi, q, h], [id]).catch(() => {});
      throw error;
    }
    return take(await this.#eval(lua.QUEUE_TAKEN, [qi, q, h], [id]), "timeout");
  }

  async #barrier(
    call: Extract<CollectionCall, { kind: "barrier" }>,
    holder: string,
    signal?: AbortSignal,
  ): Promise<{ index: number } | { end: "timeout" }> {
    if (!Number.isSafeInteger(call.parties) || call.parties < 1) {
      throw new RangeError(
        `Cannot wait at barrier ${
          JSON.stringify(call.name)
        }: 'parties' must be a positive integer, got ${call.parties}`,
      );
    }
    const id = crypto.randomUUID();
    const b = this.#key("b", call.name);
    const ba = this.#key("ba", call.name);
    const bw = this.#key("bw", id);
    const h = this.#holderKey(holder);
    try {
      await this.#eval(lua.BARRIER_ARRIVE, [b, ba, h], [
        String(call.parties),
        id,
        this.#key("bw", ""),
        String(WAKE_EXPIRY_MS),
        call.name,
      ]);
    } catch (error) {
      const m = /PARTIES (\d+)/.exec(String((error as Error).message));
      if (!m) throw error;
      throw new RangeError(
        `Cannot wait at barrier ${
          JSON.stringify(call.name)
        } for ${call.parties} parties: its round waits for ${m[1]}`,
      );
    }
    const leave = async () =>
      Number(await this.#eval(lua.BARRIER_LEAVE, [b, ba, h, bw], [id]));
    let woken: unknown;
    try {
      woken = await this.#blocking(
        holder,
        signal,
        (conn) => conn.blpopBuffer(bw, seconds(call.timeoutMs)),
      );
    } catch (error) {
      await leave().catch(() => {});
      throw error;
    }
    if (woken === null) {
      // Timed out, unless the round completed meanwhile.
      const index = await leave();
      return index >= 0 ? { index } : { end: "timeout" };
    }
    await this.#client.hdel(h, `b${id}`);
    return { index: Number(text((woken as Buffer[])[1])) };
  }

  async #lock(
    call: Extract<CollectionCall, { kind: "lock" }>,
    holder: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const l = this.#key("l", call.name);
    const lw = this.#key("lw", call.name);
    const h = this.#holderKey(holder);
    if (call.op === "release") {
      return (await this.#eval(lua.LOCK_RELEASE, [l, lw, h], [
        call.token,
        call.name,
      ])) === 1;
    }
    for (
      const [what, ms] of [["leaseMs", call.leaseMs], [
        "timeoutMs",
        call.timeoutMs,
      ]] as const
    ) {
      if (
        ms !== undefined &&
        (!Number.isFinite(ms) || ms < 0 || (what === "leaseMs" && ms < 1))
      ) {
        throw new RangeError(
          `Cannot acquire lock ${
            JSON.stringify(call.name)
          }: '${what}' must be a positive number of milliseconds, got ${ms}`,
        );
      }
    }
    const token = `${holder}/${crypto.randomUUID()}`;
    const deadline = call.timeoutMs === undefined
      ? Infinity
      : Date.now() + call.timeoutMs;
    const lease = call.leaseMs === undefined
      ? ""
      : String(Math.max(1, Math.ceil(call.leaseMs)));
    for (;;) {
      signal?.throwIfAborted();
      if (this.#closed) throw this.#closed;
      if (this.#forgotten.has(holder)) throw gone(holder);
      const granted = (await this.#eval(lua.LOCK_ACQUIRE, [l, h], [
        token,
        lease,
        call.name,
      ])) === 1;
      if (granted) {
        // (One granted to a holder forgotten meanwhile was released by the
        // forget, which the server ran after the grant: as with a lock it
        // held before, its release replies false.)
        if (signal?.aborted || this.#closed) {
          await this.#eval(lua.LOCK_RELEASE, [l, lw, h], [token, call.name]);
          throw signal?.aborted ? signal.reason : this.#closed;
        }
        return { token };
      }
      const left = deadline - Date.now();
      if (left <= 0) return { end: "timeout" };
      // Wait for a release, or the lease's end, whichever comes first.
      const ttl = await this.#client.pttl(l);
      const wait = Math.min(left, LOCK_POLL_MS, ttl > 0 ? ttl : LOCK_POLL_MS);
      await this.#blocking(
        holder,
        signal,
        (conn) => conn.blpopBuffer(lw, seconds(Math.max(wait, 1))),
      );
    }
  }

  /**
   * Runs a blocking command on a connection of its own (a blocking command
   * holds its connection), which is dropped to end the command when the
   * signal aborts, the holder is forgotten or the backend closes.
   */
  async #blocking<T>(
    holder: string,
    signal: AbortSignal | undefined,
    command: (conn: IORedis) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) throw this.#closed;
    // Forgotten while its call was on its way here.
    if (this.#forgotten.has(holder)) throw gone(holder);
    const conn = this.#idle.pop() ?? this.#duplicate();
    let ended: { reason: unknown } | null = null;
    const blocked: Blocked = {
      holder,
      end: (reason) => {
        ended ??= { reason };
        conn.disconnect();
      },
    };
    const onAbort = () => blocked.end(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#blocked.add(blocked);
    try {
      signal?.throwIfAborted();
      const result = await command(conn);
      if (ended) throw (ended as { reason: unknown }).reason;
      return result;
    } catch (error) {
      if (ended) throw (ended as { reason: unknown }).reason;
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#blocked.delete(blocked);
      if (ended || this.#closed || this.#idle.length >= IDLE_BLOCKING) {
        conn.disconnect();
      } else {
        this.#idle.push(conn);
      }
    }
  }

  #duplicate(): IORedis {
    const conn = this.#client.duplicate({ enableAutoPipelining: false });
    // Its failures reach the command that runs on it.
    conn.on("error", () => {});
    return conn;
  }

  async forget(holder: string): Promise<void> {
    this.#forgotten.add(holder);
    for (const blocked of [...this.#blocked]) {
      if (blocked.holder === holder) blocked.end(gone(holder));
    }
    if (this.#closed) return;
    await this.#eval(lua.FORGET, [this.#holderKey(holder)], [
      this.#config.prefix,
    ]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = new PoolClosedError("The pool's collections are closed");
    for (const blocked of [...this.#blocked]) blocked.end(this.#closed);
    for (const conn of this.#idle.splice(0)) conn.disconnect();
    try {
      if (this.#config.clearOnClose) await this.#clear();
      if (this.#ownsServer) {
        await this.#client.call("SHUTDOWN", "NOSAVE").catch(() => {});
      }
    } finally {
      await this.#client.quit().catch(() => this.#client.disconnect());
    }
  }

  /** Deletes every key under the prefix (`SCAN` + `UNLINK`). */
  async #clear(): Promise<void> {
    const match = this.#config.prefix.replace(/[*?[\]\\]/g, "\\$&") + "*";
    let cursor = "0";
    do {
      const [next, keys] = await this.#client.scan(
        cursor,
        "MATCH",
        match,
        "COUNT",
        1000,
      );
      if (keys.length) await this.#client.unlink(...keys);
      cursor = next;
    } while (cursor !== "0");
  }
}

function gone(holder: string): Error {
  return new Error(`The caller '${holder}' is gone`);
}

function page<T>(items: T[], next: string): Page<T> {
  return next === "0" ? { items } : { items, cursor: next };
}

function take(reply: unknown, none: "empty" | "timeout"): QueueTake {
  const [code, value] = reply as [number, Buffer?];
  if (code === 2) return { value: bytes(value) };
  return { end: code === 1 ? "closed" : none };
}

/** A blocking command's timeout, in seconds (0: forever). */
function seconds(ms: number | undefined): string {
  if (ms === undefined) return "0";
  // Redis reads 0 as "forever": the least wait is a millisecond.
  return (Math.max(ms, 1) / 1000).toFixed(3);
}
