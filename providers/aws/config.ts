/**
 * The AWS provider's options, the records it shares with `mod.ts` (its
 * offers and clusters), and the translation of AWS errors into the
 * library's: unauthorised → `ConfigError` naming the
 * denied action, missing credentials → `ConfigError` naming what to set.
 *
 * @module
 */
import { envVar } from "../_env.ts";
import { z } from "npm:zod@4.6.7";
import { sshUserSchema } from "../_ssh.ts";
import { parseOptions } from "../../src/_options.ts";
import { ConfigError, ProvisioningError } from "../../src/errors.ts";
import type { ClusterSpec, Offer } from "../../src/provider.ts";

/** What the provider knows of an instance when it picks the SSH user. */
export interface AwsInstanceDetails {
  /** The instance's id, `i-…`. */
  id: string;
  /** Its public IPv4 address, when it has one. */
  publicIp?: string;
  /** Its private IPv4 address. */
  privateIp?: string;
  /** The AMI it runs. */
  imageId?: string;
  /** Its tags. */
  tags: Record<string, string>;
}

/** An EC2 offer, with the spot price of each availability zone. */
export interface AwsOffer extends Offer {
  /** The provider. */
  provider: "aws";
  /** The region. */
  region: string;
  /** Spot price by availability zone, cheapest first. */
  spotZones: [zone: string, price: number][];
  /** Whether the on-demand price is another region's (the table has none for this one). */
  priceEstimated?: boolean;
}

/** A prepared AWS cluster: what its instances are launched with. */
export interface AwsCluster {
  /** The cluster (pool) id, the value of every resource's `skyward:cluster` tag. */
  readonly id: string;
  /** The region. */
  readonly region: string;
  /** The offer chosen. */
  readonly offer: AwsOffer;
  /** How to buy instances. */
  readonly allocation: ClusterSpec["allocation"];
  /** The pool's price cap, USD per hour. */
  readonly maxHourlyCost?: number;
  /** The AMI. */
  readonly imageId: string;
  /** The AMI's root device, e.g. `/dev/sda1`. */
  readonly rootDevice: string;
  /** Root volume size, GiB. */
  readonly diskGb: number;
  /** The VPC. */
  readonly vpcId: string;
  /** Subnets to launch in, with their availability zones. */
  readonly subnets: readonly { id: string; zone: string }[];
  /** The cluster's security group. */
  readonly securityGroupId: string;
  /** The cluster's key pair. */
  readonly keyName: string;
  /** The key pair's private key (not enumerable, so never printed with the record). */
  readonly privateKey: string;
  /** The user data every instance boots with. */
  readonly userData: string;
  /** Tags of every resource. */
  readonly tags: readonly { Key: string; Value: string }[];
  /** SSH host keys read from each instance's console. */
  readonly hostKeys: Map<string, string>;
  /** When each instance was first seen running, epoch ms. */
  readonly runningSince: Map<string, number>;
}

/** Options of {@linkcode AWS}. */
export interface AwsOptions {
  /**
   * The region. The pool's `region` option, when set, wins.
   * @default `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the profile's region
   */
  region?: string;
  /**
   * A named profile of `~/.aws/credentials` and `~/.aws/config`.
   * @default `AWS_PROFILE`, else `default`
   */
  profile?: string;
  /**
   * Explicit credentials. Without them the standard chain is used:
   * environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
   * `AWS_SESSION_TOKEN`), shared files and profiles, SSO, web identity, and
   * the instance role on EC2.
   */
  credentials?: {
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken?: string;
  };
  /**
   * The API endpoint of EC2 (and of SSM, for AMI look-ups): for
   * EC2-compatible clouds and tests.
   * @default AWS's endpoint for the region
   */
  endpoint?: string;
  /** Use exactly this instance type, e.g. `"g5.xlarge"`, instead of choosing by price. */
  instanceType?: string;
  /**
   * The AMI to boot. Without it the AMI comes from SSM public parameters:
   * the Deep Learning AMI with the NVIDIA driver for NVIDIA GPUs, the
   * Neuron DLAMI for Trainium and Inferentia, else Ubuntu 24.04.
   */
  ami?: string;
  /**
   * The login user of the instances: a name, or a function of the instance.
   * @default "ubuntu" (the user of the default AMIs)
   */
  sshUser?: string | ((instance: AwsInstanceDetails) => string);
  /**
   * How the client learns each instance's SSH host key: `"console"` reads the
   * keys cloud-init prints to the instance's console (`GetConsoleOutput`)
   * and pins them, falling back to the first key seen when the console shows
   * none within `hostKeyWait`; `"first-use"` trusts the first key seen.
   * @default "console"
   */
  hostKeys?: "console" | "first-use";
  /**
   * How long to wait for the host keys on the console once an instance runs, in ms.
   * @default 120_000
   */
  hostKeyWait?: number;
  /**
   * Address ranges allowed to reach the instances over SSH.
   * @default this machine's public address (asked of checkip.amazonaws.com), else `0.0.0.0/0`
   */
  allowSshFrom?: string[];
  /**
   * Subnets to launch in (their VPC is used). Without them the default VPC's
   * default subnets are used.
   */
  subnetIds?: string[];
  /**
   * Connect to instances by their private address (when the client runs in
   * the same VPC) rather than their public one.
   * @default false
   */
  usePrivateIp?: boolean;
  /** An IAM instance profile (name or ARN) to attach; needs `iam:PassRole`. */
  instanceProfile?: string;
  /**
   * An instance with no SSH client connected for this long terminates
   * itself, in ms: the pool's client holds one connection per node, so this
   * reaps machines whose client died. `0` turns it off.
   * @default 600_000
   */
  ttl?: number;
  /**
   * Hard limit on an instance's life, in ms, whatever happens.
   * @default no limit
   */
  maxLifetime?: number;
  /** Extra tags for every resource. */
  tags?: Record<string, string>;
}

/** Options after validation. */
export interface ResolvedAwsOptions extends AwsOptions {
  hostKeys: "console" | "first-use";
  hostKeyWait: number;
  ttl: number;
  usePrivateIp: boolean;
  tags: Record<string, string>;
}

const cidr = z.string().regex(
  /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$|^[0-9a-fA-F:]+\/\d{1,3}$/,
  "not a CIDR range such as 203.0.113.7/32",
);

const schema = z.object({
  region: z.string().regex(
    /^[a-z]{2}(-[a-z]+)+-\d+$/,
    "not a region such as us-east-1",
  )
    .optional(),
  profile: z.string().min(1).optional(),
  credentials: z.object({
    accessKeyId: z.string().min(1),
    secretAccessKey: z.string().min(1),
    sessionToken: z.string().min(1).optional(),
  }).strict().optional(),
  endpoint: z.url().optional(),
  instanceType: z.string().regex(
    /^[a-z0-9-]+\.[a-z0-9-]+$/,
    "not an instance type such as g5.xlarge",
  )
    .optional(),
  ami: z.string().regex(
    /^ami-[0-9a-f]+$/,
    "not an AMI id such as ami-0123456789abcdef0",
  )
    .optional(),
  sshUser: sshUserSchema<AwsInstanceDetails>(),
  hostKeys: z.enum(["console", "first-use"]).default("console"),
  hostKeyWait: z.number().int().nonnegative().default(120_000),
  allowSshFrom: z.array(cidr).min(1).optional(),
  subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/, "not a subnet id"))
    .min(1).optional(),
  usePrivateIp: z.boolean().default(false),
  instanceProfile: z.string().min(1).optional(),
  ttl: z.number().int().nonnegative().default(600_000),
  maxLifetime: z.number().int().positive().optional(),
  tags: z.record(z.string().min(1).max(128), z.string().max(256)).default({}),
}).strict();

/**
 * Validates the options of `sky.AWS`.
 *
 * @param options The options.
 * @returns The resolved options.
 * @throws {ConfigError} Naming the bad option.
 */
export function resolveAwsOptions(options: AwsOptions): ResolvedAwsOptions {
  const valid = parseOptions(schema, options ?? {}, "Invalid sky.AWS options");
  return valid as ResolvedAwsOptions;
}

/** The region asked for, from the pool, the options or the environment; `undefined` leaves it to the profile. */
export function regionFrom(
  options: AwsOptions,
  poolRegion?: string,
): string | undefined {
  return poolRegion ?? options.region ?? envVar("AWS_REGION") ??
    envVar("AWS_DEFAULT_REGION");
}

/** Error codes that mean "no capacity for this request here": try elsewhere. */
export const CAPACITY_CODES: ReadonlySet<string> = new Set([
  "InsufficientInstanceCapacity",
  "InsufficientHostCapacity",
  "InsufficientReservedInstanceCapacity",
  "InsufficientCapacityOnHost",
  "InsufficientFreeAddressesInSubnet",
  "SpotMaxPriceTooLow",
  "MaxSpotInstanceCountExceeded",
  "Unsupported",
  "VcpuLimitExceeded",
  "InstanceLimitExceeded",
]);

const DENIED = new Set([
  "UnauthorizedOperation",
  "AccessDenied",
  "AccessDeniedException",
  "UnauthorizedAccess",
  "Blocked",
]);

const REJECTED = new Set([
  "AuthFailure",
  "InvalidClientTokenId",
  "SignatureDoesNotMatch",
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "ExpiredToken",
  "ExpiredTokenException",
  "RequestExpired",
  "IncompleteSignature",
]);

/** The error code of an SDK error (`name`, or `Code` in the raw body). */
export function errorCode(error: unknown): string {
  const e = error as { name?: string; Code?: string; code?: string };
  return e?.Code ?? e?.code ?? e?.name ?? "Error";
}

/** The credentials advice, naming the variables to set. */
export const CREDENTIALS_HELP =
  "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_DEFAULT_REGION), " +
  "or configure a profile with `aws configure` (~/.aws/credentials) and set AWS_PROFILE, " +
  "or pass sky.AWS({ profile }) or sky.AWS({ credentials })";

/**
 * Translates an AWS SDK error into the library's errors.
 *
 * @param error What the SDK threw.
 * @param permission The IAM action of the call, e.g. `ec2:RunInstances`.
 * @param region The region, for messages.
 * @param hint Extra advice for a denied call.
 * @returns A `ConfigError` (credentials missing or rejected, action denied,
 *   account not opted in) or a `ProvisioningError` naming the call.
 */
export function awsError(
  error: unknown,
  permission: string,
  region: string,
  hint?: string,
): Error {
  if (error instanceof ConfigError || error instanceof ProvisioningError) {
    return error;
  }
  const code = errorCode(error);
  const message = (error as Error)?.message ?? String(error);
  if (
    code === "CredentialsProviderError" ||
    /Could not load credentials/i.test(message)
  ) {
    return new ConfigError(`No AWS credentials found: ${CREDENTIALS_HELP}`, {
      cause: error,
    });
  }
  if (DENIED.has(code)) {
    const denied =
      /not authorized to perform:? ([A-Za-z0-9-]+:[A-Za-z0-9*]+)/.exec(message)
        ?.[1] ??
        permission;
    return new ConfigError(
      `AWS denied ${denied} in ${region} (${code}). Permission denied: grant ${denied} to your IAM user or role` +
        ` (the AWS provider needs ec2:* and, with an instance profile, iam:PassRole; ssm:GetParameter to find AMIs)` +
        `${hint ? `, ${hint}` : ""}. AWS said: ${message}`,
      { cause: error },
    );
  }
  if (REJECTED.has(code)) {
    return new ConfigError(
      `AWS rejected the credentials (${code}): ${message}. Check them: ${CREDENTIALS_HELP}`,
      { cause: error },
    );
  }
  if (code === "OptInRequired" || code === "PendingVerification") {
    return new ConfigError(
      `AWS account not ready for ${permission} in ${region} (${code}): ${message}`,
      {
        cause: error,
      },
    );
  }
  return new ProvisioningError(
    `AWS ${permission} failed in ${region}: ${code}: ${message}`,
    {
      cause: error,
    },
  );
}
