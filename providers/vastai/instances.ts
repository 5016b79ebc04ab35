/**
 * Vast.ai instances: the pool's record of what `prepare` made, the onstart
 * script (an idle watchdog that destroys the instance), the bid of an
 * interruptible instance, and an instance as the pool sees it.
 *
 * @module
 */
import { sshRunning } from "../_ssh.ts";
import type { Instance } from "../../src/provider.ts";
import { idleWatchdog } from "../_user_data.ts";
import type { VastApiInstance } from "./api.ts";
import type { ResolvedVastAIOptions, VastInstanceDetails } from "./config.ts";
import type { VastOffer, VastQuery } from "./offers.ts";

/** What `prepare` made for a pool: its query, offer and SSH key. */
export interface VastCluster {
  /** The pool's id; every instance carries it as its label. */
  id: string;
  /** What the pool asked for, to search again at each launch. */
  query: VastQuery;
  /** The offer the pool chose. */
  offer: VastOffer;
  /** The id of the pool's SSH key on the account. */
  sshKeyId: number;
  /** The pool's public key. */
  publicKey: string;
  /** The pool's private key (not enumerable, so never printed with the record). */
  readonly privateKey: string;
  /** Offers already taken or refused, not to try again. */
  tried: Set<number>;
  /** The ids of the instances the pool launched, destroyed at teardown even when the listing misses them. */
  launched: Set<string>;
}

/**
 * The onstart script of every instance: a watchdog that destroys the
 * instance, with the key Vast.ai gives each instance (`CONTAINER_API_KEY`,
 * `CONTAINER_ID`), once no SSH client has been connected for `ttl`.
 *
 * @param options `ttl` in ms and the API's base URL.
 * @returns A shell script, run by Vast.ai when the instance starts.
 */
export function onstartScript(
  options: Pick<ResolvedVastAIOptions, "ttl" | "baseUrl">,
): string {
  return [
    "#!/bin/sh",
    "# Skyward: this instance destroys itself when its client is gone.",
    ...idleWatchdog({
      ttl: options.ttl,
      path: "/usr/local/bin/skyward-ttl",
      what: "Destroys the instance",
      step: String(Math.min(15, Math.ceil(options.ttl / 1000))),
      connected:
        "awk '$2 ~ /:0016$/ && $4 == \"01\" { found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null",
      onIdle: [
        '  if [ "$idle" -ge "$ttl" ]; then',
        // As the CLI destroys (vast-cli `vast.py` `destroy_instance`): DELETE
        // with the body {}.
        `    curl -fsS -X DELETE -H "Authorization: Bearer $CONTAINER_API_KEY" -H 'Content-Type: application/json' -d '{}' "${options.baseUrl}/instances/$CONTAINER_ID/" ||`,
        `      wget -q -O- --method=DELETE --header="Authorization: Bearer $CONTAINER_API_KEY" --header='Content-Type: application/json' --body-data='{}' "${options.baseUrl}/instances/$CONTAINER_ID/"`,
        "  fi",
      ],
      start: (path, ttl) => `nohup ${path} ${ttl} >/dev/null 2>&1 &`,
    }),
  ].join("\n") + "\n";
}

/** The bid for an interruptible instance of an offer. */
export function bidFor(
  offer: VastOffer,
  options: ResolvedVastAIOptions,
  cap?: number,
): number {
  const wanted = options.bid ??
    Math.round((offer.minBid ?? offer.onDemandPrice ?? 0) * 1.2 * 1e4) / 1e4;
  const bid = cap === undefined ? wanted : Math.min(wanted, cap);
  return Math.max(0.001, bid);
}

function hostPort(instance: VastApiInstance): number | undefined {
  const ports = instance.ports;
  if (!ports || Array.isArray(ports)) return undefined;
  const port = Number(ports["22/tcp"]?.[0]?.HostPort);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/** Statuses from which an instance never reaches `running`. */
export const DEAD = new Set([
  "exited",
  "offline",
  "unknown",
  "stopped",
  "destroyed",
]);

/** An instance as the pool sees it: running once Vast.ai gives its SSH address. */
export function toInstance(
  cluster: VastCluster,
  found: VastApiInstance,
  resolved: Pick<ResolvedVastAIOptions, "ssh" | "sshUser">,
): Instance {
  const id = String(found.id);
  const spot = found.is_bid ?? undefined;
  const base = { id, ...(spot !== undefined ? { spot } : {}) };
  const actual = found.actual_status ?? "";
  if (
    DEAD.has(actual) ||
    (found.intended_status === "stopped" && actual !== "running")
  ) {
    return { ...base, status: "terminated" };
  }
  if (actual !== "running") return { ...base, status: "pending" };
  const port = hostPort(found);
  const direct = resolved.ssh === "direct" && found.public_ipaddr && port;
  const host = direct ? found.public_ipaddr! : found.ssh_host;
  const sshPort = direct ? port! : found.ssh_port;
  if (!host || !sshPort) return { ...base, status: "pending" };
  const details: VastInstanceDetails = {
    id,
    sshHost: host,
    sshPort,
    ...(found.public_ipaddr ? { publicIp: found.public_ipaddr } : {}),
    ...(found.machine_id != null ? { machineId: found.machine_id } : {}),
  };
  return sshRunning(base, {
    host,
    port: sshPort,
    details,
    sshUser: resolved.sshUser,
    defaultUser: "root",
    privateKey: cluster.privateKey,
  });
}
