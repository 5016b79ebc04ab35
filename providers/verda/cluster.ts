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
import { sshRunning } from "../_ssh.ts";
import { z } from "npm:zod@4.6.7";
import { NoOffersError, ProvisioningError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import type { ClusterSpec, Instance } from "../../src/provider.ts";
import { userData } from "../_user_data.ts";
import { generateSshKeyPair, withPrivateKey } from "../_keys.ts";
import { HttpError } from "../_http.ts";
import { createOnce } from "../_create.ts";
import {
  ImageSchema,
  InstanceSchema,
  list,
  NamedSchema,
  type VerdaApi,
  type VerdaInstance,
} from "./api.ts";
import { sweepFailedPrepare } from "../_cleanup.ts";
import { allocationHint, marketsFor } from "../_offers.ts";
import { pollUntil } from "../_poll.ts";
import { backoff, retry } from "../../src/_retry.ts";
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
  /**
   * How long `provision` waits for a new instance to leave `ordered`, when
   * Verda tells whether it has the capacity after all, in ms.
   */
  orderWait: number;
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

async function chooseImage(
  api: VerdaApi,
  instanceType: string,
  gpu: boolean,
): Promise<string> {
  const images = await api.request("/images", {
    query: { instance_type: instanceType },
    schema: list(ImageSchema),
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
    // Both answer the new id as plain text (Python SDK
    // `verda/ssh_keys/_ssh_keys.py` and `verda/startup_scripts/_startup_scripts.py`
    // read `.text`; Go SDK `pkg/verda/ssh_keys.go` `createWithPlainTextResponse`).
    // Sent once; on an ambiguous failure, found again by the pool's name.
    const named = (path: string) => async () =>
      (await api.request(path, { schema: list(NamedSchema) })).find((r) =>
        r.name === name
      )?.id;
    const sshKeyId = await createOnce({
      what: `Verda SSH key ${name}`,
      create: () =>
        api.request("/sshkeys", {
          method: "POST",
          body: { name, key: keys.publicKey },
          schema: CreatedId,
          text: true,
          once: true,
        }),
      lookup: named("/sshkeys"),
    });
    const scriptId = await createOnce({
      what: `Verda startup script ${name}`,
      create: () =>
        api.request("/scripts", {
          method: "POST",
          body: { name, script: userData(options) },
          schema: CreatedId,
          text: true,
          once: true,
        }),
      lookup: named("/scripts"),
    });
    return withPrivateKey<VerdaCluster>({
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
    }, keys.privateKey);
  } catch (error) {
    await sweepFailedPrepare(id, () => sweep(api, { cluster: id }), log);
    throw error;
  }
}

/** Verda's error body (`APIError`, Go SDK `pkg/verda/errors.go`). */
const Refusal = z.object({ code: z.string().nullish(), message: z.string() });

/**
 * The id a create answers: plain text (what the Python SDK reads, `.text`,
 * `verda/instances/_instances.py`), a JSON string, or a JSON object with the
 * `id` — the Go SDK's `createWithPlainTextResponse` (`pkg/verda/instances.go`)
 * handles "sometimes JSON, sometimes plain text ID" and its mock answers a
 * whole `Instance` (`pkg/verda/testutil/mock_server.go`).
 */
const CreatedId = z.union([
  z.string().trim().min(1),
  z.object({ id: z.string().min(1) }).transform((o) => o.id),
]);

/** Whether an error of `POST /instances` means "no capacity there": try elsewhere. */
export function isCapacityError(error: unknown): boolean {
  if (!(error instanceof HttpError)) return false;
  return error.status === 503 ||
    /not enough resources|no capacity|no_capacity|sold out|not available/i
      .test(error.detail);
}

/** Why a market and location could not take an instance: try the next. */
class NoCapacityHere extends Error {}

/**
 * Deploys one instance with `POST /instances` (the body of the Python SDK's
 * `InstancesService.create`, `verda/instances/_instances.py`, and Go SDK's
 * `CreateInstanceRequest`, `pkg/verda/instances_types.go`). The request is
 * sent once: when its answer is lost, the instance is looked up by its
 * hostname (unique to this deploy) before the request is sent again, so a
 * lost answer never deploys a second instance.
 *
 * @returns The new instance's id.
 * @throws {NoCapacityHere} When Verda has no capacity for it there.
 */
async function deploy(
  api: VerdaApi,
  cluster: VerdaCluster,
  spot: boolean,
  location: string,
): Promise<string> {
  const hostname = `${cluster.id}-${crypto.randomUUID().slice(0, 6)}`;
  const description = `${DESCRIPTION_PREFIX}${cluster.id}`;
  return await createOnce({
    what: `Verda instance ${hostname}`,
    create: async () => {
      const answer = await api.request("/instances", {
        method: "POST",
        body: {
          instance_type: cluster.offer.instanceType,
          image: cluster.image,
          hostname,
          description,
          ssh_key_ids: [cluster.sshKeyId],
          startup_script_id: cluster.scriptId,
          location_code: location,
          is_spot: spot,
          // `Contract` of the Python SDK: `SPOT` or `PAY_AS_YOU_GO`.
          contract: spot ? "SPOT" : "PAY_AS_YOU_GO",
          os_volume: {
            name: `${cluster.id}-os`,
            size: cluster.diskGb,
            // `OnSpotDiscontinue` (Python SDK `OSVolume`): without it a
            // discontinued spot instance's volume is kept detached.
            ...(spot ? { on_spot_discontinue: "delete_permanently" } : {}),
          },
        },
        schema: z.union([CreatedId, Refusal]),
        text: true,
        // Verda answers "no capacity here" with 503 `service_unavailable`:
        // not an outage to wait out but a reason to try elsewhere, so it is
        // taken as an answer rather than retried.
        accept: [503],
        once: true,
      }).catch((error) => {
        // Capacity refused with another status, recognised by its wording.
        throw isCapacityError(error)
          ? new NoCapacityHere((error as HttpError).detail, { cause: error })
          : error;
      });
      if (typeof answer === "string") return answer;
      throw new NoCapacityHere(answer.message);
    },
    lookup: async () =>
      (await listInstances(api)).find((i) =>
        i.hostname === hostname && i.description === description
      )?.id,
  });
}

/**
 * Waits until a new instance has left `new` and `ordered`, as the Python
 * SDK's `create` does (`wait_for_status`, `verda/instances/_instances.py`:
 * 0.5 s doubling to 5 s), since that is when Verda tells whether it had the
 * capacity after all: an instance can go to `no_capacity` (`StatusNoCapacity`,
 * Go SDK `pkg/verda/instances_types.go`) after its create succeeded.
 *
 * @returns The instance as last seen, or `undefined` when Verda no longer knows it.
 */
async function settle(
  api: VerdaApi,
  id: string,
  wait: number,
): Promise<VerdaInstance | undefined> {
  let found: VerdaInstance | undefined;
  await pollUntil(async () => {
    found = await get(api, id);
    return !found || !ORDERING.has(found.status) ? true : undefined;
  }, { timeout: wait, minDelay: 500 });
  return found;
}

/**
 * Deploys up to `count` instances of the cluster's offer, one by one: each
 * market of the allocation in turn, each location with capacity in turn. A
 * location without capacity — a 503 on create, or an instance that goes to
 * `no_capacity` after it — passes to the next. Waits (up to `addressWait`)
 * for each one's address, so that every node knows its peers.
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
  const markets = marketsFor(
    cluster.offer,
    cluster.allocation,
    cluster.maxHourlyCost,
  );
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
          const id = await deploy(api, cluster, spot, location);
          const found = await settle(api, id, options.orderWait);
          if (found && gone(found.status)) {
            await deleteInstances(api, [id], [found]).catch((error) =>
              log.warn("Deleting {id} ({status}) failed: {error}", {
                id,
                status: found.status,
                error,
              })
            );
            if (found.status === "no_capacity") {
              throw new NoCapacityHere(
                `instance ${id} went to no_capacity after it was created`,
              );
            }
            throw new ProvisioningError(
              `Verda instance ${id} (${type} in ${location}) went to ` +
                `'${found.status}' right after it was created; it was deleted`,
            );
          }
          log.info("Deployed {market} {type} in {location}: {id}", {
            market,
            type,
            location,
            id,
          });
          deployed = { id, status: "pending", spot };
        } catch (error) {
          if (!(error instanceof NoCapacityHere)) throw error;
          full.add(`${market} ${location}`);
          failures.push(`${market} in ${location}: ${error.message}`);
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
  let found: VerdaInstance | undefined;
  await pollUntil(async () => {
    found = await get(api, instance.id);
    return !found || found.ip || gone(found.status) ? true : undefined;
  }, { timeout: wait });
  return found?.ip ? { ...instance, privateAddress: found.ip } : instance;
}

/** `GET /instances`: the account's instances that are not deleted. */
function listInstances(api: VerdaApi): Promise<VerdaInstance[]> {
  // Python SDK `InstancesService.get`, Go SDK `InstanceService.Get`
  // (`[]Instance`, which takes `null` as empty).
  return api.request("/instances", { schema: list(InstanceSchema) });
}

/** `GET /instances/{id}` (Python SDK `get_by_id`), or `undefined` on 404. */
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

/** Statuses before Verda has placed the instance (Go SDK `pkg/verda/instances_types.go`). */
const ORDERING = new Set(["new", "ordered"]);

/** Statuses of an instance on its way to `running`. */
const PENDING = new Set([
  ...ORDERING,
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
  return sshRunning(base, {
    host: found.ip,
    port: 22,
    details: found,
    sshUser: options.sshUser,
    defaultUser: "root",
    privateKey: cluster.privateKey,
  });
}

/**
 * Deletes instances for good, their OS volumes included; ids already gone
 * are skipped.
 *
 * `PUT /instances` with the `delete` action (Python SDK
 * `InstancesService.action`, `verda/instances/_instances.py`; Go SDK
 * `InstanceService.Action`, `pkg/verda/instances.go`). `delete_permanently`
 * applies only to the volumes listed in `volume_ids` — without them the OS
 * volume goes to Verda's trash (Python SDK: "Only applicable when volume_ids
 * is also provided"), where it is kept, and billed, for 96 hours. So each
 * instance's OS volume (`os_volume_id`) is listed with it. Only the OS
 * volume, the one Skyward created: another volume someone attached to the
 * instance is detached, as Verda does by default, not deleted. An instance
 * with no OS volume yet (still `ordered`) is deleted with `volume_ids: null`,
 * what both SDKs send by default.
 *
 * @param ids The instances to delete.
 * @param known Their descriptions, when the caller has them; else they are listed.
 * @throws {ProvisioningError} When Verda refused to delete some.
 */
export async function deleteInstances(
  api: VerdaApi,
  ids: string[],
  known?: VerdaInstance[],
): Promise<void> {
  if (ids.length === 0) return;
  const byId = new Map(
    (known ?? await listInstances(api)).map((i) => [i.id, i]),
  );
  const volume = (id: string) => byId.get(id)?.os_volume_id ?? undefined;
  const withVolume = ids.filter((id) => volume(id) !== undefined);
  const without = ids.filter((id) => volume(id) === undefined);
  const failed: string[] = [];
  for (
    const body of [
      withVolume.length > 0
        ? {
          action: "delete",
          id: withVolume,
          volume_ids: withVolume.map((id) => volume(id)!),
          delete_permanently: true,
        }
        : undefined,
      without.length > 0
        ? { action: "delete", id: without, volume_ids: null }
        : undefined,
    ]
  ) {
    if (!body) continue;
    // 202 with a result per instance, 207 when some failed, or 204
    // (`InstanceActionResult`, Go SDK `pkg/verda/instances.go`).
    const answer = await api.request("/instances", {
      method: "PUT",
      body,
      schema: z.unknown(),
      accept: [404, 207],
    });
    const results = z.array(z.object({
      instanceId: z.string().nullish(),
      error: z.string().nullish(),
      statusCode: z.number().nullish(),
    })).safeParse(answer);
    for (const r of results.success ? results.data : []) {
      if (r.error && r.statusCode !== 404 && !/not found/i.test(r.error)) {
        failed.push(`${r.instanceId}: ${r.error}`);
      }
    }
  }
  if (failed.length > 0) {
    throw new ProvisioningError(
      `Verda did not delete ${failed.join("; ")}`,
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
export type SweepReport = {
  /** The clusters whose resources were found. */
  clusters: string[];
  /** Instances deleted. */
  instances: string[];
  /** SSH keys deleted. */
  sshKeys: string[];
  /** Startup scripts deleted. */
  scripts: string[];
};

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

  const instances = (await listInstances(api)).filter((i) =>
    ours(clusterOfInstance(i)) && old(i.created_at)
  );
  for (const i of instances) clusters.add(clusterOfInstance(i)!);
  const named = async (path: string) =>
    (await api.request(path, { schema: list(NamedSchema) })).filter((r) => {
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
  const timeout = options.timeout ?? 600_000;
  try {
    await deleteWhenAllowed(api, live, instances, Date.now() + timeout);
    await waitGone(api, report.instances, timeout);
  } catch (error) {
    problems.push(
      `instances ${report.instances.join(", ")}: ${(error as Error).message}`,
    );
  }
  const registered = [
    ["/sshkeys", "SSH key", keys],
    ["/scripts", "startup script", scripts],
  ] as const;
  for (const [path, what, resources] of registered) {
    for (const resource of resources) {
      await api.request(`${path}/${encodeURIComponent(resource.id)}`, {
        method: "DELETE",
        schema: z.unknown(),
        accept: [404],
      }).catch((error) =>
        problems.push(`${what} ${resource.name}: ${(error as Error).message}`)
      );
    }
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

/**
 * Deletes instances, trying again while Verda refuses because some are
 * still on their way up: it "forbids terminating provisioning instances"
 * (dstack's Verda backend, `core/backends/verda/compute.py`, which meets
 * "Can't discontinue a provisioning instance"; the Go SDK's own integration
 * test `test/integration/instances_test.go` waits out `provisioning` and
 * retries its delete).
 */
export async function deleteWhenAllowed(
  api: VerdaApi,
  ids: string[],
  known: VerdaInstance[] | undefined,
  deadline: number,
): Promise<void> {
  // Refusals while some of the instances still start: worth another try.
  const starting = new WeakSet<Error>();
  const spacing = { minDelay: 1_000, maxDelay: 10_000, jitter: 0 };
  await retry(async () => {
    try {
      return await deleteInstances(api, ids, known);
    } catch (error) {
      if (!(error instanceof ProvisioningError)) throw error;
      const listed = await listInstances(api);
      known = listed;
      ids = ids.filter((id) =>
        listed.some((i) => i.id === id && i.status !== "deleting")
      );
      if (ids.length === 0) return;
      const pending = listed.filter((i) =>
        ids.includes(i.id) && PENDING.has(i.status)
      );
      if (pending.length === 0) throw error;
      log.info(
        "Verda refused to delete {ids} while {starting} start(s) ({error}); trying again",
        {
          ids: ids.join(", "),
          starting: pending.map((i) => `${i.id} (${i.status})`).join(", "),
          error: error.message,
        },
      );
      starting.add(error);
      throw error;
    }
  }, {
    ...spacing,
    maxAttempts: Infinity,
    isRetriable: (error, attempt) =>
      starting.has(error as Error) &&
      Date.now() + backoff(attempt, spacing) <= deadline,
  });
}

async function waitGone(
  api: VerdaApi,
  ids: string[],
  timeout: number,
): Promise<void> {
  if (ids.length === 0) return;
  let left = ids;
  const gone = await pollUntil(async () => {
    const listed = new Set((await listInstances(api)).map((i) => i.id));
    left = ids.filter((id) => listed.has(id));
    return left.length === 0 ? true : undefined;
  }, { timeout });
  if (!gone) {
    throw new ProvisioningError(
      `instances ${left.join(", ")} were still listed after ${timeout} ms`,
    );
  }
}
