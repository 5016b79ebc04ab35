/**
 * The container provider: each node is a Docker (or Podman) container on
 * this machine, reached over SSH like a cloud machine.
 *
 * A pool gets one bridge network of its own (or uses the one you name, and
 * leaves it in place). Each container runs `sshd` as the only service, with
 * a host key and an authorised client key the provider makes for it, so the
 * pool connects, bootstraps and starts the worker exactly as on a cloud
 * machine, at the container's own address on the cluster network; the nodes
 * reach each other at the addresses in `instanceInfo().peers`.
 *
 * Everything it makes carries the label `skyward.cluster=<pool id>` (and
 * `skyward.owner`, the client process that made it) and a name starting with
 * the prefix (`skyward-<pool id>-<n>`). Closing the pool removes them by
 * label; what a crashed client left is swept by the next pool on this
 * machine, or by `sky.Container().cleanup()`. Containers run with `--rm`, so
 * one that stops (killed, or past its `ttl`) leaves nothing behind.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { parseOptions } from "../../src/_options.ts";
import { ConfigError, ProvisioningError } from "../../src/errors.ts";
import type {
  ClusterSpec,
  Instance,
  Offer,
  ProviderWithCleanup,
} from "../../src/provider.ts";
import type { ProviderCleanupOptions } from "../../src/provider.ts";
import { DEFAULT_IMAGE, IMAGE_USER } from "./image.ts";
import { refuseCleanupOptions } from "../_cleanup.ts";
import { Cli, errorText, inspectContainers, lines } from "./runtime.ts";
import { owner, ownerGone } from "./owner.ts";
import { entrypoint } from "./entrypoint.ts";
import { accepts } from "./sshd.ts";
import { retry } from "../../src/_retry.ts";
import { generateSshKeyPair } from "../_keys.ts";
import { machineNodeLimit } from "../_machine.ts";
import {
  addNamespace,
  createBridge,
  listBridges,
  removeBridge,
  removeNamespace,
} from "./netns.ts";

/** Options of {@linkcode Container}. */
export interface ContainerOptions {
  /**
   * The container CLI. With Podman the client must run as root: its nodes
   * join a bridge and network namespaces the provider makes with `ip`
   * (`--network ns:`), never Podman's own networks, which add rules to the
   * host's firewall.
   * @default "docker"
   */
  binary?: "docker" | "podman";
  /**
   * The image to run: any image with `/bin/sh`, `/usr/sbin/sshd`, `tar` and
   * coreutils (and a user `sky`, or `useradd`). Build the default one with
   * `deno run -A jsr:@skyward/skyward/cli image build`.
   * @default DEFAULT_IMAGE ("skyward-base:bookworm-v1")
   */
  image?: string;
  /**
   * CPUs each container may use (`--cpus`), e.g. `1.5`.
   * @default no limit
   */
  cpus?: number;
  /**
   * Memory each container may use (`--memory`): a number of bytes followed
   * by `k`, `m` or `g`, e.g. `"512m"`.
   * @default no limit
   */
  memory?: string;
  /**
   * An existing Docker network to put the containers on, left in place at
   * the end. The client must reach the containers' addresses on it (a
   * bridge network on this machine does). Docker only.
   * @default a new bridge network per pool, removed at the end
   */
  network?: string;
  /**
   * Lifetime of each container, in milliseconds: past it, the container
   * stops (its PID 1 exits) and is removed, whatever the pool is doing.
   * A safety net for a client that dies without closing its pool (a pool
   * still running replaces such a node, like any node it loses).
   * @default no limit
   */
  ttl?: number;
  /**
   * The daemon to talk to, e.g. `"unix:///run/skyward-docker/docker.sock"`:
   * `DOCKER_HOST` for Docker, `CONTAINER_HOST` for Podman.
   * @default the CLI's own default (`DOCKER_HOST` / `CONTAINER_HOST` when set)
   */
  host?: string;
  /**
   * The prefix of container and network names.
   * @default "skyward"
   */
  namePrefix?: string;
  /**
   * Keeps what each node was given — Deno, the npm packages, the shipped
   * code — between pools, in a named volume per node index
   * (`<namePrefix>-cache-0`, `<namePrefix>-cache-1`, ...) mounted at the
   * login user's `~/.cache/skyward`, as a machine keeps its disk: a second
   * pool finds them there and ships nothing again. A pool's first
   * container on a volume no running container uses keeps there the three
   * most recent versions of the code (and of the library) and the two most
   * recent Deno binaries, and removes the rest. `false`: every container
   * starts empty. Remove the volumes with
   * `sky.Container().cleanup({ caches: true })`.
   * @default true
   */
  cache?: boolean;
  /**
   * What each container costs, in dollars per hour, for the pool's spend,
   * its `Cost` events and its `budget` (a share of the machine, say).
   * Containers cost nothing unless given a price.
   * @default 0
   */
  pricePerHour?: number;
}

/** A prepared container cluster: its network, its keys, its containers. */
export interface ContainerCluster {
  /** The pool's id, the value of every resource's `skyward.cluster` label. */
  id: string;
  /** The network the containers are on: a Docker network, or with Podman the provider's bridge. */
  network: string;
  /** Whether the provider made the network (and removes it at teardown). */
  ownNetwork: boolean;
  /**
   * With Podman, the bridge whose namespaces the containers join: its name
   * and the first three octets of its /24.
   */
  bridge?: { name: string; prefix: string };
  /** The client's private key, authorised in every container. */
  privateKey: string;
  /** Its public key line. */
  publicKey: string;
  /** The containers launched, by name. */
  launched: Map<string, { hostKey: string; index: number; address?: string }>;
  /** The number of the next container. */
  next: number;
  /**
   * The cache volumes no running container used when the pool started:
   * the first container of the pool to mount one prunes it.
   */
  prunable?: Set<string>;
}

/** What {@linkcode ContainerProvider.cleanup} removed. */
export type CleanupReport = {
  /** Names of the containers removed. */
  containers: string[];
  /** Names of the networks removed. */
  networks: string[];
  /** Names of the cache volumes removed (with `caches: true`). */
  volumes: string[];
};

/** Options of {@linkcode ContainerProvider.cleanup}. */
export interface CleanupOptions extends ProviderCleanupOptions {
  /**
   * Removes every skyward container and network, also those of pools still
   * running (in this process or another). By default only what belongs to
   * client processes on this machine that are no longer running is removed.
   * @default false
   */
  all?: boolean;
  /** Removes this cluster's containers and network only, whoever made them. */
  cluster?: string;
  /**
   * Also removes the nodes' cache volumes (see {@linkcode ContainerOptions.cache})
   * that no container uses: the next pool ships Deno and its packages again.
   * @default false
   */
  caches?: boolean;
}

/**
 * The container provider's type: a {@linkcode Provider} with its resolved
 * options and a `cleanup()` for what crashed clients left: containers and
 * networks labelled `skyward.cluster` whose client process on this machine
 * is gone (`all` removes every skyward resource; `cluster` one pool's).
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const provider: sky.ContainerProvider = sky.Container({ binary: "docker" });
 * console.log(provider.options.namePrefix); // "skyward"
 * // After a client was killed: await provider.cleanup();
 * ```
 */
export type ContainerProvider = ProviderWithCleanup<
  ContainerCluster,
  Readonly<ResolvedContainerOptions>,
  CleanupOptions,
  CleanupReport
>;

/** The options with their defaults filled in. */
export interface ResolvedContainerOptions {
  /** The container CLI. */
  binary: "docker" | "podman";
  /** The image. */
  image: string;
  /** The CPU limit, if any. */
  cpus?: number;
  /** The memory limit, if any. */
  memory?: string;
  /** The network to use instead of a new one, if any. */
  network?: string;
  /** The lifetime of each container in milliseconds (0: no limit). */
  ttl: number;
  /** The daemon, if given. */
  host?: string;
  /** The prefix of names. */
  namePrefix: string;
  /** Whether nodes keep their cache in a named volume per node index. */
  cache: boolean;
  /** What each container costs, in dollars per hour. */
  pricePerHour: number;
}

const CLUSTER_LABEL = "skyward.cluster";
const OWNER_LABEL = "skyward.owner";
const NODE_LABEL = "skyward.node";
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Where a node's cache volume is mounted: the bootstrap's cache directory. */
const CACHE_MOUNT = `/home/${IMAGE_USER}/.cache/skyward`;

const schema = z.object({
  binary: z.enum(["docker", "podman"]).default("docker"),
  image: z.string().min(1).default(DEFAULT_IMAGE),
  cpus: z.number().positive().optional(),
  memory: z.string().regex(
    /^\d+(\.\d+)?[bkmg]?$/i,
    'must look like "512m" or "2g"',
  ).optional(),
  network: z.string().regex(NAME, "must be a network name").optional(),
  ttl: z.number().int().nonnegative().default(0),
  host: z.string().min(1).optional(),
  namePrefix: z.string().regex(NAME, "must be letters, digits, '_', '.' or '-'")
    .default("skyward"),
  cache: z.boolean().default(true),
  pricePerHour: z.number().nonnegative().default(0),
}).strict();

// ---------------------------------------------------------------------------
// The provider

interface Inspected {
  /** The container's state: `running`, `exited`, ... */
  status: string;
  /** Its address on each network, by network name. */
  addresses: Record<string, string>;
}

/**
 * Runs each node in a container of its own on this machine, with the
 * `docker` (or `podman`) CLI: the way to try a multi-node program, with real
 * addresses between nodes, without a cloud. The nodes are reached over SSH
 * and bootstrapped like cloud machines; the default image holds no Deno
 * (the pool uploads the client's binary) and is built with
 * `skyward image build` (`deno run -A jsr:@skyward/skyward/cli image build`).
 * Each node keeps Deno, the npm packages and the code in a volume per node
 * index, so the next pool ships nothing again (`cache`).
 *
 * @param options The CLI, the image, limits, network and TTL.
 * @returns The provider, for `ComputePool.start({ provider })`.
 * @throws {ConfigError} When an option is invalid.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const provider = sky.Container({ cpus: 1, memory: "1g", ttl: 3_600_000 });
 * console.log(provider.name, provider.options.image); // "container" "skyward-base:bookworm-v1"
 * // await using pool = await sky.ComputePool.start({ provider, nodes: 2 });
 * // and, after a crash: await sky.Container().cleanup();
 * ```
 */
export function Container(options: ContainerOptions = {}): ContainerProvider {
  const valid = parseOptions(schema, options, "Invalid sky.Container options");
  const resolved: ResolvedContainerOptions = valid;
  const podman = resolved.binary === "podman";
  if (podman && resolved.network) {
    throw new ConfigError(
      `Cannot use sky.Container({ binary: "podman", network }): with Podman the provider makes ` +
        `the nodes' network itself (Podman's own networks change the host's firewall)`,
    );
  }
  const cli = new Cli(resolved);
  const prefix = resolved.namePrefix;
  const cacheVolume = (index: number) => `${prefix}-cache-${index}`;

  async function inspect(names: string[]): Promise<Map<string, Inspected>> {
    const found = new Map<string, Inspected>();
    if (names.length === 0) return found;
    // One JSON line per container that exists; missing ones only print errors.
    const out = await cli.run(inspectContainers(
      "{{json .Name}}\t{{json .State.Status}}\t{{json .NetworkSettings.Networks}}",
      names,
    ));
    for (const line of lines(out.stdout)) {
      const [name, status, networks] = line.split("\t").map((f) =>
        JSON.parse(f)
      );
      const addresses: Record<string, string> = {};
      for (const [net, settings] of Object.entries(networks ?? {})) {
        const ip = (settings as { IPAddress?: string } | null)?.IPAddress;
        if (ip) addresses[net] = ip;
      }
      found.set(String(name).replace(/^\//, ""), {
        status: String(status),
        addresses,
      });
    }
    if (out.code !== 0 && found.size === 0 && !/no such/i.test(out.stderr)) {
      throw new ProvisioningError(
        `'${cli.binary} inspect' failed: ${errorText(out.stderr)}`,
      );
    }
    return found;
  }

  function instanceOf(
    cluster: ContainerCluster,
    name: string,
    record: Inspected,
  ): Instance {
    const status = record.status === "running"
      ? "running"
      : record.status === "created" || record.status === "restarting" ||
          record.status === "configured" || record.status === "initialized"
      ? "pending"
      : "terminated";
    const known = cluster.launched.get(name);
    const address = record.addresses[cluster.network] ?? known?.address;
    if (status !== "running" || !address || !known) {
      return {
        id: name,
        status: status === "running" ? "pending" : status,
        spot: false,
      };
    }
    return {
      id: name,
      status,
      spot: false,
      privateAddress: address,
      endpoint: {
        kind: "ssh",
        host: address,
        port: 22,
        user: IMAGE_USER,
        privateKey: cluster.privateKey,
        hostKey: known.hostKey,
      },
    };
  }

  /** Removes containers (already gone is fine). */
  async function remove(names: string[]): Promise<void> {
    if (names.length === 0) return;
    const out = await cli.run(["rm", "-f", ...names]);
    const errors = lines(out.stderr).filter((l) =>
      !/no such container|already in progress|is not running|WARNING/i.test(l)
    );
    if (out.code !== 0 && errors.length > 0) {
      throw new ProvisioningError(
        `'${cli.binary} rm' failed: ${errors.join("; ")}`,
      );
    }
  }

  async function removeNetwork(name: string): Promise<void> {
    const refused = new WeakSet<Error>();
    await retry(async () => {
      const out = await cli.run(["network", "rm", name]);
      if (out.code === 0 || /no such network|not found/i.test(out.stderr)) {
        return;
      }
      const error = new ProvisioningError(
        `Cannot remove network ${name}: ${errorText(out.stderr)}`,
      );
      refused.add(error);
      throw error;
    }, {
      // Endpoints of containers being removed may linger a moment.
      maxAttempts: 21,
      minDelay: 250,
      multiplier: 1,
      jitter: 0,
      isRetriable: (error) => refused.has(error as Error),
    });
  }

  /** The ids of a cluster's containers, running or not. */
  async function containersOf(clusterId: string): Promise<string[]> {
    return lines(
      await cli.must([
        "ps",
        "-aq",
        "--filter",
        `label=${CLUSTER_LABEL}=${clusterId}`,
      ]),
    );
  }

  /** Labels of every skyward container and network, by name. */
  async function labelled(filter: string): Promise<{
    containers: Map<string, Record<string, string>>;
    networks: Map<string, Record<string, string>>;
  }> {
    /** The names and labels of what a listing returns, read by `inspect`. */
    const labelsOf = async (list: string[], inspect: string[]) => {
      const found = new Map<string, Record<string, string>>();
      const ids = lines(
        await cli.must([...list, "--filter", `label=${filter}`]),
      );
      if (ids.length === 0) return found;
      const out = await cli.run([...inspect, ...ids]);
      for (const line of lines(out.stdout)) {
        const [name, labels] = line.split("\t").map((f) => JSON.parse(f));
        found.set(String(name).replace(/^\//, ""), labels ?? {});
      }
      return found;
    };
    return {
      containers: await labelsOf(
        ["ps", "-aq"],
        inspectContainers("{{json .Name}}\t{{json .Config.Labels}}", []),
      ),
      networks: await labelsOf(["network", "ls", "-q"], [
        "network",
        "inspect",
        "--format",
        "{{json .Name}}\t{{json .Labels}}",
      ]),
    };
  }

  async function cleanup(options: CleanupOptions = {}): Promise<CleanupReport> {
    refuseCleanupOptions("container", options, {
      olderThan: "containers are swept by whether their client still runs; " +
        "use cluster, or all",
      region: "its containers run on this machine",
      ...(options.caches
        ? { dryRun: "a dry run cannot tell which cache volumes are in use" }
        : {}),
    });
    const filter = options.cluster
      ? `${CLUSTER_LABEL}=${options.cluster}`
      : CLUSTER_LABEL;
    const { containers, networks } = await labelled(filter);
    const doomed = (labels: Record<string, string>) =>
      options.all || options.cluster !== undefined ||
      ownerGone(labels[OWNER_LABEL]);
    const report: CleanupReport = {
      containers: [...containers].filter(([, l]) => doomed(l)).map(([n]) => n),
      networks: [...networks].filter(([, l]) => doomed(l)).map(([n]) => n),
      volumes: [],
    };
    if (podman && Deno.build.os === "linux") {
      for (const [bridge, labels] of await listBridges()) {
        const ours = options.cluster === undefined ||
          labels[CLUSTER_LABEL] === options.cluster;
        if (ours && doomed(labels)) report.networks.push(bridge);
      }
    }
    if (options.dryRun) return report;
    await remove(report.containers);
    for (const network of report.networks) {
      if (podman) await removeBridge(network);
      else await removeNetwork(network);
    }
    if (options.caches) report.volumes = await removeCaches();
    return report;
  }

  /** The cache volumes of the first `count` node indices that no running container mounts. */
  async function freeCaches(count: number): Promise<Set<string>> {
    const free = new Set(
      Array.from({ length: count }, (_, i) => cacheVolume(i)),
    );
    const running = lines(
      await cli.must(["ps", "-q", "--filter", `label=${CLUSTER_LABEL}`]),
    );
    if (running.length === 0) return free;
    const out = await cli.must(
      inspectContainers("{{range .Mounts}}{{.Name}} {{end}}", running),
    );
    for (const name of out.split(/\s+/)) free.delete(name);
    return free;
  }

  /** Removes the cache volumes no container uses; returns their names. */
  async function removeCaches(): Promise<string[]> {
    const pattern = new RegExp(`^${prefix.replaceAll(".", "\\.")}-cache-\\d+$`);
    const names = lines(
      await cli.must([
        "volume",
        "ls",
        "-q",
        "--filter",
        `name=${prefix}-cache-`,
      ]),
    ).filter((n) => pattern.test(n));
    const removed: string[] = [];
    for (const name of names) {
      // A volume a container still uses is refused: it stays.
      if ((await cli.run(["volume", "rm", name])).code === 0) {
        removed.push(name);
      }
    }
    return removed;
  }

  async function launch(cluster: ContainerCluster): Promise<Instance> {
    const index = cluster.next++;
    const name = `${prefix}-${cluster.id}-${index}`;
    const prune = cluster.prunable?.delete(cacheVolume(index)) ?? false;
    const hostKeys = await generateSshKeyPair(name);
    const attached = cluster.bridge
      ? await addNamespace(cluster.bridge, index)
      : undefined;
    const args = [
      "run",
      "--detach",
      "--rm",
      "--name",
      name,
      "--hostname",
      name.slice(0, 63),
      "--network",
      attached ? `ns:${attached.path}` : cluster.network,
      "--label",
      `${CLUSTER_LABEL}=${cluster.id}`,
      "--label",
      `${OWNER_LABEL}=${owner()}`,
      "--label",
      `${NODE_LABEL}=${index}`,
      "--ulimit",
      "nofile=4096:4096",
      "--ulimit",
      "nproc=4096:4096",
      "--env",
      "SKYWARD_HOST_KEY",
      "--env",
      "SKYWARD_AUTHORIZED_KEY",
      ...(resolved.cache
        ? ["--volume", `${cacheVolume(index)}:${CACHE_MOUNT}`]
        : []),
      ...(prune ? ["--env", "SKYWARD_PRUNE=1"] : []),
      ...(resolved.cpus ? ["--cpus", String(resolved.cpus)] : []),
      ...(resolved.memory ? ["--memory", resolved.memory] : []),
      resolved.image,
      "/bin/sh",
      "-c",
      entrypoint(resolved.ttl, IMAGE_USER),
    ];
    cluster.launched.set(name, {
      hostKey: hostKeys.publicKey,
      index,
      address: attached?.address,
    });
    const out = await cli.run(args, {
      env: {
        SKYWARD_HOST_KEY: hostKeys.privateKey,
        SKYWARD_AUTHORIZED_KEY: cluster.publicKey,
      },
      timeoutMs: 120_000,
    });
    if (out.code !== 0) {
      cluster.launched.delete(name);
      await remove([name]).catch(() => {});
      if (cluster.bridge) await removeNamespace(cluster.bridge.name, index);
      throw new ProvisioningError(
        `Cannot start container ${name}: ${errorText(out.stderr)}`,
      );
    }
    const record = (await inspect([name])).get(name);
    const instance = record ? instanceOf(cluster, name, record) : undefined;
    if (!instance || instance.status !== "running" || !instance.endpoint) {
      return instance ?? { id: name, status: "terminated" };
    }
    const { host, port } = instance.endpoint as { host: string; port: number };
    if (!(await accepts(host, port, 60_000))) {
      const logs = await cli.run(["logs", "--tail", "20", name]);
      throw new ProvisioningError(
        `Container ${name} runs, but its sshd does not answer at ${host}:${port} ` +
          `within 60 s; its output: ${
            errorText(logs.stdout + logs.stderr).slice(0, 2_000)
          }`,
      );
    }
    return instance;
  }

  return {
    name: "container",
    options: resolved,
    get nodeLimit() {
      return machineNodeLimit("sky.Container()");
    },
    cleanup,
    // The container's entrypoint exits (and --rm removes it) once this
    // file exists: the worker, not root, cannot stop it otherwise.
    powerOffCommand: "touch /run/skyward/poweroff",
    sweepHint: (cluster) =>
      `await sky.Container().cleanup({ cluster: "${cluster}" }), or ` +
      `${cli.binary} rm -f $(${cli.binary} ps -aq --filter label=${CLUSTER_LABEL}=${cluster})`,
    offers(_spec: ClusterSpec): Promise<Offer[]> {
      return Promise.resolve([{
        provider: "container",
        instanceType: resolved.image,
        region: "local",
        vcpus: resolved.cpus ?? navigator.hardwareConcurrency,
        spotPrice: resolved.pricePerHour,
        onDemandPrice: resolved.pricePerHour,
      }]);
    },
    async prepare(spec: ClusterSpec): Promise<ContainerCluster> {
      if (spec.accelerator) {
        throw new ConfigError(
          `Cannot give containers an accelerator (${spec.accelerator.name}): sky.Container has none`,
        );
      }
      const version = await cli.run([
        "version",
        "--format",
        "{{.Server.Version}}",
      ], {
        timeoutMs: 20_000,
      });
      if (version.code !== 0) {
        throw new ProvisioningError(
          `Cannot reach the ${cli.binary} daemon${
            resolved.host ? ` at ${resolved.host}` : ""
          }: ${
            errorText(version.stderr)
          }. Start it (for this project's tests: deno task docker:up, then ` +
            `export DOCKER_HOST=unix:///run/skyward-docker/docker.sock) or pass sky.Container({ host })`,
        );
      }
      if ((await cli.run(["image", "inspect", resolved.image])).code !== 0) {
        throw new ConfigError(
          `Cannot start containers: the image ${resolved.image} is missing` +
            (resolved.image === DEFAULT_IMAGE
              ? " (build it with: deno run -A jsr:@skyward/skyward/cli image build, " +
                "or from a clone: deno task image:build)"
              : ""),
        );
      }
      if (podman && Deno.uid() !== 0) {
        throw new ConfigError(
          `Cannot use sky.Container({ binary: "podman" }) as uid ${Deno.uid()}: the nodes' ` +
            `network is made with 'ip', which needs root`,
        );
      }
      // What crashed clients on this machine left.
      await cleanup().catch(() => {});
      const prunable = resolved.cache
        ? await freeCaches(spec.nodes).catch(() => new Set<string>())
        : undefined;
      const keys = await generateSshKeyPair(`skyward-${spec.clusterId}`);
      if (podman) {
        const bridge = await createBridge({
          [CLUSTER_LABEL]: spec.clusterId,
          [OWNER_LABEL]: owner(),
        });
        return {
          id: spec.clusterId,
          network: bridge.name,
          ownNetwork: true,
          bridge,
          privateKey: keys.privateKey,
          publicKey: keys.publicKey,
          launched: new Map(),
          next: 0,
          prunable,
        };
      }
      const network = resolved.network ?? `${prefix}-${spec.clusterId}`;
      if (!resolved.network) {
        await cli.must([
          "network",
          "create",
          "--driver",
          "bridge",
          "--label",
          `${CLUSTER_LABEL}=${spec.clusterId}`,
          "--label",
          `${OWNER_LABEL}=${owner()}`,
          network,
        ]);
      }
      return {
        id: spec.clusterId,
        network,
        ownNetwork: !resolved.network,
        privateKey: keys.privateKey,
        publicKey: keys.publicKey,
        launched: new Map(),
        next: 0,
        prunable,
      };
    },
    async provision(
      cluster: ContainerCluster,
      count: number,
    ): Promise<Instance[]> {
      const results = await Promise.allSettled(
        Array.from({ length: count }, () => launch(cluster)),
      );
      const instances = results.flatMap((r) =>
        r.status === "fulfilled" ? [r.value] : []
      );
      const failure = results.find((r): r is PromiseRejectedResult =>
        r.status === "rejected"
      );
      if (instances.length === 0 && failure) throw failure.reason;
      return instances;
    },
    async getInstance(
      cluster: ContainerCluster,
      id: string,
    ): Promise<Instance | undefined> {
      const record = (await inspect([id])).get(id);
      return record ? instanceOf(cluster, id, record) : undefined;
    },
    async terminate(cluster: ContainerCluster, ids: string[]): Promise<void> {
      await remove(ids);
      for (const id of ids) {
        const known = cluster.launched.get(id);
        if (cluster.bridge && known) {
          await removeNamespace(cluster.bridge.name, known.index);
        }
        cluster.launched.delete(id);
      }
    },
    async teardown(cluster: ContainerCluster): Promise<void> {
      const left = await containersOf(cluster.id);
      await remove(left);
      cluster.launched.clear();
      if (cluster.bridge) await removeBridge(cluster.bridge.name);
      else if (cluster.ownNetwork) await removeNetwork(cluster.network);
      const still = await containersOf(cluster.id);
      if (still.length > 0) {
        throw new ProvisioningError(
          `${still.length} container(s) of cluster ${cluster.id} are left; remove them with ` +
            `sky.Container().cleanup({ cluster: "${cluster.id}" }) or ` +
            `'${cli.binary} rm -f $(${cli.binary} ps -aq --filter label=${CLUSTER_LABEL}=${cluster.id})'`,
        );
      }
    },
  };
}
