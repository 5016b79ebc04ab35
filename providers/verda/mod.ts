/**
 * The Verda provider (formerly DataCrunch): Verda instances as the pool's
 * nodes, through Verda's REST API with `fetch` — no SDK.
 *
 * - **Credentials**: an API client's id and secret (`VERDA_CLIENT_ID`,
 *   `VERDA_CLIENT_SECRET`), exchanged for an OAuth2 token that is refreshed
 *   before it expires.
 * - **Offers**: instance types (`GET /instance-types`) carrying the
 *   accelerator, available now per location and market
 *   (`GET /instance-availability`), priced spot and on-demand, ranked for
 *   the allocation.
 * - **prepare**: a per-pool Ed25519 key registered with `POST /sshkeys` and a
 *   startup script with `POST /scripts` (an idle watchdog), both named
 *   `skyward-<pool id>`.
 * - **provision**: `POST /instances`, spot or on-demand, location after
 *   location on a capacity error.
 * - **teardown**: `PUT /instances` with the `delete` action for the
 *   cluster's instances (found by their description), then the key and the
 *   script; `cleanup()` sweeps every Skyward cluster's leftovers.
 *
 * @module
 */
import { envVar } from "../_env.ts";
import { ConfigError } from "../../src/errors.ts";
import type {
  ClusterSpec,
  Instance,
  Offer,
  ProviderWithCleanup,
} from "../../src/provider.ts";
import type { ProviderCleanupOptions } from "../../src/provider.ts";
import {
  BalanceSchema,
  VERDA_API,
  VerdaApi,
  type VerdaInstance,
} from "./api.ts";
import {
  type ClusterOptions,
  deleteWhenAllowed,
  describe,
  launch,
  prepareCluster,
  sweep,
  type SweepReport,
  type VerdaCluster,
} from "./cluster.ts";
import { findOffers, type VerdaOffer } from "./offers.ts";
import { resolveVerdaOptions, type VerdaOptions } from "./config.ts";
import { offersCache } from "../_offers.ts";
import { cleanupCommand, refuseCleanupOptions } from "../_cleanup.ts";

export type { VerdaCluster, VerdaInstance, VerdaOffer, VerdaOptions };

/**
 * Options of {@linkcode VerdaProvider.cleanup}: which cluster (by default every
 * Skyward cluster's, also those of pools still running), how old, and a dry
 * run. The sweep covers every location at once, so `region` is refused.
 */
export type VerdaCleanupOptions = ProviderCleanupOptions;

/** What {@linkcode VerdaProvider.cleanup} found and removed. */
export type VerdaCleanupReport = SweepReport;

/**
 * The Verda provider's type. Its `cleanup` removes what Skyward clusters
 * left on the account: deletes the instances whose description names a
 * Skyward cluster, then the SSH keys and startup scripts named
 * `skyward-<cluster>`.
 */
export type VerdaProvider = ProviderWithCleanup<
  VerdaCluster,
  VerdaOptions,
  VerdaCleanupOptions,
  VerdaCleanupReport
>;

/** How long offers are reused, in ms. */
const OFFERS_TTL = 60_000;

/**
 * Runs nodes on Verda instances (formerly DataCrunch). Credentials come from
 * the options or from `VERDA_CLIENT_ID` and `VERDA_CLIENT_SECRET`; they are
 * read when the pool starts.
 *
 * @param options Credentials, location, instance type and the rest; all optional.
 * @returns The provider, for `ComputePool.start({ provider })`.
 * @throws {ConfigError} When an option is invalid. Missing or refused
 *   credentials are `ConfigError`s too, when the pool starts; no capacity is
 *   a `NoOffersError`.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const provider = sky.Verda({ location: "FIN-01" });
 * console.log(provider.name); // "verda"
 * // await using pool = await sky.ComputePool.start({
 * //   provider, accelerator: sky.accelerators.H100(), allocation: "spot-if-available",
 * // });
 * ```
 */
export function Verda(options: VerdaOptions = {}): VerdaProvider {
  const resolved = resolveVerdaOptions(options);
  let client: VerdaApi | undefined;
  const api = () =>
    client ??= new VerdaApi({
      baseUrl: resolved.baseUrl ?? VERDA_API,
      clientId: resolved.clientId ?? envVar("VERDA_CLIENT_ID"),
      clientSecret: resolved.clientSecret ?? envVar("VERDA_CLIENT_SECRET"),
    });
  const clusterOptions: ClusterOptions = {
    ...(resolved.image ? { image: resolved.image } : {}),
    sshUser: resolved.sshUser ?? "root",
    ttl: resolved.ttl,
    ...(resolved.maxLifetime ? { maxLifetime: resolved.maxLifetime } : {}),
    addressWait: 300_000,
    orderWait: 180_000,
  };
  const cachedOffers = offersCache<VerdaOffer>(OFFERS_TTL);

  function clusterOf(cluster: VerdaCluster): VerdaCluster {
    if (
      !cluster || typeof cluster !== "object" || !cluster.id ||
      !cluster.sshKeyId
    ) {
      throw new ConfigError(
        "sky.Verda() was given a cluster it did not prepare",
      );
    }
    return cluster;
  }

  return {
    name: "verda",
    options,
    sweepHint: (cluster) => cleanupCommand("verda", cluster),
    async offers(spec: ClusterSpec): Promise<Offer[]> {
      return await cachedOffers(
        spec.region,
        spec,
        () => findOffers(api(), spec, resolved),
      );
    },
    async prepare(spec: ClusterSpec, offer: Offer): Promise<VerdaCluster> {
      const verdaOffer: VerdaOffer = {
        spotLocations: [],
        onDemandLocations: [],
        ...offer,
        provider: "verda",
      };
      return await prepareCluster(api(), clusterOptions, spec, verdaOffer);
    },
    async provision(cluster: VerdaCluster, count: number): Promise<Instance[]> {
      return await launch(api(), clusterOf(cluster), clusterOptions, count);
    },
    async getInstance(
      cluster: VerdaCluster,
      id: string,
    ): Promise<Instance | undefined> {
      return await describe(api(), clusterOf(cluster), clusterOptions, id);
    },
    async terminate(cluster: VerdaCluster, ids: string[]): Promise<void> {
      clusterOf(cluster);
      // A machine given back while still provisioning cannot be deleted
      // yet: wait for it (a few minutes at most; teardown sweeps the rest).
      await deleteWhenAllowed(api(), ids, undefined, Date.now() + 300_000);
    },
    async teardown(cluster: VerdaCluster): Promise<void> {
      await sweep(api(), { cluster: clusterOf(cluster).id });
    },
    async cleanup(
      cleanup: VerdaCleanupOptions = {},
    ): Promise<VerdaCleanupReport> {
      refuseCleanupOptions("verda", cleanup, {
        region: "it sweeps every location of the account at once",
      });
      return await sweep(api(), cleanup);
    },
    async checkCredentials(): Promise<string> {
      const balance = await api().request("/balance", {
        schema: BalanceSchema,
      });
      return `balance ${balance.amount.toFixed(2)} ${balance.currency}`;
    },
  };
}
