/**
 * The RunPod provider: GPU pods as the pool's nodes, through RunPod's
 * GraphQL API.
 *
 * - **Offers**: the GPU types that match the accelerator (see
 *   `gpu_types.ts`), priced per machine from `lowestPrice` for the pod's
 *   GPU count, vCPUs and memory (`uninterruptablePrice` on demand,
 *   `minimumBidPrice` spot), without those RunPod has no stock of, capped
 *   by `maxHourlyCost` and ranked for the allocation.
 * - **prepare**: a per-pool Ed25519 key pair, made here; nothing is created
 *   at RunPod.
 * - **provision**: one pod per node, `podRentInterruptable` at a bid or
 *   `podFindAndDeployOnDemand`, as the allocation says (spot falling back to
 *   on-demand when RunPod has no spot machine, where allowed); each pod
 *   exposes `22/tcp` on a public IP and its command authorises the pool's
 *   key and runs `sshd`. Pods are named `skyward-<pool id>-<n>`.
 * - **getInstance**: the pod's public IP and the port mapped to its port 22.
 * - **teardown**: `podTerminate` for every pod named after the cluster.
 * - **dead-man switch**: a worker whose client is gone terminates its own
 *   pod ({@linkcode runpodPowerOffCommand}), as RunPod documents it
 *   (`runpodctl remove pod $RUNPOD_POD_ID` from inside the pod).
 *
 * Each GraphQL document follows an official client, named beside it in
 * `api.ts` (runpodctl, runpod-python). Creates are sent once: a lost answer
 * is looked up by the pod's name before the create is sent again.
 *
 * Pods have no private network between them: nodes run standalone, and
 * `instanceInfo().peers` is empty.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { describeAccelerator } from "../../src/accelerators.ts";
import { ConfigError, NoOffersError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import type {
  ClusterSpec,
  Instance,
  Offer,
  Provider,
  ProviderCleanupOptions,
} from "../../src/provider.ts";
import { generateSshKeyPair } from "../_keys.ts";
import { createOnce } from "../_create.ts";
import {
  DATA_CENTERS,
  dataCentersSchema,
  DEPLOY_ON_DEMAND,
  deployedSchema,
  GPU_TYPES,
  gpuTypeSchema,
  MY_PODS,
  myPodsSchema,
  MYSELF,
  myselfSchema,
  POD,
  type Pod,
  podSchema,
  RENT_INTERRUPTABLE,
  RunPodApi,
  RunPodError,
  TERMINATE,
} from "./api.ts";
import {
  type ResolvedRunPodOptions,
  resolveRunPodOptions,
  runpodApiKey,
  type RunPodOptions,
  type RunPodPodDetails,
} from "./config.ts";
import { catalogNameOf, RUNPOD_GPU_TYPES, runpodGpuIds } from "./gpu_types.ts";
import { priceFor } from "../../src/spec.ts";
import { marketsFor, overCap } from "../_offers.ts";
import {
  cleanupCommand,
  NO_REGIONS,
  refuseCleanupOptions,
  UNDATED,
} from "../_cleanup.ts";

export type { RunPodOptions, RunPodPodDetails };

const log = logger("runpod");

/** A RunPod offer: a GPU type and count, with its prices per machine. */
export interface RunPodOffer extends Offer {
  /** The provider. */
  provider: "runpod";
  /** RunPod's GPU type id, e.g. `"NVIDIA GeForce RTX 4090"`. */
  instanceType: string;
  /** GPUs per pod. */
  gpuCount: number;
  /** The lowest acceptable spot bid per GPU, when spot is offered. */
  minimumBidPerGpu?: number;
}

/** The provider's record of a prepared cluster. */
export interface RunPodCluster {
  /** The pool's id. */
  id: string;
  /** The offer the pods are made of. */
  offer: RunPodOffer;
  /** The pool's allocation. */
  allocation: ClusterSpec["allocation"];
  /** The pool's price cap per machine, if any. */
  maxHourlyCost?: number;
  /** Container disk per pod, in GB. */
  diskGb: number;
  /** The pool's public key, authorised on every pod. */
  publicKey: string;
  /** The pool's private key (not enumerable: never printed with the record). */
  readonly privateKey: string;
  /** Pods launched, by id, with whether each is spot. */
  pods: Map<string, { spot: boolean }>;
  /** The next pod's number. */
  next: number;
}

/** Options of {@linkcode RunPodProvider.cleanup}. */
export interface RunPodCleanupOptions extends ProviderCleanupOptions {
  /**
   * Only this cluster's pods (a pool id, `sky-…`).
   * @default every Skyward pod of the account — also those of pools still running
   */
  cluster?: string;
  /**
   * Report what would be terminated and terminate nothing.
   * @default false
   */
  dryRun?: boolean;
}

/** What {@linkcode RunPodProvider.cleanup} found. */
export type RunPodCleanupReport = {
  /** The pods terminated (or that would be), by id. */
  pods: string[];
  /** Their names. */
  names: string[];
};

/** The RunPod provider's type. */
export type RunPodProvider = Omit<Provider<RunPodCluster>, "cleanup"> & {
  /** The options it was made with. */
  readonly options: RunPodOptions;
  /** Terminates the pods Skyward pools left in the account (named `skyward-…`). */
  cleanup(options?: RunPodCleanupOptions): Promise<RunPodCleanupReport>;
};

const PREFIX = "skyward-";

/** The pod name prefix of a cluster's pods. */
function podPrefix(clusterId: string): string {
  return `${PREFIX}${clusterId}-`;
}

/** Where {@linkcode BOOT_SCRIPT} keeps the pod's id and pod-scoped key (root only). */
export const RUNPOD_ENV_FILE = "/tmp/.skyward-runpod.env";

/**
 * The command of every pod: authorise the pool's key (`PUBLIC_KEY`) for the
 * login user and run `sshd` in the foreground, installing OpenSSH when the
 * image lacks it. The script travels base64-encoded in `SKYWARD_BOOT`, so
 * no quoting of RunPod's command line is involved.
 */
export const BOOT_SCRIPT = `#!/bin/sh
# Skyward: authorise the pool's key and serve SSH.
umask 077
# The pod's id and its pod-scoped API key, which RunPod sets in the pod's
# environment, kept for the dead-man switch: SSH sessions do not inherit them.
env | grep -E '^RUNPOD_(POD_ID|API_KEY)=[A-Za-z0-9_.-]+$' | sed 's/^/export /' >${RUNPOD_ENV_FILE}
home=\${HOME:-/root}
mkdir -p "$home/.ssh"
printf '%s\\n' "$PUBLIC_KEY" >> "$home/.ssh/authorized_keys"
chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -yq openssh-server
fi
mkdir -p /run/sshd
ssh-keygen -A >/dev/null 2>&1
exec /usr/sbin/sshd -D -e
`;

/**
 * The shell command a worker whose client is gone runs to terminate its own
 * pod: RunPod's documented way is `runpodctl remove pod $RUNPOD_POD_ID` from
 * inside the pod ("Manage Pods", docs.runpod.io), which authenticates with
 * the pod-scoped `RUNPOD_API_KEY` RunPod sets in the pod's environment and
 * sends `podTerminate` (runpodctl `api/pod.go` `RemovePod`). The two
 * variables come from the file {@linkcode BOOT_SCRIPT} writes, else from
 * the environment of the container's first process. Without `runpodctl`, or
 * when it fails, the same mutation goes to the GraphQL API with `curl` or
 * `wget`.
 *
 * @param baseUrl The API's origin (`RUNPOD_GRAPHQL_URL` for runpodctl).
 * @returns The command, for the provider's `powerOffCommand`.
 *
 * @example
 * ```ts
 * import { runpodPowerOffCommand } from "./mod.ts";
 *
 * const command = runpodPowerOffCommand("https://api.runpod.io");
 * console.log(command.includes("runpodctl remove pod")); // true
 * ```
 */
export function runpodPowerOffCommand(baseUrl: string): string {
  const url = `${baseUrl.replace(/\/$/, "")}/graphql`;
  const quoted = `'${url.replaceAll("'", `'\\''`)}'`;
  return [
    `f=${RUNPOD_ENV_FILE}; [ -r "$f" ] && . "$f"`,
    `[ -n "$RUNPOD_POD_ID" ] || eval "$(tr '\\0' '\\n' </proc/1/environ 2>/dev/null | grep -E '^RUNPOD_(POD_ID|API_KEY)=[A-Za-z0-9_.-]+$' | sed 's/^/export /')"`,
    `[ -n "$RUNPOD_POD_ID" ] || { echo 'skyward: RUNPOD_POD_ID is not set: cannot terminate this pod' >&2; exit 1; }`,
    `export RUNPOD_GRAPHQL_URL=${quoted}`,
    `if command -v runpodctl >/dev/null 2>&1 && runpodctl remove pod "$RUNPOD_POD_ID"; then exit 0; fi`,
    `q='{"query":"mutation terminatePod($podId: String!) { podTerminate(input: {podId: $podId}) }","variables":{"podId":"'"$RUNPOD_POD_ID"'"}}'`,
    `curl -fsS -X POST -H 'content-type: application/json' -H "authorization: Bearer $RUNPOD_API_KEY" --data "$q" ${quoted} ||`,
    `  wget -q -O- --header='content-type: application/json' --header="authorization: Bearer $RUNPOD_API_KEY" --post-data="$q" ${quoted}`,
  ].join("\n");
}

/** The pod's command line: decode and run {@linkcode BOOT_SCRIPT}. */
export const BOOT_COMMAND =
  `sh -c 'printf %s "$SKYWARD_BOOT" | base64 -d | sh'`;

function allocationHint(allocation: ClusterSpec["allocation"]): string {
  return allocation === "spot"
    ? ", or allocation 'spot-if-available' to fall back to on-demand"
    : allocation === "on-demand"
    ? ", or allocation 'spot-if-available' to use spot pods when there are"
    : "";
}

/**
 * Runs nodes on RunPod GPU pods. The API key comes from the options or
 * `RUNPOD_API_KEY`.
 *
 * @param options API key, endpoint, image and the rest; all optional.
 * @returns The provider, for `ComputePool.start({ provider })`.
 * @throws {ConfigError} When an option is invalid. A missing or refused key
 *   is a `ConfigError` naming `RUNPOD_API_KEY` when the pool starts, and so is
 *   a pool without an accelerator; no capacity is a `NoOffersError`.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const provider = sky.RunPod({ cloudType: "SECURE" });
 * console.log(provider.name); // "runpod"
 * // await using pool = await sky.ComputePool.start({
 * //   provider, accelerator: sky.accelerators.RTX_4090(), allocation: "spot-if-available",
 * // });
 * ```
 */
export function RunPod(options: RunPodOptions = {}): RunPodProvider {
  const resolved = resolveRunPodOptions(options);
  let client: RunPodApi | undefined;
  const api = (): RunPodApi =>
    client ??= new RunPodApi({
      apiKey: runpodApiKey(resolved),
      baseUrl: resolved.baseUrl,
    });

  function clusterOf(cluster: RunPodCluster): RunPodCluster {
    if (!cluster || typeof cluster !== "object" || !cluster.offer) {
      throw new ConfigError(
        "sky.RunPod() was given a cluster it did not prepare",
      );
    }
    return cluster;
  }

  async function terminatePods(
    ids: string[],
    cluster?: RunPodCluster,
  ): Promise<void> {
    await Promise.all(ids.map(async (podId) => {
      try {
        // runpodctl `api/pod.go` `RemovePod`: the input inlined.
        await api().run("podTerminate", TERMINATE, { podId }, z.unknown());
        log.info("Terminated pod {id}", { id: podId });
      } catch (error) {
        if (!(error instanceof RunPodError && error.notFound)) throw error;
      }
      cluster?.pods.delete(podId);
    }));
  }

  async function podsNamed(prefix: string) {
    const myself = await api().run("myself", MY_PODS, {}, myPodsSchema);
    return (myself.pods ?? []).filter((p) =>
      (p.name ?? "").startsWith(prefix) && p.desiredStatus !== "TERMINATED"
    );
  }

  return {
    name: "runpod",
    options,
    sweepHint: (cluster) => cleanupCommand("runpod", cluster),
    powerOffCommand: runpodPowerOffCommand(resolved.baseUrl),
    async offers(spec: ClusterSpec): Promise<RunPodOffer[]> {
      return await findOffers(api(), resolved, spec);
    },
    async prepare(spec: ClusterSpec, offer: Offer): Promise<RunPodCluster> {
      const runpodOffer = offer as RunPodOffer;
      if (!runpodOffer.gpuCount) {
        throw new ConfigError(
          "sky.RunPod() was given an offer it did not make",
        );
      }
      const keys = await generateSshKeyPair(spec.clusterId);
      const cluster = {
        id: spec.clusterId,
        offer: runpodOffer,
        allocation: spec.allocation,
        ...(spec.maxHourlyCost !== undefined
          ? { maxHourlyCost: spec.maxHourlyCost }
          : {}),
        diskGb: spec.diskGb ?? resolved.containerDiskGb,
        publicKey: keys.publicKey,
        pods: new Map(),
        next: 0,
      } as Omit<RunPodCluster, "privateKey">;
      Object.defineProperty(cluster, "privateKey", {
        value: keys.privateKey,
        enumerable: false,
      });
      return cluster as RunPodCluster;
    },
    async provision(
      cluster: RunPodCluster,
      count: number,
    ): Promise<Instance[]> {
      return await launch(api(), clusterOf(cluster), resolved, count, {
        lookup: async (name) => {
          const myself = await api().run("myself", MY_PODS, {}, myPodsSchema);
          return (myself.pods ?? []).find((p) =>
            p.name === name && p.desiredStatus !== "TERMINATED"
          )?.id;
        },
      });
    },
    async getInstance(
      cluster: RunPodCluster,
      id: string,
    ): Promise<Instance | undefined> {
      const c = clusterOf(cluster);
      // runpod-python `runpod/api/queries/pods.py` `generate_pod_query`.
      const pod = await api().run("pod", POD, { podId: id }, podSchema);
      return pod ? toInstance(c, resolved, pod) : undefined;
    },
    async terminate(cluster: RunPodCluster, ids: string[]): Promise<void> {
      await terminatePods(ids, clusterOf(cluster));
    },
    async teardown(cluster: RunPodCluster): Promise<void> {
      const c = clusterOf(cluster);
      const named = (await podsNamed(podPrefix(c.id))).map((p) => p.id);
      const ids = [...new Set([...c.pods.keys(), ...named])];
      await terminatePods(ids, c);
    },
    async checkCredentials(): Promise<string> {
      const me = await api().run("myself", MYSELF, {}, myselfSchema);
      return `account ${me.id}${
        me.clientBalance != null
          ? `, balance $${me.clientBalance.toFixed(2)}`
          : ""
      }`;
    },
    async cleanup(
      cleanup: RunPodCleanupOptions = {},
    ): Promise<RunPodCleanupReport> {
      refuseCleanupOptions("runpod", cleanup, {
        olderThan: UNDATED,
        region: NO_REGIONS,
      });
      const pods = await podsNamed(
        cleanup.cluster ? podPrefix(cleanup.cluster) : PREFIX,
      );
      if (!cleanup.dryRun) await terminatePods(pods.map((p) => p.id));
      return { pods: pods.map((p) => p.id), names: pods.map((p) => p.name!) };
    },
  };
}

async function findOffers(
  api: RunPodApi,
  options: ResolvedRunPodOptions,
  spec: ClusterSpec,
): Promise<RunPodOffer[]> {
  const accelerator = spec.accelerator;
  if (!accelerator) {
    throw new ConfigError(
      "sky.RunPod() runs GPU pods: pass the pool an accelerator, e.g. " +
        'accelerator: sky.accelerators.RTX_4090() (or "A100:2"), or use another provider for CPU-only pools',
    );
  }
  const wanted = describeAccelerator(accelerator);
  const noOffers = (why: string) =>
    new NoOffersError(
      `No instances available on RunPod for ${wanted} with allocation '${spec.allocation}': ${why}. ` +
        `Try another accelerator, cloud type (sky.RunPod({ cloudType }))` +
        `${allocationHint(spec.allocation)}, or another provider.`,
    );
  if (!Number.isInteger(accelerator.count) || accelerator.count < 1) {
    throw new ConfigError(
      `sky.RunPod() rents whole GPUs: the accelerator's count must be a positive integer, got ${accelerator.count}`,
    );
  }
  if (spec.architecture === "arm64") {
    throw noOffers("RunPod's GPU pods are x86_64 machines");
  }
  const ids = runpodGpuIds(accelerator);
  if (ids.length === 0) {
    throw noOffers(
      RUNPOD_GPU_TYPES[accelerator.name]
        ? `RunPod has ${accelerator.name} only as ${
          RUNPOD_GPU_TYPES[accelerator.name].map((g) =>
            `${g.memoryGb}GB${g.formFactor ? ` ${g.formFactor}` : ""}`
          ).join(", ")
        }`
        : `RunPod has no GPU type for ${accelerator.name}`,
    );
  }
  const count = accelerator.count;
  if (options.dataCenterId) {
    // runpodctl `internal/api/gpu.go` `ListDataCenters`: the ids RunPod has.
    const centers = await api.run(
      "dataCenters",
      DATA_CENTERS,
      {},
      dataCentersSchema,
    );
    const ids = (centers ?? []).map((c) => c.id);
    if (ids.length > 0 && !ids.includes(options.dataCenterId)) {
      throw new ConfigError(
        `sky.RunPod({ dataCenterId: "${options.dataCenterId}" }): RunPod lists no such data center; it lists ${
          ids.join(", ")
        }`,
      );
    }
  }
  const types = await api.run(
    "gpuTypes",
    GPU_TYPES,
    {
      lowestPriceInput: {
        gpuCount: count,
        ...(spec.vcpus ? { minVcpuCount: spec.vcpus } : {}),
        ...(spec.memoryGb ? { minMemoryInGb: spec.memoryGb } : {}),
        ...(options.cloudType === "ALL"
          ? {}
          : { secureCloud: options.cloudType === "SECURE" }),
        ...(options.dataCenterId ? { dataCenterId: options.dataCenterId } : {}),
      },
    },
    gpuTypeSchema.array(),
  );
  const rejected: string[] = [];
  const offers: RunPodOffer[] = [];
  for (const wantedId of ids) {
    const type = types.find((t) => t.id === wantedId.id);
    if (!type) {
      rejected.push(`${wantedId.id} is not listed`);
      continue;
    }
    if (type.maxGpuCount != null && type.maxGpuCount < count) {
      rejected.push(`${type.id} comes at most ${type.maxGpuCount} per pod`);
      continue;
    }
    const price = type.lowestPrice;
    const onDemand = price?.uninterruptablePrice ?? undefined;
    const bid = price?.minimumBidPrice ?? undefined;
    if (!price?.stockStatus || (onDemand === undefined && bid === undefined)) {
      rejected.push(`${type.id} is out of stock`);
      continue;
    }
    const catalog = catalogNameOf(type.id) ?? accelerator.name;
    offers.push({
      provider: "runpod",
      instanceType: type.id,
      ...(options.dataCenterId ? { region: options.dataCenterId } : {}),
      ...(price.minVcpu ? { vcpus: price.minVcpu } : {}),
      ...(price.minMemory ? { memoryGb: price.minMemory } : {}),
      ...(bid !== undefined
        ? {
          spotPrice: round((options.bidPerGpu ?? bid) * count),
          minimumBidPerGpu: bid,
        }
        : {}),
      ...(onDemand !== undefined
        ? { onDemandPrice: round(onDemand * count) }
        : {}),
      accelerator: {
        name: catalog,
        count,
        memoryGb: type.memoryInGb ?? wantedId.memoryGb,
      },
      architecture: "x86_64",
      gpuCount: count,
    });
  }
  if (offers.length === 0) {
    throw noOffers(rejected.join("; ") || "nothing listed");
  }
  let usable = offers.map((offer) => ({
    offer,
    price: priceFor(offer, spec.allocation),
  })).filter((p) => p.price !== undefined);
  if (usable.length === 0) {
    throw noOffers(
      `no ${offers.map((o) => o.instanceType).join("/")} is offered ${
        spec.allocation === "spot" ? "as spot" : "on demand"
      }`,
    );
  }
  if (spec.maxHourlyCost !== undefined) {
    const within = usable.filter((p) => p.price! <= spec.maxHourlyCost!);
    if (within.length === 0) {
      const cheapest = usable.sort((a, b) => a.price! - b.price!)[0];
      throw noOffers(
        overCap(
          cheapest.offer.instanceType,
          cheapest.price!,
          spec.maxHourlyCost,
        ),
      );
    }
    usable = within;
  }
  return usable.sort((a, b) =>
    a.price! - b.price! ||
    a.offer.instanceType.localeCompare(b.offer.instanceType)
  ).map((p) => p.offer);
}

function round(n: number): number {
  return Math.round(n * 10_000) / 10_000;
}

async function launch(
  api: RunPodApi,
  cluster: RunPodCluster,
  options: ResolvedRunPodOptions,
  count: number,
  pods: { lookup(name: string): Promise<string | undefined> },
): Promise<Instance[]> {
  const offer = cluster.offer;
  const markets = marketsFor(offer, cluster.allocation, cluster.maxHourlyCost);
  const launched: Instance[] = [];
  const failures: string[] = [];
  const boot = btoa(BOOT_SCRIPT);
  for (const market of markets) {
    while (launched.length < count) {
      const name = `${podPrefix(cluster.id)}${cluster.next++}`;
      const input: Record<string, unknown> = {
        name,
        imageName: options.image,
        gpuTypeId: offer.instanceType,
        gpuCount: offer.gpuCount,
        cloudType: options.cloudType,
        containerDiskInGb: cluster.diskGb,
        volumeInGb: 0,
        ports: "22/tcp",
        supportPublicIp: true,
        startSsh: true,
        dockerArgs: BOOT_COMMAND,
        env: Object.entries({
          ...options.env,
          PUBLIC_KEY: cluster.publicKey,
          SKYWARD_BOOT: boot,
          SKYWARD_CLUSTER: cluster.id,
        }).map(([key, value]) => ({ key, value })),
        ...(offer.vcpus ? { minVcpuCount: offer.vcpus } : {}),
        ...(offer.memoryGb ? { minMemoryInGb: offer.memoryGb } : {}),
        ...(options.dataCenterId ? { dataCenterId: options.dataCenterId } : {}),
      };
      if (market === "spot") {
        input.bidPerGpu = options.bidPerGpu ?? offer.minimumBidPerGpu;
      }
      try {
        // Sent once: when the answer is lost, the pod's name (unique to this
        // create) is looked up before the create is sent again.
        const pod = await createOnce({
          what: `RunPod pod ${name}`,
          create: () =>
            market === "spot"
              ? api.run(
                "podRentInterruptable",
                RENT_INTERRUPTABLE,
                { input },
                deployedSchema,
                { once: true },
              )
              : api.run(
                "podFindAndDeployOnDemand",
                DEPLOY_ON_DEMAND,
                { input },
                deployedSchema,
                { once: true },
              ),
          lookup: async () => {
            const id = await pods.lookup(name);
            return id === undefined ? undefined : { id };
          },
        });
        if (!pod) {
          failures.push(`${market}: RunPod returned no pod`);
          break;
        }
        cluster.pods.set(pod.id, { spot: market === "spot" });
        log.info("Launched {market} pod {id} ({name}) with {count}x {type}", {
          market,
          id: pod.id,
          name,
          count: offer.gpuCount,
          type: offer.instanceType,
        });
        launched.push({
          id: pod.id,
          status: "pending",
          spot: market === "spot",
        });
      } catch (error) {
        if (!(error instanceof RunPodError) || !error.noCapacity) {
          if (launched.length > 0) {
            log.warn("Pod {name} failed after {n} launched: {error}", {
              name,
              n: launched.length,
              error,
            });
            return launched;
          }
          throw error;
        }
        failures.push(`${market}: ${error.messages.join("; ")}`);
        log.info("No {market} capacity for {type}: {message}", {
          market,
          type: offer.instanceType,
          message: error.messages.join("; "),
        });
        break;
      }
    }
    if (launched.length >= count) break;
  }
  if (launched.length === 0) {
    throw new NoOffersError(
      `No instances available on RunPod for ${offer.gpuCount}x ${offer.instanceType} (${
        markets.length
          ? markets.join(", then ")
          : "no market within maxHourlyCost"
      }): ${failures.join("; ") || "nothing to try"}. ` +
        `Try another accelerator or cloud type${
          allocationHint(cluster.allocation)
        }, or another provider.`,
    );
  }
  return launched;
}

function toInstance(
  cluster: RunPodCluster,
  options: ResolvedRunPodOptions,
  pod: Pod,
): Instance {
  const spot = cluster.pods.get(pod.id)?.spot;
  const base = { id: pod.id, ...(spot !== undefined ? { spot } : {}) };
  const status = pod.desiredStatus ?? "";
  if (status === "TERMINATED" || status === "EXITED" || status === "DEAD") {
    return { ...base, status: "terminated" };
  }
  const ssh = pod.runtime?.ports?.find((p) =>
    p.privatePort === 22 && p.isIpPublic && p.ip && p.publicPort
  );
  if (status !== "RUNNING" || !ssh) return { ...base, status: "pending" };
  const details: RunPodPodDetails = {
    id: pod.id,
    ip: ssh.ip!,
    port: ssh.publicPort!,
  };
  const user = typeof options.sshUser === "function"
    ? options.sshUser(details)
    : options.sshUser ?? "root";
  return {
    ...base,
    status: "running",
    endpoint: {
      kind: "ssh",
      host: details.ip,
      port: details.port,
      user,
      privateKey: cluster.privateKey,
    },
  };
}
