/**
 * The AWS provider's options, its SDK clients (imported lazily, so that a
 * worker importing the library never loads the SDK) and the translation of
 * AWS errors into the library's: unauthorised → `ConfigError` naming the
 * denied action, missing credentials → `ConfigError` naming what to set.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { ConfigError, ProvisioningError } from "../../src/errors.ts";

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
  sshUser: z.union([
    z.string().min(1),
    z.custom<(i: AwsInstanceDetails) => string>(
      (f) => typeof f === "function",
      "must be a function",
    ),
  ]).optional(),
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
  const parsed = schema.safeParse(options ?? {});
  if (!parsed.success) {
    throw new ConfigError(
      `Invalid sky.AWS options: ${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data as ResolvedAwsOptions;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The region asked for, from the pool, the options or the environment; `undefined` leaves it to the profile. */
export function regionFrom(
  options: AwsOptions,
  poolRegion?: string,
): string | undefined {
  return poolRegion ?? options.region ?? env("AWS_REGION") ??
    env("AWS_DEFAULT_REGION");
}

type Ec2Module = typeof import("npm:@aws-sdk/client-ec2@3.1169.0");
type SsmModule = typeof import("npm:@aws-sdk/client-ssm@3.1169.0");

/** The SDK clients of one region. */
export interface AwsClients {
  /** The region they talk to. */
  region: string;
  /** The EC2 client. */
  ec2: InstanceType<Ec2Module["EC2Client"]>;
  /** The EC2 module, for its commands. */
  sdk: Ec2Module;
  /** Sends one EC2 command, translating its errors (see {@linkcode awsError}). */
  send<O>(command: { input: unknown }, action: string): Promise<O>;
  /** Reads an SSM parameter. */
  parameter(name: string): Promise<string>;
}

/**
 * Makes the SDK clients of a region, importing the SDK on first use.
 *
 * @param options The provider's options.
 * @param poolRegion The pool's region option, when set.
 * @returns The clients.
 * @throws {ConfigError} When no region is configured anywhere.
 */
export async function awsClients(
  options: ResolvedAwsOptions,
  poolRegion?: string,
): Promise<AwsClients> {
  const sdk = await import("npm:@aws-sdk/client-ec2@3.1169.0");
  const wanted = regionFrom(options, poolRegion);
  const common = {
    ...(wanted ? { region: wanted } : {}),
    ...(options.profile ? { profile: options.profile } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    maxAttempts: 3,
  };
  const ec2 = new sdk.EC2Client(common);
  let region: string;
  try {
    region = await ec2.config.region();
  } catch (error) {
    throw new ConfigError(
      `No AWS region is configured: pass sky.AWS({ region: "us-east-1" }) (or the pool's 'region'), ` +
        `or set AWS_DEFAULT_REGION, or a region in your profile (~/.aws/config)`,
      { cause: error },
    );
  }
  let ssm:
    | Promise<
      { client: { send(c: unknown): Promise<unknown> }; module: SsmModule }
    >
    | undefined;
  return {
    region,
    ec2,
    sdk,
    async send<O>(command: { input: unknown }, action: string): Promise<O> {
      try {
        // deno-lint-ignore no-explicit-any
        return await ec2.send(command as any) as O;
      } catch (error) {
        throw awsError(error, `ec2:${action}`, region);
      }
    },
    async parameter(name: string): Promise<string> {
      ssm ??= import("npm:@aws-sdk/client-ssm@3.1169.0").then((module) => ({
        module,
        client: new module.SSMClient({ ...common, region }),
      }));
      const { client, module } = await ssm;
      try {
        const out = await client.send(
          new module.GetParameterCommand({ Name: name }),
        ) as {
          Parameter?: { Value?: string };
        };
        const value = out.Parameter?.Value;
        if (!value) {
          throw new ProvisioningError(`SSM parameter ${name} has no value`);
        }
        return value;
      } catch (error) {
        if ((error as Error).name === "ParameterNotFound") {
          throw new ConfigError(
            `The AMI parameter ${name} does not exist in ${region}: pass sky.AWS({ ami: "ami-…" })`,
            { cause: error },
          );
        }
        throw awsError(
          error,
          "ssm:GetParameter",
          region,
          `or pass sky.AWS({ ami: "ami-…" }) to skip the look-up`,
        );
      }
    },
  };
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
