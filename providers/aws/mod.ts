/**
 * The AWS provider: EC2 instances as the pool's nodes, on the real EC2 API
 * through the AWS SDK (imported only when the provider is used, never by a
 * worker).
 *
 * - **Offers**: instance types (`DescribeInstanceTypes`) that carry the
 *   accelerator and meet the vCPU, memory and architecture wishes, priced
 *   with spot prices (`DescribeSpotPriceHistory`) and the on-demand price
 *   table, ranked for the allocation and capped by `maxHourlyCost`.
 * - **prepare**: default VPC and subnets, a security group (SSH from this
 *   machine, all traffic within the cluster), a per-pool Ed25519 key pair
 *   made here and imported, the AMI from SSM public parameters.
 * - **provision**: spot, on-demand, spot falling back to on-demand on a
 *   capacity error, or the cheapest; zones tried cheapest first; IMDSv2
 *   required; shutdown terminates; user data that terminates a machine whose
 *   client is gone.
 * - **teardown**: the cluster's instances, then its security group and key
 *   pair, found by the `skyward:cluster` tag; `cleanup()` sweeps every
 *   Skyward cluster's leftovers.
 *
 * @module
 */
import { ConfigError } from "../../src/errors.ts";
import type {
  ClusterSpec,
  Instance,
  Offer,
  Provider,
} from "../../src/provider.ts";
import {
  type AwsClients,
  awsClients,
  type AwsInstanceDetails,
  type AwsOptions,
  resolveAwsOptions,
} from "./config.ts";
import {
  type AwsCluster,
  prepareCluster,
  sweep,
  terminateInstances,
} from "./infra.ts";
import { describe, launch } from "./instances.ts";
import { type AwsOffer, findOffers } from "./offers.ts";
import { offersCache } from "../_offers.ts";

export type { AwsCluster, AwsInstanceDetails, AwsOffer, AwsOptions };

/** Options of {@linkcode AwsProvider.cleanup}. */
export interface AwsCleanupOptions {
  /**
   * The region to sweep.
   * @default the provider's region
   */
  region?: string;
  /**
   * Only this cluster's resources (a pool id, `sky-…`).
   * @default every Skyward cluster's — also those of pools still running
   */
  cluster?: string;
  /**
   * Only resources created at least this long ago, in ms: spares the pools
   * of the last hours, say.
   * @default 0
   */
  olderThan?: number;
  /**
   * Report what would be removed and remove nothing.
   * @default false
   */
  dryRun?: boolean;
}

/** What {@linkcode AwsProvider.cleanup} found and removed. */
export interface AwsCleanupReport {
  /** The region swept. */
  region: string;
  /** The clusters whose resources were found. */
  clusters: string[];
  /** Instances terminated. */
  instances: string[];
  /** Security groups deleted. */
  securityGroups: string[];
  /** Key pairs deleted. */
  keyPairs: string[];
}

/** The AWS provider's type. */
export type AwsProvider = Provider<AwsCluster> & {
  /** The options it was made with. */
  readonly options: AwsOptions;
  /**
   * Removes what Skyward clusters left in a region: terminates instances
   * tagged `skyward:cluster`, then deletes the tagged security groups and key
   * pairs. Also `deno run -A cli.ts cleanup --provider aws`.
   */
  cleanup(options?: AwsCleanupOptions): Promise<AwsCleanupReport>;
};

/** How long offers are reused, in ms. */
const OFFERS_TTL = 10 * 60_000;

/**
 * Runs nodes on EC2 instances. Credentials come from the standard chain
 * (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `~/.aws/credentials`,
 * profiles, SSO, instance roles), the region from the options, the pool,
 * `AWS_DEFAULT_REGION` or the profile.
 *
 * @param options Region, credentials, endpoint and the rest; all optional.
 * @returns The provider, for `ComputePool.start({ provider })`.
 * @throws {ConfigError} When an option is invalid. Missing credentials, a
 *   missing region and denied actions are `ConfigError`s too, when the pool
 *   starts; no capacity is a `NoOffersError`.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const provider = sky.AWS({ region: "us-east-1" });
 * console.log(provider.name); // "aws"
 * // await using pool = await sky.ComputePool.start({
 * //   provider, accelerator: sky.accelerators.T4(), allocation: "spot-if-available",
 * // });
 * ```
 */
export function AWS(options: AwsOptions = {}): AwsProvider {
  const resolved = resolveAwsOptions(options);
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
    name: "aws",
    options,
    // Instances are launched with instance-initiated shutdown = terminate.
    powerOffCommand: "sudo -n shutdown -h now || sudo -n poweroff",
    sweepHint: (cluster) =>
      `deno run -A jsr:@skyward/skyward/cli cleanup --provider aws --cluster ${cluster}`,
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
}
