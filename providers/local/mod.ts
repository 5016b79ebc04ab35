/**
 * The local provider: each node is a worker process on this machine, in a
 * directory of its own that plays the node's disk. Code is shipped to it the
 * same way as to a cloud machine.
 *
 * @module
 */
import { envVar } from "../_env.ts";
import { forgetOnRelease } from "../_lent.ts";
import { machineNodeLimit } from "../_machine.ts";
import { ConfigError } from "../../src/errors.ts";
import { show, unknownOption } from "../../src/_options.ts";
import type {
  ClusterSpec,
  Instance,
  NodeLimit,
  Offer,
  Provider,
} from "../../src/provider.ts";

/** Options of {@linkcode Local}. */
export interface LocalOptions {
  /**
   * The directory under which each node gets its own directory (`node-0`,
   * `node-1`, ...). Shipped code is cached there between pools. A relative
   * path is taken from the working directory when the pool starts. It may
   * sit inside the user's project: nodes run with the shipped configuration
   * only, not the project's `deno.json` above them.
   * @default `$XDG_CACHE_HOME/skyward/local`, else `~/.cache/skyward/local`
   */
  root?: string;
  /**
   * How many versions of the shipped code from earlier pools each node's
   * directory keeps (`node-N/code/<hash>`: one per change of the project).
   * A pool that starts removes the older ones, except those a running
   * worker uses, then adds its own if missing. A removed version needed
   * again is copied again, which on this machine is a quick local copy.
   * @default 3 (switching between two branches, or undoing a change, copies
   * nothing; the disk held stays near four copies of the project per node)
   */
  keepCode?: number;
  /**
   * What each node costs, in dollars per hour, for the pool's spend, its
   * `Cost` events and its `budget` (a shared machine's share, say). Local
   * nodes cost nothing unless given a price.
   * @default 0
   */
  pricePerHour?: number;
}

/** The options {@linkcode Local} takes. */
const LOCAL_OPTIONS = ["root", "keepCode", "pricePerHour"] as const;

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
  const home = envVar("HOME");
  const cache = envVar("XDG_CACHE_HOME") ??
    (home ? `${home}/.cache` : undefined);
  return `${
    cache ?? Deno.makeTempDirSync({ prefix: "skyward-" })
  }/skyward/local`;
}

/** `path` made absolute against the working directory, `.` and `..` resolved. */
function absolute(path: string): string {
  const parts: string[] = [];
  const joined = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  for (const part of joined.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/** How many versions of the code a node's directory keeps by default. */
const DEFAULT_KEEP_CODE = 3;

/** The working directories of this machine's processes (Linux; empty elsewhere). */
async function workingDirectories(): Promise<Set<string>> {
  const dirs = new Set<string>();
  if (Deno.build.os !== "linux") return dirs;
  try {
    for await (const entry of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        dirs.add(await Deno.readLink(`/proc/${entry.name}/cwd`));
      } catch {
        // Gone, or not ours to see.
      }
    }
  } catch {
    // No /proc.
  }
  return dirs;
}

/**
 * Removes the versions of the shipped code beyond the `keep` most recent in
 * each node directory under `root`, except those a process runs in (a
 * worker's working directory is its code directory).
 *
 * @param root The directory holding `node-0`, `node-1`, ...
 * @param keep How many versions each node keeps.
 * @returns The directories removed.
 *
 * @example
 * ```ts
 * import { pruneCode } from "./mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * console.log(await pruneCode(root, 3)); // []
 * ```
 */
export async function pruneCode(root: string, keep: number): Promise<string[]> {
  const removed: string[] = [];
  let inUse: Set<string> | undefined;
  for await (const node of Deno.readDir(root)) {
    if (!node.isDirectory || !/^node-\d+$/.test(node.name)) continue;
    const codeRoot = `${root}/${node.name}/code`;
    const versions: { dir: string; time: number }[] = [];
    try {
      for await (const entry of Deno.readDir(codeRoot)) {
        if (!entry.isDirectory || !/^[0-9A-Za-z]+$/.test(entry.name)) continue;
        const dir = `${codeRoot}/${entry.name}`;
        // The marker is written when the copy is complete; without it, the
        // directory's own time.
        const stat = await Deno.stat(`${dir}/.skyward-hash`).catch(() =>
          Deno.stat(dir)
        );
        versions.push({ dir, time: stat.mtime?.getTime() ?? 0 });
      }
    } catch {
      continue;
    }
    if (versions.length <= keep) continue;
    versions.sort((a, b) => b.time - a.time);
    inUse ??= await workingDirectories();
    for (const { dir } of versions.slice(keep)) {
      const real = await Deno.realPath(dir).catch(() => dir);
      if (
        [...inUse].some((cwd) => cwd === real || cwd.startsWith(`${real}/`))
      ) continue;
      await Deno.remove(dir, { recursive: true }).then(
        () => removed.push(dir),
        () => {},
      );
    }
  }
  return removed;
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
 * import * as sky from "../../mod.ts";
 *
 * const provider = sky.Local();
 * console.log(provider.name); // "local"
 * ```
 */
export function Local(options: LocalOptions = {}): LocalProvider {
  if (
    options === null || typeof options !== "object" || Array.isArray(options)
  ) {
    throw new ConfigError(
      `Invalid sky.Local options: expected an object, got ${show(options)}`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!(LOCAL_OPTIONS as readonly string[]).includes(key)) {
      throw new ConfigError(
        `Invalid sky.Local options: ${unknownOption(key, LOCAL_OPTIONS)}`,
      );
    }
  }
  const keep = options.keepCode ?? DEFAULT_KEEP_CODE;
  if (!Number.isInteger(keep) || keep < 1) {
    throw new ConfigError(
      `Invalid sky.Local options: 'keepCode' must be a positive integer, got ${
        JSON.stringify(options.keepCode)
      }`,
    );
  }
  const price = options.pricePerHour ?? 0;
  if (typeof price !== "number" || !Number.isFinite(price) || price < 0) {
    throw new ConfigError(
      `Invalid sky.Local options: 'pricePerHour' must be a finite number of dollars, 0 or more, got ${
        show(options.pricePerHour)
      }`,
    );
  }
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
        spotPrice: price,
        onDemandPrice: price,
      }]);
    },
    async prepare(spec: ClusterSpec): Promise<LocalCluster> {
      if (
        options.root !== undefined &&
        (typeof options.root !== "string" || options.root === "")
      ) {
        throw new ConfigError(
          `Cannot prepare sky.Local(): 'root' must be a directory path, got ${
            JSON.stringify(options.root) ?? String(options.root)
          }`,
        );
      }
      const root = absolute(options.root ?? defaultRoot());
      await Deno.mkdir(root, { recursive: true });
      await pruneCode(root, keep).catch(() => {});
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
    ...forgetOnRelease((cluster: LocalCluster) => cluster.launched),
  };
}
