/**
 * The AWS provider's methods, on the AWS SDK. `mod.ts` loads this module on
 * the provider's first use (see `src/_lazy.ts`), so that a program that does
 * not use AWS never downloads the SDK.
 *
 * @module
 */
import { ConfigError } from "../../src/errors.ts";
import type { ClusterSpec, Instance, Offer } from "../../src/provider.ts";
import { type AwsClients, awsClients } from "./api.ts";
import type { AwsCluster, AwsOffer, ResolvedAwsOptions } from "./config.ts";
import { prepareCluster, sweep, terminateInstances } from "./infra.ts";
import { describe, launch } from "./instances.ts";
import { findOffers } from "./offers.ts";
import { offersCache } from "../_offers.ts";
import type {
  AwsCleanupOptions,
  AwsCleanupReport,
  AwsImplementation,
  AwsMethods,
} from "./mod.ts";

/** How long offers are reused, in ms. */
const OFFERS_TTL = 10 * 60_000;

/**
 * Makes the methods that `sky.AWS()` hands its calls to.
 *
 * @param resolved The provider's options, validated.
 * @returns The methods.
 *
 * @example
 * ```ts
 * import { awsMethods } from "./provider.ts";
 *
 * const methods = awsMethods({
 *   hostKeys: "console", hostKeyWait: 120_000, ttl: 600_000,
 *   usePrivateIp: false, tags: {},
 * });
 * console.log(typeof methods.offers); // "function"
 * ```
 */
export const awsMethods: AwsImplementation["awsMethods"] = (
  resolved: ResolvedAwsOptions,
): AwsMethods => {
  const clients = new Map<string, Promise<AwsClients>>();
  const cachedOffers = offersCache<AwsOffer>(OFFERS_TTL);

  function clientsFor(region?: string): Promise<AwsClients> {
    const key = region ?? "";
    let found = clients.get(key);
    if (!found) {
      found = awsClients(resolved, region);
      clients.set(key, found);
      found.catch(() => clients.delete(key));
    }
    return found;
  }

  function clusterOf(cluster: AwsCluster): AwsCluster {
    if (
      !cluster || typeof cluster !== "object" || !cluster.region || !cluster.id
    ) {
      throw new ConfigError("sky.AWS() was given a cluster it did not prepare");
    }
    return cluster;
  }

  return {
    async offers(spec: ClusterSpec): Promise<Offer[]> {
      const c = await clientsFor(spec.region);
      return await cachedOffers(
        c.region,
        spec,
        () => findOffers(c, spec, resolved),
      );
    },
    async prepare(spec: ClusterSpec, offer: Offer): Promise<AwsCluster> {
      const c = await clientsFor(offer.region ?? spec.region);
      const awsOffer: AwsOffer = {
        ...offer,
        provider: "aws",
        region: c.region,
        spotZones: (offer as Partial<AwsOffer>).spotZones ?? [],
      };
      return await prepareCluster(c, resolved, spec, awsOffer);
    },
    async checkCredentials(): Promise<string> {
      const c = await clientsFor(undefined);
      const out = await c.send<{ Vpcs?: { VpcId?: string }[] }>(
        new c.sdk.DescribeVpcsCommand({
          Filters: [{ Name: "isDefault", Values: ["true"] }],
        }),
        "DescribeVpcs",
      );
      const vpc = out.Vpcs?.[0]?.VpcId;
      return `region ${c.region}, ${
        vpc ? `default VPC ${vpc}` : "no default VPC"
      }`;
    },
    async provision(cluster: AwsCluster, count: number): Promise<Instance[]> {
      const c = clusterOf(cluster);
      return await launch(await clientsFor(c.region), c, resolved, count);
    },
    async getInstance(
      cluster: AwsCluster,
      id: string,
    ): Promise<Instance | undefined> {
      const c = clusterOf(cluster);
      return await describe(await clientsFor(c.region), c, resolved, id);
    },
    async terminate(cluster: AwsCluster, ids: string[]): Promise<void> {
      const c = clusterOf(cluster);
      if (ids.length === 0) return;
      await terminateInstances(await clientsFor(c.region), ids);
    },
    async teardown(cluster: AwsCluster): Promise<void> {
      const c = clusterOf(cluster);
      await sweep(await clientsFor(c.region), { cluster: c.id });
    },
    async cleanup(cleanup: AwsCleanupOptions = {}): Promise<AwsCleanupReport> {
      return await sweep(await clientsFor(cleanup.region), cleanup);
    },
  };
};
