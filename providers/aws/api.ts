/**
 * The AWS SDK clients of one region. This module and those that use it
 * (`infra.ts`, `instances.ts`, `offers.ts`, `provider.ts`) are loaded by
 * `mod.ts` on the provider's first use, never by a program that does not use
 * AWS nor by a worker (see `src/_lazy.ts`).
 *
 * @module
 */
import * as ec2Sdk from "npm:@aws-sdk/client-ec2@3.1169.0";
import { ConfigError, ProvisioningError } from "../../src/errors.ts";
import { awsError, regionFrom, type ResolvedAwsOptions } from "./config.ts";

type Ec2Module = typeof ec2Sdk;
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
 * Makes the SDK clients of a region (SSM's on its first use).
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
  const sdk = ec2Sdk;
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
