/**
 * The AWS provider: EC2 instances as the pool's nodes, on the real EC2 API
 * through the AWS SDK. The SDK is downloaded and loaded when the provider
 * is first used (its first call, not `sky.AWS()`), never by a program that
 * does not use AWS nor by a worker: this module and `config.ts` hold the
 * options and records, `provider.ts` the methods (see `src/_lazy.ts`).
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
import { lazyModule } from "../../src/_lazy.ts";
import { cleanupCommand } from "../_cleanup.ts";
import type {
  ClusterSpec,
  Instance,
  Offer,
  ProviderWithCleanup,
} from "../../src/provider.ts";
import type { ProviderCleanupOptions } from "../../src/provider.ts";
import {
  type AwsCluster,
  type AwsInstanceDetails,
  type AwsOffer,
  type AwsOptions,
  regionFrom,
  resolveAwsOptions,
  type ResolvedAwsOptions,
} from "./config.ts";

export type { AwsCluster, AwsInstanceDetails, AwsOffer, AwsOptions };

/**
 * Options of {@linkcode AwsProvider.cleanup}: the region to sweep (by default the
 * provider's), which cluster (by default every Skyward cluster's, also those
 * of pools still running), how old, and a dry run.
 */
export type AwsCleanupOptions = ProviderCleanupOptions;

/** What {@linkcode AwsProvider.cleanup} found and removed. */
export type AwsCleanupReport = {
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
};

/**
 * The AWS provider's type. Its `cleanup` removes what Skyward clusters left
 * in a region: terminates instances tagged `skyward:cluster`, then deletes
 * the tagged security groups and key pairs. Also
 * `deno run -A cli.ts cleanup --provider aws`.
 */
export type AwsProvider = ProviderWithCleanup<
  AwsCluster,
  AwsOptions,
  AwsCleanupOptions,
  AwsCleanupReport
>;

/** The AWS provider's methods that need the SDK, made by `provider.ts`. */
export type AwsMethods = Omit<
  AwsProvider,
  "name" | "options" | "powerOffCommand" | "sweepHint"
>;

/**
 * What `provider.ts`, loaded on first use, gives `sky.AWS()`: the provider's
 * methods, which use the SDK.
 *
 * @example
 * ```ts
 * import type { AwsImplementation } from "./mod.ts";
 *
 * const { awsMethods }: AwsImplementation = await import("./provider.ts");
 * console.log(typeof awsMethods); // "function"
 * ```
 */
export interface AwsImplementation {
  /**
   * Makes the methods.
   *
   * @param resolved The provider's options, validated.
   * @returns The methods.
   */
  awsMethods(resolved: ResolvedAwsOptions): AwsMethods;
}

const implementation = lazyModule<AwsImplementation>(
  new URL("./provider.ts", import.meta.url),
  "the AWS SDK (npm:@aws-sdk/client-ec2)",
);

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
  let loaded: Promise<AwsMethods> | undefined;
  const real = (): Promise<AwsMethods> => {
    loaded ??= implementation().then((m) => m.awsMethods(resolved));
    return loaded;
  };
  return {
    name: "aws",
    options,
    // Instances are launched with instance-initiated shutdown = terminate.
    powerOffCommand: "sudo -n shutdown -h now || sudo -n poweroff",
    sweepHint: (cluster) => {
      const region = regionFrom(options);
      return cleanupCommand("aws", cluster, region ? `--region ${region}` : "");
    },
    offers: async (spec: ClusterSpec): Promise<Offer[]> =>
      await (await real()).offers(spec),
    prepare: async (spec: ClusterSpec, offer: Offer): Promise<AwsCluster> =>
      await (await real()).prepare(spec, offer),
    checkCredentials: async (): Promise<string> =>
      await (await real()).checkCredentials!(),
    provision: async (
      cluster: AwsCluster,
      count: number,
    ): Promise<Instance[]> => await (await real()).provision(cluster, count),
    getInstance: async (
      cluster: AwsCluster,
      id: string,
    ): Promise<Instance | undefined> =>
      await (await real()).getInstance(cluster, id),
    terminate: async (cluster: AwsCluster, ids: string[]): Promise<void> =>
      await (await real()).terminate(cluster, ids),
    teardown: async (cluster: AwsCluster): Promise<void> =>
      await (await real()).teardown(cluster),
    cleanup: async (cleanup?: AwsCleanupOptions): Promise<AwsCleanupReport> =>
      await (await real()).cleanup(cleanup),
  };
}
