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
import { ConfigError } from "../errors.ts";
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
   * `"head"`: the pool's head node would run `redis-server` for the pool.
   * Not available in this version: `sky.Redis({ on: "head" })` throws a
   * `ConfigError` saying so; run a server every node reaches and pass `url`.
   */
  on?: "head";
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
   * milliseconds.
   *
   * @default {10000}
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
  ): Promise<CollectionBackend>;
}

/** The shape of `redis_backend.ts`'s `RedisBackendConfig`, which it must accept. */
interface RedisBackendConfigShape {
  url: string;
  prefix: string;
  clearOnClose: boolean;
  connectTimeoutMs: number;
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
}).strict();

/**
 * The pool's collections on a Redis or Valkey server you run (or a managed
 * one). Each collection is one of the server's own structures — a dict a
 * hash, a set a set, a counter `INCRBY`, a queue a list with blocking pops —
 * and the barrier and the lock are done atomically on the server (Lua
 * scripts; a lock's lease is the key's expiry). A lock held by a node the
 * pool loses is released. Keys live under a prefix per pool and are deleted
 * when the pool closes, unless `keep` is set.
 *
 * Needs Redis 6.2 or later, or Valkey (it uses `BLMOVE`); a single server,
 * not Redis Cluster.
 *
 * @param options The server's URL, and where its keys go.
 * @returns The value of the pool's `collections` option.
 * @throws {ConfigError} When an option is malformed, neither or both of
 *   `url` and `on` are given, or `on: "head"` is (not available yet).
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
  if (valid.on === "head") {
    throw new ConfigError(
      'Invalid sky.Redis options: on: "head" (redis-server on the head node) is not available in this version; ' +
        "run redis-server where the client and every node reach it and pass sky.Redis({ url })",
    );
  }
  checkUrl(valid.url!);
  const config = (context: CollectionsContext, client: boolean) => {
    return {
      url: valid.url!,
      prefix: `${valid.prefix ?? `skyward:${context.poolId}`}:`,
      clearOnClose: client && !valid.keep,
      connectTimeoutMs: valid.connectTimeout ?? 10_000,
    };
  };
  return {
    kind: "redis",
    options: Object.freeze({ ...valid }),
    async open(context) {
      const backend = await loadBackend();
      return await backend.openBackend(config(context, true), context);
    },
    worker(context): WorkerBackendSpec {
      return {
        module: "../src/collections/redis_backend.ts",
        config: config(context, false),
      };
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
