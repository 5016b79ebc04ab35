/**
 * RunPod pods: the boot command every pod runs, the power-off command, and
 * launching a cluster's pods market by market (spot bids or on-demand),
 * each create sent once and looked up by name when its answer is lost.
 *
 * @module
 */
import { sshRunning } from "../_ssh.ts";
import { NoOffersError } from "../../src/errors.ts";
import type { ClusterSpec, Instance } from "../../src/provider.ts";
import { createOnce } from "../_create.ts";
import {
  DEPLOY_ON_DEMAND,
  deployedSchema,
  type Pod,
  RENT_INTERRUPTABLE,
  type RunPodApi,
  RunPodError,
} from "./api.ts";
import type { ResolvedRunPodOptions, RunPodPodDetails } from "./config.ts";
import { marketsFor } from "../_offers.ts";

import { logger } from "../../src/log.ts";
import type { RunPodOffer } from "./offers.ts";
import { allocationHint } from "../_offers.ts";

const log = logger("runpod");

/** The name prefix of every pod a pool makes. */
export const PREFIX = "skyward-";

/** The pod name prefix of a cluster's pods. */
export function podPrefix(clusterId: string): string {
  return `${PREFIX}${clusterId}-`;
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
 * import { runpodPowerOffCommand } from "./pods.ts";
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

/** Launches up to `count` pods of the cluster's offer. */
export async function launch(
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

/** A pod as the pool sees it. */
export function toInstance(
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
  return sshRunning(base, {
    host: details.ip,
    port: details.port,
    details,
    sshUser: options.sshUser,
    defaultUser: "root",
    privateKey: cluster.privateKey,
  });
}
