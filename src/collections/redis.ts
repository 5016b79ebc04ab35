/**
 * `sky.Redis(...)`: a pool's collections on a Redis or Valkey server instead
 * of the embedded default. The client and every node's worker process
 * connect to the server themselves (the sandbox does not: a task's calls go
 * to its worker, as with the embedded backend), so the collections scale
 * with the server rather than with the client.
 *
 * This module only describes the choice; the client for the server
 * (`npm:ioredis`) and the backend (`redis_backend.ts`) are loaded on first
 * use, so a pool without Redis never downloads nor ships them.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { lazyModule } from "../_lazy.ts";
import { parseOptions } from "../_options.ts";
import { ConfigError, PoolClosedError } from "../errors.ts";
import type {
  CollectionBackend,
  CollectionsContext,
  CollectionsOption,
  WorkerBackendSpec,
} from "./backend.ts";

/** Options of {@linkcode Redis}. */
export interface RedisOptions {
  /**
   * The server: `redis://[[user]:password@]host[:port][/db]`, or
   * `rediss://…` for TLS. It must be reachable from the client and from
   * every node.
   */
  url?: string;
  /**
   * `"head"`: the pool's head node runs `redis-server` for the pool
   * (installed by the bootstrap's `apt` phase, bound to its private address,
   * asking for a password generated per pool), which the other nodes and
   * the client reach at that address. Refused on providers whose machines
   * have no private network (RunPod, Vast.ai) and for local processes
   * (they cannot install Debian packages); the client must reach the head's
   * private address (same network or VPN). The server and its collections
   * end with the pool.
   */
  on?: "head";
  /**
   * The port of the head node's server (with `on: "head"`).
   *
   * @default {6390}
   */
  port?: number;
  /**
   * The namespace of the pool's keys on the server. Pools with the same
   * prefix share their collections.
   *
   * @default {"skyward:<pool id>"}
   */
  prefix?: string;
  /**
   * Leave the keys on the server when the pool closes (use with `prefix`,
   * so that a later pool finds them). By default every key under the prefix
   * is deleted at close.
   *
   * @default {false}
   */
  keep?: boolean;
  /**
   * How long the client and each node wait for the server at start, in
   * milliseconds (with `on: "head"`, from when the head node has an
   * address: it installs and starts the server meanwhile).
   *
   * @default {10000}; with `on: "head"`, 600000
   */
  connectTimeout?: number;
}

/** The value of the pool's `collections` option that {@linkcode Redis} makes. */
export interface RedisCollections extends CollectionsOption {
  /** `"redis"`. */
  readonly kind: "redis";
  /** The options as given, validated. */
  readonly options: Readonly<RedisOptions>;
}

/** What the backend module gives, as the client sees it (no `typeof import`: see `src/_lazy.ts`). */
interface RedisBackendModule {
  openBackend(
    config: RedisBackendConfigShape,
    context?: CollectionsContext,
    signal?: AbortSignal,
  ): Promise<CollectionBackend>;
}

/** The shape of `redis_backend.ts`'s `RedisBackendConfig`, which it must accept. */
interface RedisBackendConfigShape {
  url: string;
  prefix: string;
  clearOnClose: boolean;
  connectTimeoutMs: number;
  role: "client" | "node";
  head?: { port: number; password: string };
}

const loadBackend = lazyModule<RedisBackendModule>(
  new URL("./redis_backend.ts", import.meta.url),
  "the Redis client (npm:ioredis)",
);

const schema = z.object({
  url: z.string().min(1).optional(),
  on: z.literal("head").optional(),
  prefix: z.string().min(1).max(200).optional(),
  keep: z.boolean().optional(),
  connectTimeout: z.number().int().positive().optional(),
  port: z.number().int().min(1).max(65_535).optional(),
}).strict();

/**
 * The pool's collections on a Redis or Valkey server you run (or a managed
 * one). Each collection is one of the server's own structures — a dict a
 * hash, a set a set, a counter `INCRBY`, a queue a list with blocking pops —
 * and the barrier and the lock are done atomically on the server (Lua
 * scripts; a lock's lease is the key's expiry). A lock held by a node the
 * pool loses is released. Keys live under a prefix per pool and are deleted
 * when the pool closes, unless `keep` is set. With `on: "head"` the pool's
 * head node runs the server itself (see {@linkcode RedisOptions.on}).
 *
 * Needs Redis 6.2 or later, or Valkey (it uses `BLMOVE`); a single server,
 * not Redis Cluster.
 *
 * @param options The server's URL, and where its keys go.
 * @returns The value of the pool's `collections` option.
 * @throws {ConfigError} When an option is malformed, or neither or both of
 *   `url` and `on` are given.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const collections = sky.Redis({ url: "redis://:secret@10.0.0.5:6379" });
 * console.log(collections.kind); // "redis"
 * ```
 */
export function Redis(options: RedisOptions): RedisCollections {
  const valid = parseOptions(schema, options, "Invalid sky.Redis options");
  if ((valid.url === undefined) === (valid.on === undefined)) {
    throw new ConfigError(
      "Invalid sky.Redis options: give either 'url' (a server you run) or on: \"head\"",
    );
  }
  if (valid.url !== undefined) checkUrl(valid.url);
  if (valid.port !== undefined && valid.on !== "head") {
    throw new ConfigError(
      "Invalid sky.Redis options: 'port' is the head node's server's (on: \"head\"); give the port in 'url'",
    );
  }
  const head = valid.on === "head";
  if (head && valid.keep) {
    throw new ConfigError(
      "Invalid sky.Redis options: 'keep' cannot keep anything with on: \"head\", whose server ends with the pool; give the 'url' of a server of yours",
    );
  }
  // One password per pool, the same for the client and every node.
  const passwords = new Map<string, string>();
  const config = (
    context: CollectionsContext,
    role: "client" | "node",
  ): RedisBackendConfigShape => {
    let password = passwords.get(context.poolId);
    if (head && password === undefined) {
      password = Array.from(
        crypto.getRandomValues(new Uint8Array(24)),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      passwords.set(context.poolId, password);
    }
    return {
      url: valid.url ?? "",
      prefix: `${valid.prefix ?? `skyward:${context.poolId}`}:`,
      // The head's server ends with the pool: nothing to clear.
      clearOnClose: role === "client" && !valid.keep && !head,
      connectTimeoutMs: valid.connectTimeout ?? (head ? 600_000 : 10_000),
      role,
      ...(head
        ? { head: { port: valid.port ?? 6390, password: password! } }
        : {}),
    };
  };
  return {
    kind: "redis",
    options: Object.freeze({ ...valid }),
    ...(head ? { needs: { apt: ["redis-server"], privateNetwork: true } } : {}),
    async open(context) {
      const backend = await loadBackend();
      if (!head) {
        return await backend.openBackend(config(context, "client"), context);
      }
      // The head node comes up after the pool opens its collections: the
      // client connects on its first call.
      const stop = new AbortController();
      return lazyBackend(
        () =>
          backend.openBackend(config(context, "client"), context, stop.signal),
        () =>
          stop.abort(new PoolClosedError("The pool's collections are closed")),
      );
    },
    worker(context): WorkerBackendSpec {
      return {
        module: "../src/collections/redis_backend.ts",
        config: config(context, "node"),
      };
    },
  };
}

/**
 * A backend that opens on its first call (the head node's server is not up
 * when the pool opens its collections); `stop` ends an opening under way.
 */
function lazyBackend(
  open: () => Promise<CollectionBackend>,
  stop: () => void,
): CollectionBackend {
  let opening: Promise<CollectionBackend> | undefined;
  let closed = false;
  const get = () => {
    if (closed) {
      return Promise.reject(
        new PoolClosedError("The pool's collections are closed"),
      );
    }
    if (!opening) {
      opening = open();
      // A failed opening is tried again by the next call.
      opening.catch(() => {
        opening = undefined;
      });
    }
    return opening;
  };
  return {
    call: (call, holder, signal) =>
      get().then((backend) => backend.call(call, holder, signal)),
    async forget(holder) {
      const backend = await opening?.catch(() => undefined);
      await backend?.forget(holder);
    },
    async close() {
      closed = true;
      stop();
      const backend = await opening?.catch(() => undefined);
      await backend?.close();
    },
  };
}

/** Refuses a URL that cannot name a Redis server, without printing its password. */
function checkUrl(url: string): void {
  const shown = url.replace(/^(\w+:\/\/[^:@/]*:)[^@/]*@/, "$1***@");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(
      `Invalid sky.Redis options: 'url' must be redis://[:password@]host[:port][/db], got '${shown}'`,
    );
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new ConfigError(
      `Invalid sky.Redis options: 'url' must start with redis:// or rediss://, got '${shown}'`,
    );
  }
  if (!parsed.hostname) {
    throw new ConfigError(
      `Invalid sky.Redis options: 'url' names no host, got '${shown}'`,
    );
  }
}
