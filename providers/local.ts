/**
 * The local provider: each node is a worker process on this machine, in a
 * directory of its own that plays the node's disk. Code is shipped to it the
 * same way as to a cloud machine.
 *
 * @module
 */
import { ConfigError } from "../src/errors.ts";
import type {
  ClusterSpec,
  Instance,
  NodeLimit,
  Offer,
  Provider,
} from "../src/provider.ts";

/** Options of {@linkcode Local}. */
export interface LocalOptions {
  /**
   * The directory under which each node gets its own directory (`node-0`,
   * `node-1`, ...). Shipped code is cached there between pools.
   * @default `$XDG_CACHE_HOME/skyward/local`, else `~/.cache/skyward/local`
   */
  root?: string;
}

/** A prepared local cluster. */
export interface LocalCluster {
  /** The pool's id. */
  id: string;
  /** The directory holding the nodes' directories. */
  root: string;
  /** The nodes launched and not terminated, by id. */
  launched: Map<string, Instance>;
  /** The number of the next node's directory. */
  next: number;
}

function defaultRoot(): string {
  const env = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  const cache = env("XDG_CACHE_HOME") ??
    (env("HOME") ? `${env("HOME")}/.cache` : undefined);
  return `${
    cache ?? Deno.makeTempDirSync({ prefix: "skyward-" })
  }/skyward/local`;
}

/** The memory one local node needs: a Deno worker process and its warm sandbox. */
const NODE_MEMORY = 128 * 2 ** 20;

/**
 * How many nodes this machine can hold as local processes (or containers):
 * one per 128 MiB of its memory, the resident size of an idle worker with
 * its warm sandbox, rounded up.
 *
 * @param what The provider, for the message: `"sky.Local()"`.
 * @returns The bound and why.
 *
 * @example
 * ```ts
 * import { machineNodeLimit } from "./local.ts";
 *
 * console.log(machineNodeLimit("sky.Local()").reason);
 * // sky.Local() runs each node on this machine, which holds 188 (one per 128 MiB of its 23.5 GiB of memory)
 * ```
 */
export function machineNodeLimit(what: string): NodeLimit {
  let total: number | undefined;
  try {
    total = Deno.systemMemoryInfo().total;
  } catch {
    // No permission to read it: assume a small machine of 8 GiB.
  }
  const memory = total ?? 8 * 2 ** 30;
  const max = Math.max(1, Math.floor(memory / NODE_MEMORY));
  return {
    max,
    reason: `${what} runs each node on this machine, which holds ${max} ` +
      `(one per 128 MiB of its ${(memory / 2 ** 30).toFixed(1)} GiB of memory${
        total === undefined ? ", assumed" : ""
      })`,
  };
}

/** The local provider's type. */
export type LocalProvider = Provider<LocalCluster> & {
  readonly options: LocalOptions;
};

/**
 * Runs nodes as local processes, each in its own working directory. Needs no
 * cloud, no root and no network: the quickest way to run and test a program
 * with the same code paths as a cloud.
 *
 * @param options Where the nodes' directories live.
 * @returns The provider, for `ComputePool.start({ provider })`.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 *
 * const provider = sky.Local();
 * console.log(provider.name); // "local"
 * ```
 */
export function Local(options: LocalOptions = {}): LocalProvider {
  return {
    name: "local",
    options,
    get nodeLimit(): NodeLimit {
      return machineNodeLimit("sky.Local()");
    },
    offers(spec: ClusterSpec): Promise<Offer[]> {
      if (spec.accelerator) {
        return Promise.reject(
          new ConfigError(
            `sky.Local() cannot provide accelerators (the pool asked for ${spec.accelerator.count}x ` +
              `${spec.accelerator.name}): its nodes are processes on this machine. ` +
              `Leave 'accelerator' out, or use a cloud provider such as sky.AWS()`,
          ),
        );
      }
      return Promise.resolve([{
        provider: "local",
        instanceType: "process",
        region: "local",
        vcpus: navigator.hardwareConcurrency,
        spotPrice: 0,
        onDemandPrice: 0,
      }]);
    },
    async prepare(spec: ClusterSpec): Promise<LocalCluster> {
      const root = options.root ?? defaultRoot();
      await Deno.mkdir(root, { recursive: true });
      return { id: spec.clusterId, root, launched: new Map(), next: 0 };
    },
    async provision(cluster: LocalCluster, count: number): Promise<Instance[]> {
      const instances: Instance[] = [];
      for (let i = 0; i < count; i++) {
        const n = cluster.next++;
        const dir = `${cluster.root}/node-${n}`;
        await Deno.mkdir(dir, { recursive: true });
        const instance: Instance = {
          id: `local-${cluster.id}-${n}`,
          status: "running",
          endpoint: { kind: "local", dir },
          privateAddress: "127.0.0.1",
        };
        cluster.launched.set(instance.id, instance);
        instances.push(instance);
      }
      return instances;
    },
    getInstance(
      cluster: LocalCluster,
      id: string,
    ): Promise<Instance | undefined> {
      return Promise.resolve(cluster.launched.get(id));
    },
    terminate(cluster: LocalCluster, ids: string[]): Promise<void> {
      for (const id of ids) cluster.launched.delete(id);
      return Promise.resolve();
    },
    teardown(cluster: LocalCluster): Promise<void> {
      cluster.launched.clear();
      return Promise.resolve();
    },
  };
}
