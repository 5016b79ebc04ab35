/**
 * A Verda cluster's resources and machines: the per-pool SSH key and startup
 * script registered at prepare, instances deployed location by location
 * (spot or on-demand by allocation, the next location on a capacity error),
 * their state, and the sweep that deletes a cluster's instances, key and
 * script — found by the instances' description and the key's and script's
 * name, since Verda has no tags on keys and scripts.
 *
 * @module
 */
import { z } from "zod";
import { NoOffersError, ProvisioningError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import type { ClusterSpec, Instance } from "../../src/provider.ts";
import { userData } from "../aws/user_data.ts";
import { generateSshKeyPair } from "../aws/keys.ts";
import { HttpError } from "../_http.ts";
import {
  ImageSchema,
  InstanceSchema,
  NamedSchema,
  type VerdaApi,
  type VerdaInstance,
} from "./api.ts";
import { allocationHint } from "../_offers.ts";
import type { VerdaOffer } from "./offers.ts";

const log = logger("verda");

/** Prefix of the names of a cluster's SSH key and startup script. */
export const NAME_PREFIX = "skyward-";
/** Start of every Skyward instance's description; the cluster id follows. */
export const DESCRIPTION_PREFIX = "Skyward cluster ";

/** What the cluster functions need of the provider's options. */
export interface ClusterOptions {
  /** The OS image (`image_type`), or `undefined` to take Verda's default for the type. */
  image?: string;
  /** The login user, or a function of the instance. */
  sshUser: string | ((instance: VerdaInstance) => string);
  /** Idle time after which a machine powers itself off, in ms; 0 for never. */
  ttl: number;
  /** Hard limit on a machine's life, in ms. */
  maxLifetime?: number;
  /** How long `provision` waits for a new instance's address, in ms. */
  addressWait: number;
}

/** A prepared Verda cluster: what its instances are deployed with. */
export interface VerdaCluster {
  /** The cluster (pool) id, in every instance's description and in the key's and script's names. */
  readonly id: string;
  /** The offer chosen. */
  readonly offer: VerdaOffer;
  /** How to buy instances. */
  readonly allocation: ClusterSpec["allocation"];
  /** The pool's price cap, USD per hour. */
  readonly maxHourlyCost?: number;
  /** The OS image. */
  readonly image: string;
  /** OS volume size, GiB. */
  readonly diskGb: number;
  /** The registered SSH key's id. */
  readonly sshKeyId: string;
  /** The registered startup script's id. */
  readonly scriptId: string;
  /** The SSH private key (not enumerable, so never printed with the record). */
  readonly privateKey: string;
}

type Market = "spot" | "on-demand";

/** The markets to try, in order, for a cluster's allocation and price cap. */
export function marketsFor(
  cluster: Pick<VerdaCluster, "allocation" | "offer" | "maxHourlyCost">,
): Market[] {
  const { spotPrice, onDemandPrice } = cluster.offer;
  const spot = spotPrice !== undefined;
  const onDemand = onDemandPrice !== undefined;
  let markets: Market[];
  switch (cluster.allocation) {
    case "spot":
      markets = ["spot"];
      break;
    case "on-demand":
      markets = ["on-demand"];
      break;
    case "spot-if-available":
      markets = ["spot", "on-demand"];
      break;
    case "cheapest":
      markets = spot && (!onDemand || spotPrice! <= onDemandPrice!)
        ? ["spot", "on-demand"]
        : ["on-demand", "spot"];
      break;
  }
  const cap = cluster.maxHourlyCost;
  return markets.filter((m) => {
    const price = m === "spot" ? spotPrice : onDemandPrice;
    return price !== undefined && (cap === undefined || price <= cap);
  });
}

async function chooseImage(
  api: VerdaApi,
  instanceType: string,
  gpu: boolean,
): Promise<string> {
  const images = await api.request("/images", {
    query: { instance_type: instanceType },
    schema: z.array(ImageSchema),
  });
  const ubuntu = images.filter((i) => i.image_type.startsWith("ubuntu-24.04"))
    .filter((i) => gpu === i.image_type.includes("cuda"));
  const chosen = images.find((i) => i.is_default) ?? ubuntu[0] ?? images[0];
  if (!chosen) {
    throw new ProvisioningError(
      `Verda lists no OS image for ${instanceType}: pass sky.Verda({ image })`,
    );
  }
  return chosen.image_type;
}

/**
 * Prepares a cluster: a fresh Ed25519 key pair whose public key is
 * registered as `skyward-<id>`, and the startup script (the idle watchdog)
 * registered under the same name. On failure what was registered is
 * removed before the error is rethrown.
 *
 * @returns The cluster's record.
 */
export async function prepareCluster(
  api: VerdaApi,
  options: ClusterOptions,
  spec: ClusterSpec,
  offer: VerdaOffer,
): Promise<VerdaCluster> {
  const id = spec.clusterId;
  const name = `${NAME_PREFIX}${id}`;
  try {
    const image = options.image ??
      await chooseImage(
        api,
        offer.instanceType,
        offer.accelerator !== undefined,
      );
    const keys = await generateSshKeyPair(name);
    const sshKeyId = await api.request("/sshkeys", {
      method: "POST",
      body: { name, key: keys.publicKey },
      schema: z.string().min(1),
      text: true,
    });
    const scriptId = await api.request("/scripts", {
      method: "POST",
      body: { name, script: userData(options) },
      schema: z.string().min(1),
      text: true,
    });
    const cluster = {
      id,
      offer,
      allocation: spec.allocation,
      ...(spec.maxHourlyCost !== undefined
        ? { maxHourlyCost: spec.maxHourlyCost }
        : {}),
      image,
      diskGb: spec.diskGb ?? (offer.accelerator ? 100 : 50),
      sshKeyId,
      scriptId,
    } as Omit<VerdaCluster, "privateKey">;
    Object.defineProperty(cluster, "privateKey", {
      value: keys.privateKey,
      enumerable: false,
    });
    return cluster as VerdaCluster;
  } catch (error) {
    await sweep(api, { cluster: id }).catch((cleanup) =>
      log.warn("Cleaning up after a failed prepare of {id} failed: {cleanup}", {
        id,
        cleanup,
      })
    );
    throw error;
  }
}

/** Verda's error body. */
const Refusal = z.object({ code: z.string().optional(), message: z.string() });

/** Whether an error of `POST /instances` means "no capacity there": try elsewhere. */
export function isCapacityError(error: unknown): boolean {
  if (!(error instanceof HttpError)) return false;
  return error.status === 503 ||
    /not enough resources|no capacity|no_capacity|sold out|not available/i
      .test(error.detail);
}

/**
 * Deploys up to `count` instances of the cluster's offer, one by one: each
 * market of the allocation in turn, each location with capacity in turn.
 * Waits (up to `addressWait`) for each one's address, so that every node
 * knows its peers.
 *
 * @returns The instances deployed (at least one).
 * @throws {NoOffersError} "No instances available on Verda …" when no market
 *   and location had capacity.
 */
export async function launch(
  api: VerdaApi,
  cluster: VerdaCluster,
  options: ClusterOptions,
  count: number,
): Promise<Instance[]> {
  const type = cluster.offer.instanceType;
  const markets = marketsFor(cluster);
  const launched: Instance[] = [];
  const failures: string[] = [];
  const full = new Set<string>();
  for (let n = 0; n < count; n++) {
    let deployed: Instance | undefined;
    for (const market of markets) {
      const locations = market === "spot"
        ? cluster.offer.spotLocations
        : cluster.offer.onDemandLocations;
      for (const location of locations) {
        if (deployed || full.has(`${market} ${location}`)) continue;
        const spot = market === "spot";
        try {
          const id = await api.request("/instances", {
            method: "POST",
            body: {
              instance_type: type,
              image: cluster.image,
              hostname: `${cluster.id}-${crypto.randomUUID().slice(0, 6)}`,
              description: `${DESCRIPTION_PREFIX}${cluster.id}`,
              ssh_key_ids: [cluster.sshKeyId],
              startup_script_id: cluster.scriptId,
              location_code: location,
              is_spot: spot,
              contract: spot ? "SPOT" : "PAY_AS_YOU_GO",
              os_volume: {
                name: `${cluster.id}-os`,
                size: cluster.diskGb,
                ...(spot ? { on_spot_discontinue: "delete_permanently" } : {}),
              },
            },
            // Verda answers "no capacity here" with 503 `service_unavailable`:
            // not an outage to wait out but a reason to try elsewhere, so
            // it is taken as an answer rather than retried.
            schema: z.union([z.string().min(1), Refusal]),
            text: true,
            accept: [503],
          });
          if (typeof id !== "string") {
            throw new HttpError("Verda", "POST", "/instances", 503, id.message);
          }
          log.info("Deployed {market} {type} in {location}: {id}", {
            market,
            type,
            location,
            id,
          });
          deployed = { id, status: "pending", spot };
        } catch (error) {
          if (!isCapacityError(error)) throw error;
          full.add(`${market} ${location}`);
          failures.push(
            `${market} in ${location}: ${(error as HttpError).detail}`,
          );
          log.info("No {market} capacity for {type} in {location}", {
            market,
            type,
            location,
          });
        }
      }
    }
    if (!deployed) break;
    launched.push(deployed);
  }
  if (launched.length === 0) {
    throw new NoOffersError(
      `No instances available on Verda for ${type} (${
        markets.length
          ? markets.join(", then ")
          : "no market within maxHourlyCost"
      }): ${failures.join("; ") || "nothing to try"}. ` +
        `Try another location (sky.Verda({ location })), another accelerator or instance type${
          allocationHint(cluster.allocation)
        }.`,
    );
  }
  return await Promise.all(
    launched.map((i) => withAddress(api, i, options.addressWait)),
  );
}

/** Waits until Verda has given an instance its address, or gives up. */
async function withAddress(
  api: VerdaApi,
  instance: Instance,
  wait: number,
): Promise<Instance> {
  const deadline = Date.now() + wait;
  for (let delay = 250;; delay = Math.min(delay * 2, 5_000)) {
    const found = await get(api, instance.id);
    if (!found || found.ip || gone(found.status) || Date.now() > deadline) {
      return found?.ip ? { ...instance, privateAddress: found.ip } : instance;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

async function get(
  api: VerdaApi,
  id: string,
): Promise<VerdaInstance | undefined> {
  const found = await api.request(`/instances/${encodeURIComponent(id)}`, {
    schema: z.union([InstanceSchema, z.unknown()]),
    accept: [404],
  });
  const parsed = InstanceSchema.safeParse(found);
  return parsed.success && parsed.data.id === id ? parsed.data : undefined;
}

const PENDING = new Set([
  "new",
  "ordered",
  "provisioning",
  "validating",
  "pending",
  "unknown",
]);

/** Whether a status means the machine is gone (or going) for good. */
function gone(status: string): boolean {
  return status !== "running" && !PENDING.has(status);
}

/**
 * The instance's state, and once it runs, how to reach it.
 *
 * @returns The instance, or `undefined` when Verda does not know it.
 */
export async function describe(
  api: VerdaApi,
  cluster: VerdaCluster,
  options: ClusterOptions,
  id: string,
): Promise<Instance | undefined> {
  const found = await get(api, id);
  if (!found) return undefined;
  const base = {
    id,
    spot: found.is_spot ?? false,
    ...(found.ip ? { privateAddress: found.ip } : {}),
  };
  if (gone(found.status)) return { ...base, status: "terminated" };
  if (found.status !== "running" || !found.ip) {
    return { ...base, status: "pending" };
  }
  const user = typeof options.sshUser === "function"
    ? options.sshUser(found)
    : options.sshUser;
  return {
    ...base,
    status: "running",
    endpoint: {
      kind: "ssh",
      host: found.ip,
      port: 22,
      user,
      privateKey: cluster.privateKey,
    },
  };
}

/** Deletes instances for good (OS volume included); ids already gone are skipped. */
export async function deleteInstances(
  api: VerdaApi,
  ids: string[],
): Promise<void> {
  if (ids.length === 0) return;
  const answer = await api.request("/instances", {
    method: "PUT",
    body: { action: "delete", id: ids, delete_permanently: true },
    schema: z.unknown(),
    accept: [404, 207],
  });
  const results = z.array(z.object({
    instanceId: z.string().optional(),
    error: z.string().optional(),
    statusCode: z.number().optional(),
  })).safeParse(answer);
  const failed = (results.success ? results.data : []).filter((r) =>
    r.error && r.statusCode !== 404 && !/not found/i.test(r.error)
  );
  if (failed.length > 0) {
    throw new ProvisioningError(
      `Verda did not delete ${
        failed.map((r) => `${r.instanceId}: ${r.error}`).join("; ")
      }`,
    );
  }
}

/** Options of {@linkcode sweep}. */
export interface SweepOptions {
  /** Only this cluster's resources. @default every Skyward cluster's */
  cluster?: string;
  /** Only resources created at least this long ago, in ms. @default 0 */
  olderThan?: number;
  /** List what would be removed, remove nothing. @default false */
  dryRun?: boolean;
  /** How long to wait for instances to go before removing keys, in ms. @default 600_000 */
  timeout?: number;
}

/** What a sweep found (and removed, unless it was a dry run). */
export interface SweepReport {
  /** The clusters whose resources were found. */
  clusters: string[];
  /** Instances deleted. */
  instances: string[];
  /** SSH keys deleted. */
  sshKeys: string[];
  /** Startup scripts deleted. */
  scripts: string[];
}

function clusterOfInstance(i: VerdaInstance): string | undefined {
  const description = i.description ?? "";
  return description.startsWith(DESCRIPTION_PREFIX)
    ? description.slice(DESCRIPTION_PREFIX.length).split(/\s/)[0]
    : undefined;
}

/**
 * Deletes the instances of a cluster (or of every Skyward cluster), waits
 * until Verda no longer lists them, then deletes the SSH keys and startup
 * scripts named after the cluster. Used by teardown (one cluster) and by
 * `cleanup()` (all).
 *
 * @returns What was found and removed.
 * @throws {ProvisioningError} When something could not be removed, naming
 *   what is left and how to sweep it.
 */
export async function sweep(
  api: VerdaApi,
  options: SweepOptions = {},
): Promise<SweepReport> {
  const cutoff = Date.now() - (options.olderThan ?? 0);
  const old = (createdAt?: string | null) => {
    if (!options.olderThan) return true;
    const created = Date.parse(createdAt ?? "");
    return Number.isFinite(created) && created <= cutoff;
  };
  const ours = (cluster: string | undefined) =>
    cluster !== undefined &&
    (options.cluster === undefined || cluster === options.cluster);
  const clusters = new Set<string>();
  const problems: string[] = [];

  const instances = (await api.request("/instances", {
    schema: z.array(InstanceSchema),
  })).filter((i) => ours(clusterOfInstance(i)) && old(i.created_at));
  for (const i of instances) clusters.add(clusterOfInstance(i)!);
  const named = async (path: string) =>
    (await api.request(path, { schema: z.array(NamedSchema) })).filter((r) => {
      // Only names a pool gives (`skyward-sky-…`): a key of the user's
      // own that merely starts with "skyward-" is left alone.
      const cluster = /^skyward-(sky-[a-z0-9-]+)$/.exec(r.name)?.[1];
      if (!ours(cluster) || !old(r.created_at)) return false;
      clusters.add(cluster!);
      return true;
    });
  const [keys, scripts] = await Promise.all([
    named("/sshkeys"),
    named("/scripts"),
  ]);
  const report: SweepReport = {
    clusters: [...clusters].sort(),
    instances: instances.map((i) => i.id),
    sshKeys: keys.map((k) => k.id),
    scripts: scripts.map((s) => s.id),
  };
  if (options.dryRun) return report;

  const live = instances.filter((i) => i.status !== "deleting").map((i) =>
    i.id
  );
  try {
    await deleteInstances(api, live);
    await waitGone(api, report.instances, options.timeout ?? 600_000);
  } catch (error) {
    problems.push(
      `instances ${report.instances.join(", ")}: ${(error as Error).message}`,
    );
  }
  for (const key of keys) {
    await api.request(`/sshkeys/${encodeURIComponent(key.id)}`, {
      method: "DELETE",
      schema: z.unknown(),
      accept: [404],
    }).catch((error) =>
      problems.push(`SSH key ${key.name}: ${(error as Error).message}`)
    );
  }
  for (const script of scripts) {
    await api.request(`/scripts/${encodeURIComponent(script.id)}`, {
      method: "DELETE",
      schema: z.unknown(),
      accept: [404],
    }).catch((error) =>
      problems.push(
        `startup script ${script.name}: ${(error as Error).message}`,
      )
    );
  }
  if (problems.length > 0) {
    throw new ProvisioningError(
      `Verda resources of ${
        options.cluster ? `cluster ${options.cluster}` : "Skyward clusters"
      } may be left: ${problems.join("; ")}. Remove them with: ` +
        `await sky.Verda().cleanup(${
          options.cluster ? `{ cluster: "${options.cluster}" }` : ""
        })`,
    );
  }
  return report;
}

async function waitGone(
  api: VerdaApi,
  ids: string[],
  timeout: number,
): Promise<void> {
  if (ids.length === 0) return;
  const deadline = Date.now() + timeout;
  for (let delay = 250;; delay = Math.min(delay * 2, 5_000)) {
    const listed = new Set(
      (await api.request("/instances", { schema: z.array(InstanceSchema) }))
        .map((i) => i.id),
    );
    const left = ids.filter((id) => listed.has(id));
    if (left.length === 0) return;
    if (Date.now() > deadline) {
      throw new ProvisioningError(
        `instances ${left.join(", ")} were still listed after ${timeout} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}
