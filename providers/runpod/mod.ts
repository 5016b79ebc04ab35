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
import { ConfigError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import type {
  ClusterSpec,
  Instance,
  Offer,
  ProviderWithCleanup,
} from "../../src/provider.ts";
import type { ProviderCleanupOptions } from "../../src/provider.ts";
import { generateSshKeyPair, withPrivateKey } from "../_keys.ts";
import {
  MY_PODS,
  myPodsSchema,
  MYSELF,
  myselfSchema,
  POD,
  podSchema,
  RunPodApi,
  RunPodError,
  TERMINATE,
} from "./api.ts";
import {
  resolveRunPodOptions,
  runpodApiKey,
  type RunPodOptions,
  type RunPodPodDetails,
} from "./config.ts";
import {
  cleanupCommand,
  NO_REGIONS,
  refuseCleanupOptions,
  UNDATED,
} from "../_cleanup.ts";
import { findOffers, type RunPodOffer } from "./offers.ts";
import {
  launch,
  podPrefix,
  PREFIX,
  type RunPodCluster,
  runpodPowerOffCommand,
  toInstance,
} from "./pods.ts";

export type { RunPodOptions, RunPodPodDetails };
export type { RunPodOffer } from "./offers.ts";
export type { RunPodCluster } from "./pods.ts";

const log = logger("runpod");

/**
 * Options of {@linkcode RunPodProvider.cleanup}: which cluster's pods (by default every
 * Skyward pod of the account, also those of pools still running), and a dry
 * run. RunPod does not date its pods, so `olderThan` is refused, and has no
 * regions to choose, so `region` is too.
 */
export type RunPodCleanupOptions = ProviderCleanupOptions;

/** What {@linkcode RunPodProvider.cleanup} found. */
export type RunPodCleanupReport = {
  /** The pods terminated (or that would be), by id. */
  pods: string[];
  /** Their names. */
  names: string[];
};

/**
 * The RunPod provider's type. Its `cleanup` terminates the pods Skyward
 * pools left in the account (named `skyward-…`).
 */
export type RunPodProvider = ProviderWithCleanup<
  RunPodCluster,
  RunPodOptions,
  RunPodCleanupOptions,
  RunPodCleanupReport
>;

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
    privateNetwork: false,
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
      return withPrivateKey<RunPodCluster>({
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
      }, keys.privateKey);
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
