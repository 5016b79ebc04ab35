/**
 * The library as a node sees it: what `@skyward/skyward` resolves to on a
 * node (in the worker process and in every sandbox), in place of `mod.ts`.
 *
 * A node imports the user's module to find its computes, and that module
 * imports the library. A task needs only {@linkcode compute} (and `all`,
 * `gather`, `wasm`), {@linkcode instanceInfo}, {@linkcode shard}, the
 * collections (`dict`, `queue`, ...), the errors and the accelerators'
 * table: this entry holds those, the same modules as
 * `mod.ts` exports, and nothing of the client (the pool, the providers, the
 * SSH library, zod, LogTape). Every other name of `mod.ts` is here too, so
 * that what a module runs at its top level on the client imports fine on a
 * node: `sky.Image({...})` and `sky.Spec({...})` give back their options
 * unchecked (they are checked where the pool starts, on the client),
 * `sky.Local()` and the other providers give a stand-in that only knows its
 * `name`, and `ComputePool.start()` rejects with the `ConfigError` that
 * points at the `import.meta.main` guard. Using a stand-in throws a
 * `ConfigError` saying that it belongs to the client.
 *
 * The nodes' import map points the library's `mod.ts` (by bare name, path or
 * URL) here (see `src/bootstrap/node_config.ts`); its imports are a subset of
 * `mod.ts`'s, so it ships with the library's files at no cost.
 *
 * @example
 * ```ts
 * import * as sky from "./node.ts";
 *
 * const provider = sky.Local(); // Top-level client code imports fine.
 * console.log(provider.name); // "local"
 * await sky.ComputePool.start({ provider }).catch((e) => console.log(e.name)); // ConfigError
 * ```
 *
 * @module
 */
import type * as client from "./mod.ts";
import { ConfigError } from "./src/errors.ts";

export { all, compute, gather } from "./src/compute.ts";
export {
  BudgetExceededError,
  ConfigError,
  NodeLostError,
  NoOffersError,
  PoolClosedError,
  ProtocolError,
  ProvisioningError,
  QueueClosedError,
  RemoteError,
  SerializationError,
  TaskCancelledError,
  TaskTimeoutError,
} from "./src/errors.ts";
export { formatDollars, formatEvent } from "./src/events.ts";
export { instanceInfo } from "./src/instance.ts";
export { shard, shardAll } from "./src/shard.ts";
export { wasm } from "./src/wasm.ts";
export { ACCELERATOR_MODELS, accelerators } from "./src/accelerators.ts";
export { dict } from "./src/collections/dict.ts";
export { set } from "./src/collections/set.ts";
export { counter } from "./src/collections/counter.ts";
export { queue } from "./src/collections/queue.ts";
export { barrier } from "./src/collections/barrier.ts";
export { lock } from "./src/collections/lock.ts";

/** The error a client-only part of the library throws when used on a node. */
function clientOnly(what: string): ConfigError {
  return new ConfigError(
    `${what} belongs to the client and cannot be used on a node: a task's ` +
      `module is imported there only to define its computes. Put the code ` +
      `that uses it under \`if (import.meta.main) { ... }\`.`,
  );
}

/** A provider on a node: its name, and a clear error for anything else. */
function standIn<T>(factory: string, name: string): () => T {
  return () =>
    new Proxy(Object.freeze({ name }), {
      get(target, key) {
        if (typeof key === "symbol" || key === "name") {
          return Reflect.get(target, key);
        }
        // Awaiting or serialising the stand-in must not throw.
        if (key === "then" || key === "toJSON") return undefined;
        throw clientOnly(`sky.${factory}().${key}`);
      },
    }) as T;
}

/** The place in the user's code that called, from the stack. */
function caller(): string {
  const here = new URL(import.meta.url).pathname;
  return new Error().stack?.split("\n").slice(1).find((line) =>
    line.includes("at ") && !line.includes(here)
  )?.trim() ?? "unknown place";
}

/**
 * `ComputePool` on a node: `start()` rejects with the `ConfigError` that
 * points at the `import.meta.main` guard, as on the client's worker check.
 *
 * @example
 * ```ts
 * import { ComputePool } from "./node.ts";
 *
 * await ComputePool.start({}).catch((e) => console.log(e.name)); // ConfigError
 * ```
 */
export const ComputePool: typeof client.ComputePool = class ComputePool {
  static start(): Promise<never> {
    return Promise.reject(
      new ConfigError(
        `ComputePool.start() was called while a worker imported your module (${caller()}). ` +
          `Put the code that starts pools under \`if (import.meta.main) { ... }\`, so that ` +
          `importing the module only defines its computes.`,
      ),
    );
  }
} as unknown as typeof client.ComputePool;

/**
 * `sky.Image()` on a node: the options, unchecked (the pool checks them on
 * the client).
 *
 * @example
 * ```ts
 * import { Image } from "./node.ts";
 *
 * console.log(Image({ env: { MODE: "prod" } }).env?.MODE); // "prod"
 * ```
 */
export const Image: typeof client.Image =
  ((options = {}) => Object.freeze({ ...options })) as typeof client.Image;

/**
 * `sky.Spec()` on a node: the options, unchecked (the pool checks them on
 * the client).
 *
 * @example
 * ```ts
 * import { Local, Spec } from "./node.ts";
 *
 * console.log(Spec({ provider: Local(), nodes: 2 }).nodes); // 2
 * ```
 */
export const Spec: typeof client.Spec =
  ((options) => Object.freeze({ ...options })) as typeof client.Spec;

/**
 * `sky.parseTarget()` belongs to the client: on a node it throws.
 *
 * @example
 * ```ts
 * import { parseTarget } from "./node.ts";
 *
 * try {
 *   parseTarget("sky@10.0.0.1", "sky");
 * } catch (e) {
 *   console.log((e as Error).name); // ConfigError
 * }
 * ```
 */
export const parseTarget: typeof client.parseTarget = () => {
  throw clientOnly("sky.parseTarget()");
};

/**
 * `sky.Local()` on a node: a stand-in that knows its `name`.
 *
 * @example
 * ```ts
 * import { Local } from "./node.ts";
 *
 * console.log(Local().name); // "local"
 * ```
 */
export const Local: typeof client.Local = standIn("Local", "local");
/**
 * `sky.SSH()` on a node: a stand-in that knows its `name`.
 *
 * @example
 * ```ts
 * import { SSH } from "./node.ts";
 *
 * console.log(SSH({ hosts: [] }).name); // "ssh"
 * ```
 */
export const SSH: typeof client.SSH = standIn("SSH", "ssh");
/**
 * `sky.Container()` on a node: a stand-in that knows its `name`.
 *
 * @example
 * ```ts
 * import { Container } from "./node.ts";
 *
 * console.log(Container().name); // "container"
 * ```
 */
export const Container: typeof client.Container = standIn(
  "Container",
  "container",
);
/**
 * `sky.AWS()` on a node: a stand-in that knows its `name`.
 *
 * @example
 * ```ts
 * import { AWS } from "./node.ts";
 *
 * console.log(AWS().name); // "aws"
 * ```
 */
export const AWS: typeof client.AWS = standIn("AWS", "aws");
/**
 * `sky.RunPod()` on a node: a stand-in that knows its `name`.
 *
 * @example
 * ```ts
 * import { RunPod } from "./node.ts";
 *
 * console.log(RunPod().name); // "runpod"
 * ```
 */
export const RunPod: typeof client.RunPod = standIn("RunPod", "runpod");
/**
 * `sky.VastAI()` on a node: a stand-in that knows its `name`.
 *
 * @example
 * ```ts
 * import { VastAI } from "./node.ts";
 *
 * console.log(VastAI().name); // "vastai"
 * ```
 */
export const VastAI: typeof client.VastAI = standIn("VastAI", "vastai");
/**
 * `sky.Verda()` on a node: a stand-in that knows its `name`.
 *
 * @example
 * ```ts
 * import { Verda } from "./node.ts";
 *
 * console.log(Verda().name); // "verda"
 * ```
 */
export const Verda: typeof client.Verda = standIn("Verda", "verda");
/**
 * `sky.Redis()` on a node: a stand-in that knows its `kind` (the nodes
 * reach the pool's collections through their worker, which opens Redis
 * itself).
 *
 * @example
 * ```ts
 * import { Redis } from "./node.ts";
 *
 * console.log(Redis({ url: "redis://10.0.0.5:6379" }).kind); // "redis"
 * ```
 */
export const Redis: typeof client.Redis =
  (() =>
    new Proxy(Object.freeze({ kind: "redis" }), {
      get(target, key) {
        if (typeof key === "symbol" || key === "kind") {
          return Reflect.get(target, key);
        }
        if (key === "then" || key === "toJSON") return undefined;
        throw clientOnly(`sky.Redis().${key}`);
      },
    })) as unknown as typeof client.Redis;
