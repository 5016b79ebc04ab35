/**
 * The Vast.ai provider: GPU machines rented on Vast.ai's marketplace as the
 * pool's nodes, through its REST API.
 *
 * - **Offers**: a marketplace search (`POST /bundles/`) with the pool's
 *   wishes as filters — GPU model under Vast.ai's name, GPUs per machine,
 *   memory, reliability, verified machines, CUDA version, vCPUs, RAM, disk,
 *   architecture, price — ranked by the allocation's price (the minimum bid
 *   for spot, `dph_total` on demand).
 * - **prepare**: a per-pool Ed25519 key pair made here; its public key
 *   registered on the account (`POST /ssh/`), which Vast.ai installs on the
 *   instances created after.
 * - **provision**: `PUT /asks/{id}/` per machine, interruptible with a bid
 *   or on demand, labelled with the pool's id and an onstart script that
 *   destroys the instance once no client has been connected for `ttl`; when
 *   an offer is gone or refused, the next one is tried.
 * - **teardown**: the instances the pool launched and those labelled with
 *   its id destroyed (each destroy checked for `success`), then its SSH key
 *   deleted; `cleanup()` sweeps every Skyward pool's leftovers.
 *
 * Each request follows the official `vastai` CLI and SDK (vast-ai/vast-cli),
 * named beside it: `vast.py` and `vastai/api/instances.py`.
 *
 * Vast.ai has no private network between machines: each node runs on its
 * own, and `instanceInfo().peers` holds no addresses.
 *
 * @module
 */
import {
  ConfigError,
  NoOffersError,
  ProvisioningError,
} from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import type {
  ClusterSpec,
  Instance,
  Offer,
  ProviderWithCleanup,
} from "../../src/provider.ts";
import { HttpError } from "../_http.ts";
import { createOnce } from "../_create.ts";
import { marketsFor } from "../_offers.ts";
import { retry } from "../../src/_retry.ts";
import {
  cleanupCommand,
  NO_REGIONS,
  refuseCleanupOptions,
  UNDATED,
} from "../_cleanup.ts";
import { generateSshKeyPair, withPrivateKey } from "../_keys.ts";
import {
  anySchema,
  createKeySchema,
  createSchema,
  destroySchema,
  instanceSchema,
  instancesPageSchema,
  sshKeySchema,
  stripStrings,
  userSchema,
  type VastApiInstance,
  vastClients,
} from "./api.ts";
import {
  KEY_COMMENT,
  sweep,
  type VastAccount,
  type VastCleanupOptions,
  type VastCleanupReport,
} from "./sweep.ts";
import {
  resolveVastOptions,
  type VastAIOptions,
  type VastInstanceDetails,
} from "./config.ts";
import {
  describeQuery,
  noOffersHint,
  queryOf,
  searchOffers,
  type VastOffer,
  type VastQuery,
} from "./offers.ts";
import {
  bidFor,
  onstartScript,
  toInstance,
  type VastCluster,
} from "./instances.ts";

export type { VastAIOptions, VastInstanceDetails, VastOffer, VastQuery };
export type { VastCluster } from "./instances.ts";
export type { VastCleanupOptions, VastCleanupReport } from "./sweep.ts";

const log = logger("vastai");

/**
 * The Vast.ai provider's type. Its `cleanup` removes what Skyward pools left
 * on the account: destroys the instances labelled `sky-…` and deletes the
 * SSH keys whose comment is `skyward:sky-…`.
 */
export type VastAIProvider = ProviderWithCleanup<
  VastCluster,
  VastAIOptions,
  VastCleanupOptions,
  VastCleanupReport
>;

/**
 * Runs nodes on Vast.ai instances. The API key comes from the options,
 * `VAST_API_KEY`, or the file `vastai set api-key` writes
 * (`~/.config/vastai/vast_api_key`; older CLIs wrote `~/.vast_api_key`).
 *
 * @param options Key, filters, image and the rest; all optional.
 * @returns The provider, for `ComputePool.start({ provider })`.
 * @throws {ConfigError} When an option is invalid. A missing or refused key is
 *   a `ConfigError` too, when the pool starts; no fitting offer is a
 *   `NoOffersError`.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const provider = sky.VastAI({ minReliability: 0.98, cudaVersion: 12.4 });
 * console.log(provider.name); // "vastai"
 * // await using pool = await sky.ComputePool.start({
 * //   provider, accelerator: sky.accelerators.RTX_4090(), allocation: "spot-if-available",
 * // });
 * ```
 */
export function VastAI(options: VastAIOptions = {}): VastAIProvider {
  const resolved = resolveVastOptions(options);
  const { v0: api, v1 } = vastClients(resolved);

  function clusterOf(cluster: VastCluster): VastCluster {
    if (
      !cluster || typeof cluster !== "object" || !cluster.id ||
      !cluster.query || !(cluster.tried instanceof Set) ||
      !(cluster.launched instanceof Set)
    ) {
      throw new ConfigError(
        "sky.VastAI() was given a cluster it did not prepare",
      );
    }
    return cluster;
  }

  /**
   * Every instance of the account (or those with one label), as the CLI
   * lists them: vast-cli `vastai/api/instances.py` `show_instances` (and
   * `vast.py` `_fetch_all_instances_v1`) pages through `GET
   * /api/v1/instances/` with `select_filters`, `order_by` by id and `limit`
   * 25, passing each answer's `next_token` as the next `after_token`, reads
   * `instances: null` as none, and strips every string of each row.
   */
  async function listInstances(label?: string): Promise<VastApiInstance[]> {
    const rows: VastApiInstance[] = [];
    const seen = new Set<string>();
    let after: string | undefined;
    for (;;) {
      const page = await v1.request("/instances/", {
        query: {
          select_filters: JSON.stringify(
            label === undefined ? {} : { label: { in: [label] } },
          ),
          order_by: JSON.stringify([{ col: "id", dir: "asc" }]),
          limit: 25,
          after_token: after,
        },
        schema: instancesPageSchema,
      });
      rows.push(...(page.instances ?? []).map(stripStrings));
      const next = page.next_token;
      if (!next || seen.has(next)) break;
      seen.add(next);
      after = next;
    }
    return label === undefined ? rows : rows.filter((r) => r.label === label);
  }

  /** One instance, or `undefined` once Vast.ai no longer knows it. */
  async function showInstance(
    id: string,
  ): Promise<VastApiInstance | undefined> {
    // vast-cli `vastai/api/instances.py` `show_instance`: GET
    // /instances/{id}/?owner=me, `instances: null` once it is gone.
    const found = await api.request(
      `/instances/${encodeURIComponent(id)}/`,
      { query: { owner: "me" }, schema: instanceSchema, accept: [404] },
    );
    const instance = found?.instances;
    if (!instance || String(instance.id) !== id) return undefined;
    return stripStrings(instance);
  }

  /**
   * Destroys an instance and makes sure it is: vast-cli `vast.py`
   * `destroy_instance` (and `vastai/api/instances.py` `destroy_instance`)
   * sends `DELETE /instances/{id}/` with the body `{}` and reads `success`,
   * printing `msg` when it is false. A 2xx with `success: false` is not a
   * destroyed instance: unless the instance is gone by then, the destroy is
   * sent again, and reported with Vast.ai's `msg` if it never succeeds.
   */
  async function destroy(id: string): Promise<void> {
    // Destroys answered `success: false`, sent again.
    const refused = new WeakSet<Error>();
    await retry(async () => {
      let msg: string;
      try {
        const answer = await api.request(
          `/instances/${encodeURIComponent(id)}/`,
          { method: "DELETE", body: {}, schema: destroySchema },
        );
        if (answer?.success !== false) return;
        msg = answer.msg || answer.error || "success: false";
      } catch (error) {
        if (error instanceof HttpError && error.status === 404) return;
        throw error;
      }
      log.info("Vast.ai did not destroy instance {id}: {msg}", { id, msg });
      const found = await showInstance(id).catch(() => null);
      if (found === undefined || found?.actual_status === "destroyed") return;
      const error = new ProvisioningError(
        `Vast.ai did not destroy instance ${id} (answered success: false): ${msg}`,
      );
      refused.add(error);
      throw error;
    }, {
      maxAttempts: 3,
      minDelay: 250,
      jitter: 0,
      isRetriable: (error) => refused.has(error as Error),
    });
  }

  /** The environment an instance was created with (`extra_env` pairs). */
  function envOf(instance: VastApiInstance): Record<string, string> {
    return Object.fromEntries(
      (instance.extra_env ?? []).filter((pair) => pair.length >= 2).map((
        [k, v],
      ) => [String(k), String(v)]),
    );
  }

  async function listKeys() {
    // vast-cli `vast.py` `show__ssh_keys`: GET /ssh/.
    return await api.request("/ssh/", {
      schema: sshKeySchema.array(),
    });
  }

  async function deleteKey(id: number): Promise<void> {
    // vast-cli `vast.py` `delete__ssh_key`: DELETE /ssh/{id}/.
    await api.request(`/ssh/${id}/`, {
      method: "DELETE",
      schema: anySchema,
      accept: [404],
    });
  }

  const account: VastAccount = { listInstances, listKeys, deleteKey, destroy };

  return {
    name: "vastai",
    options,
    privateNetwork: false,
    sweepHint: (cluster) => cleanupCommand("vastai", cluster),
    async offers(spec: ClusterSpec): Promise<Offer[]> {
      const query = queryOf(spec);
      const offers = await searchOffers(api, query, resolved);
      if (offers.length === 0) {
        throw new NoOffersError(
          `No instances available on Vast.ai for ${
            describeQuery(query, resolved)
          } (${spec.allocation}). ${noOffersHint(query)}`,
        );
      }
      return offers;
    },
    async prepare(spec: ClusterSpec, offer: Offer): Promise<VastCluster> {
      const query = queryOf(spec);
      const vastOffer = offer as VastOffer;
      if (typeof vastOffer.offerId !== "number") {
        throw new ConfigError(
          "sky.VastAI() was given an offer it did not make: pass one of its offers()",
        );
      }
      const pair = await generateSshKeyPair(`${KEY_COMMENT}${spec.clusterId}`);
      // vast-cli `vast.py` `create__ssh_key`: POST /ssh/ { ssh_key }.
      const { key } = await api.request("/ssh/", {
        method: "POST",
        body: { ssh_key: pair.publicKey },
        schema: createKeySchema,
      });
      return withPrivateKey<VastCluster>({
        id: spec.clusterId,
        query,
        offer: vastOffer,
        sshKeyId: key.id,
        publicKey: pair.publicKey,
        tried: new Set<number>(),
        launched: new Set<string>(),
      }, pair.privateKey);
    },
    async provision(cluster: VastCluster, count: number): Promise<Instance[]> {
      const c = clusterOf(cluster);
      const chosen = c.offer;
      // The market moves: search again. The chosen offer first, then the
      // same GPU model, then whatever else fits the pool's wishes.
      const fresh = await searchOffers(api, c.query, resolved);
      const rank = (o: VastOffer) =>
        o.offerId === chosen.offerId
          ? 0
          : o.gpuName === chosen.gpuName && o.gpuCount === chosen.gpuCount
          ? 1
          : 2;
      const candidates = fresh
        .map((o, i) => ({ o, i }))
        .sort((a, b) => rank(a.o) - rank(b.o) || a.i - b.i)
        .map(({ o }) => o)
        .filter((o) => !c.tried.has(o.offerId));
      if (
        !c.tried.has(chosen.offerId) &&
        !candidates.some((o) => o.offerId === chosen.offerId)
      ) {
        candidates.unshift(chosen);
      }
      const launched: Instance[] = [];
      const failures: string[] = [];
      for (const offer of candidates) {
        if (launched.length >= count) break;
        c.tried.add(offer.offerId);
        for (
          const market of marketsFor(
            offer,
            c.query.allocation,
            c.query.maxHourlyCost,
          )
        ) {
          // Marks this create, so that a lookup after a lost answer finds
          // exactly the instance it made (in `extra_env`).
          const launch = crypto.randomUUID();
          // vast-cli `vastai/api/instances.py` `create_instance` (and
          // `vast.py` `create__instance`): PUT /asks/{id}/ with `client_id:
          // "me"`, the image, env, disk, label, onstart and, for SSH, the
          // runtype `vast.py` `get_runtype` sets: "ssh_direc ssh_proxy" with
          // --direct (so the proxy exists as a fallback), else "ssh_proxy".
          const body: Record<string, unknown> = {
            client_id: "me",
            image: resolved.image,
            disk: c.query.diskGb,
            runtype: resolved.ssh === "direct"
              ? "ssh_direc ssh_proxy"
              : "ssh_proxy",
            onstart: onstartScript(resolved),
            label: c.id,
            env: { SKYWARD_CLUSTER: c.id, SKYWARD_LAUNCH: launch },
            target_state: "running",
            cancel_unavail: true,
          };
          if (market === "spot") {
            body.price = bidFor(offer, resolved, c.query.maxHourlyCost);
          }
          try {
            // Sent once: a lost answer is looked up by the pool's label and
            // this launch's mark before the create is sent again.
            const id = await createOnce({
              what:
                `Vast.ai instance from offer ${offer.offerId} (label ${c.id})`,
              create: async () => {
                const created = await api.request(`/asks/${offer.offerId}/`, {
                  method: "PUT",
                  body,
                  schema: createSchema,
                  once: true,
                });
                if (created.success === false || created.new_contract == null) {
                  throw new HttpError(
                    "Vast.ai",
                    "PUT",
                    `/asks/${offer.offerId}/`,
                    200,
                    created.msg || created.error || "success: false",
                  );
                }
                return String(created.new_contract);
              },
              lookup: async () => {
                const rows = await listInstances(c.id);
                // This create's mark; else (should the listing not carry
                // the env) an instance of the pool no other create claims.
                const found = rows.find((r) =>
                  envOf(r).SKYWARD_LAUNCH === launch
                ) ?? rows.find((r) =>
                  envOf(r).SKYWARD_LAUNCH === undefined &&
                  !c.launched.has(String(r.id))
                );
                return found ? String(found.id) : undefined;
              },
            });
            c.launched.add(id);
            log.info("Created {market} instance {id} from offer {offer}", {
              market,
              id,
              offer: offer.offerId,
            });
            // What it costs: the bid placed, or the offer's on-demand price
            // (the offer taken may not be the one the pool ranked first).
            const price = market === "spot"
              ? body.price as number
              : offer.onDemandPrice;
            launched.push({
              id,
              status: "pending",
              spot: market === "spot",
              ...price !== undefined && { pricePerHour: price },
            });
            break;
          } catch (error) {
            if (!(error instanceof HttpError)) throw error;
            failures.push(
              `offer ${offer.offerId} (${
                market === "spot" ? "bid" : market
              }): ${error.status} ${error.detail}`,
            );
            log.info("Offer {offer} refused ({market}): {detail}", {
              offer: offer.offerId,
              market,
              detail: error.detail,
            });
          }
        }
      }
      if (launched.length === 0) {
        throw new NoOffersError(
          `No instances available on Vast.ai for ${
            describeQuery(c.query, resolved)
          } (${c.query.allocation}): ${
            failures.join("; ") || "no offer left to try"
          }. ${noOffersHint(c.query)}`,
        );
      }
      return launched;
    },
    async getInstance(
      cluster: VastCluster,
      id: string,
    ): Promise<Instance | undefined> {
      const c = clusterOf(cluster);
      const instance = await showInstance(id);
      return instance ? toInstance(c, instance, resolved) : undefined;
    },
    async terminate(cluster: VastCluster, ids: string[]): Promise<void> {
      clusterOf(cluster);
      await Promise.all(ids.map((id) => destroy(id)));
      for (const id of ids) cluster.launched.delete(id);
    },
    async teardown(cluster: VastCluster): Promise<void> {
      const c = clusterOf(cluster);
      await sweep(account, { cluster: c.id }, c.launched);
    },
    async cleanup(cleanup: VastCleanupOptions = {}) {
      refuseCleanupOptions("vastai", cleanup, {
        olderThan: UNDATED,
        region: NO_REGIONS,
      });
      return await sweep(account, cleanup);
    },
    async checkCredentials(): Promise<string> {
      // vast-cli `vast.py` `show__user`: GET /users/current.
      const user = await api.request("/users/current/", { schema: userSchema });
      const credit = user.credit ?? user.balance;
      return `account ${user.id}${user.email ? ` (${user.email})` : ""}${
        credit != null ? `, credit $${credit.toFixed(2)}` : ""
      }`;
    },
  };
}
