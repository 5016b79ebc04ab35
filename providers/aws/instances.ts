/**
 * Launching, describing and terminating a cluster's instances: spot or
 * on-demand by allocation (spot falls back to on-demand on a capacity
 * error where the allocation allows), availability zones tried cheapest
 * first, IMDSv2 required, shutdown = terminate, user data with a
 * self-destruct, and the SSH host keys read from the console.
 *
 * @module
 */
import { sshRunning } from "../_ssh.ts";
import { ConfigError, NoOffersError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import type { Instance } from "../../src/provider.ts";
import type { AwsClients } from "./api.ts";
import {
  type AwsCluster,
  type AwsInstanceDetails,
  CAPACITY_CODES,
  errorCode,
  type ResolvedAwsOptions,
} from "./config.ts";
import { allocationHint, type Market, marketsFor } from "../_offers.ts";
export { userData } from "../_user_data.ts";

const log = logger("aws");

/** Subnets in the order to try for a market: cheapest spot zone first. */
function subnetsFor(
  cluster: AwsCluster,
  market: Market,
): { id: string; zone: string }[] {
  if (market !== "spot") return [...cluster.subnets];
  const rank = new Map(cluster.offer.spotZones.map(([zone], i) => [zone, i]));
  return [...cluster.subnets].filter((s) => rank.size === 0 || rank.has(s.zone))
    .sort((a, b) => (rank.get(a.zone) ?? 99) - (rank.get(b.zone) ?? 99));
}

interface Ec2Instance {
  InstanceId?: string;
  State?: { Name?: string };
  PublicIpAddress?: string;
  PrivateIpAddress?: string;
  InstanceLifecycle?: string;
  ImageId?: string;
  Tags?: { Key?: string; Value?: string }[];
  StateReason?: { Message?: string };
}

function toInstance(i: Ec2Instance, spot: boolean): Instance {
  return {
    id: i.InstanceId!,
    status: "pending",
    ...(i.PrivateIpAddress ? { privateAddress: i.PrivateIpAddress } : {}),
    spot,
  };
}

/**
 * Launches up to `count` instances of the cluster's offer: each market of
 * the allocation in turn, each subnet (zone) in turn, until enough run.
 *
 * @returns The instances launched (at least one).
 * @throws {NoOffersError} "No instances available …" when no market and
 *   zone had capacity, naming the region and type.
 */
export async function launch(
  clients: AwsClients,
  cluster: AwsCluster,
  options: ResolvedAwsOptions,
  count: number,
): Promise<Instance[]> {
  // Every EC2 type is sold on demand; the bundled price table may lack one.
  const markets = marketsFor(
    cluster.offer,
    cluster.allocation,
    cluster.maxHourlyCost,
    { onDemandUnpriced: true },
  );
  const type = cluster.offer.instanceType;
  const launched: Instance[] = [];
  const failures: string[] = [];
  for (const market of markets) {
    for (const subnet of subnetsFor(cluster, market)) {
      if (launched.length >= count) break;
      try {
        const out = await clients.send<{ Instances?: Ec2Instance[] }>(
          new clients.sdk.RunInstancesCommand({
            ImageId: cluster.imageId,
            InstanceType: type as never,
            MinCount: 1,
            MaxCount: count - launched.length,
            KeyName: cluster.keyName,
            ClientToken: crypto.randomUUID(),
            NetworkInterfaces: [{
              DeviceIndex: 0,
              SubnetId: subnet.id,
              Groups: [cluster.securityGroupId],
              AssociatePublicIpAddress: !options.usePrivateIp,
              DeleteOnTermination: true,
            }],
            BlockDeviceMappings: [{
              DeviceName: cluster.rootDevice,
              Ebs: {
                VolumeSize: cluster.diskGb,
                VolumeType: "gp3",
                DeleteOnTermination: true,
              },
            }],
            MetadataOptions: {
              HttpTokens: "required",
              HttpEndpoint: "enabled",
              HttpPutResponseHopLimit: 2,
            },
            InstanceInitiatedShutdownBehavior: "terminate",
            ...(market === "spot"
              ? {
                InstanceMarketOptions: {
                  MarketType: "spot",
                  SpotOptions: {
                    SpotInstanceType: "one-time",
                    InstanceInterruptionBehavior: "terminate",
                    ...(cluster.maxHourlyCost !== undefined
                      ? { MaxPrice: String(cluster.maxHourlyCost) }
                      : {}),
                  },
                },
              }
              : {}),
            ...(options.instanceProfile
              ? {
                IamInstanceProfile: options.instanceProfile.startsWith("arn:")
                  ? { Arn: options.instanceProfile }
                  : { Name: options.instanceProfile },
              }
              : {}),
            UserData: btoa(cluster.userData),
            TagSpecifications: [
              { ResourceType: "instance", Tags: [...cluster.tags] },
              { ResourceType: "volume", Tags: [...cluster.tags] },
            ],
          }),
          "RunInstances",
        );
        const instances = (out.Instances ?? []).map((i) =>
          toInstance(i, market === "spot")
        );
        log.info("Launched {count} {market} {type} in {zone}: {ids}", {
          count: instances.length,
          market,
          type,
          zone: subnet.zone,
          ids: instances.map((i) => i.id).join(", "),
        });
        launched.push(...instances);
      } catch (error) {
        const code = errorCode((error as Error).cause ?? error);
        if (!CAPACITY_CODES.has(code)) throw error;
        failures.push(`${market} in ${subnet.zone}: ${code}`);
        log.info("No {market} capacity for {type} in {zone} ({code})", {
          market,
          type,
          zone: subnet.zone,
          code,
        });
      }
    }
    if (launched.length >= count) break;
  }
  if (launched.length === 0) {
    const quota = failures.some((f) => /LimitExceeded/.test(f));
    throw new NoOffersError(
      `No instances available on AWS in ${clients.region} for ${type} (${
        markets.length
          ? markets.join(", then ")
          : "no market within maxHourlyCost"
      }): ${
        failures.join("; ") || "nothing to try"
      }. Try another region (sky.AWS({ region })), ` +
        `another accelerator or instance type${
          allocationHint(cluster.allocation)
        }` +
        `${
          quota
            ? "; or ask AWS to raise your vCPU quota (Service Quotas, EC2)"
            : ""
        }.`,
    );
  }
  return launched;
}

/** The host keys cloud-init printed to a console, best first. */
export function consoleHostKeys(output: string): string[] {
  const block =
    /-----BEGIN SSH HOST KEY KEYS-----\r?\n([\s\S]*?)-----END SSH HOST KEY KEYS-----/
      .exec(output);
  if (!block) return [];
  const order = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"];
  return block[1].split(/\r?\n/).map((l) => l.trim()).filter((l) =>
    /^[a-z0-9-]+ [A-Za-z0-9+/=]+/.test(l)
  )
    .sort((a, b) => {
      const rank = (l: string) => {
        const i = order.indexOf(l.split(" ")[0]);
        return i === -1 ? order.length : i;
      };
      return rank(a) - rank(b);
    });
}

/**
 * The host key an instance printed to its console, `undefined` when none yet,
 * or `null` when the console cannot be read (`ec2:GetConsoleOutput` denied).
 */
async function hostKeyOf(
  clients: AwsClients,
  id: string,
): Promise<string | undefined | null> {
  const read = async (latest: boolean) => {
    const out = await clients.send<{ Output?: string }>(
      new clients.sdk.GetConsoleOutputCommand({
        InstanceId: id,
        ...(latest ? { Latest: true } : {}),
      }),
      "GetConsoleOutput",
    );
    if (!out.Output) return undefined;
    const text = new TextDecoder().decode(
      Uint8Array.from(atob(out.Output), (c) => c.charCodeAt(0)),
    );
    return consoleHostKeys(text)[0];
  };
  try {
    return await read(true);
  } catch (error) {
    if (error instanceof ConfigError) return null;
    // `Latest` is for Nitro instances only.
    return await read(false).catch((again) =>
      again instanceof ConfigError ? null : undefined
    );
  }
}

/**
 * The instance's state, and once it runs (and its host key is known, or
 * waited for long enough) how to reach it.
 *
 * @returns The instance, or `undefined` when EC2 does not know it.
 */
export async function describe(
  clients: AwsClients,
  cluster: AwsCluster,
  options: ResolvedAwsOptions,
  id: string,
): Promise<Instance | undefined> {
  let found: Ec2Instance | undefined;
  try {
    const out = await clients.send<
      { Reservations?: { Instances?: Ec2Instance[] }[] }
    >(
      new clients.sdk.DescribeInstancesCommand({ InstanceIds: [id] }),
      "DescribeInstances",
    );
    found = out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) =>
      i.InstanceId === id
    );
  } catch (error) {
    if (errorCode((error as Error).cause) === "InvalidInstanceID.NotFound") {
      return undefined;
    }
    throw error;
  }
  if (!found) return undefined;
  const spot = found.InstanceLifecycle === "spot";
  const base = {
    id,
    spot,
    ...(found.PrivateIpAddress
      ? { privateAddress: found.PrivateIpAddress }
      : {}),
  };
  const state = found.State?.Name;
  if (state === "pending") return { ...base, status: "pending" };
  if (state !== "running") return { ...base, status: "terminated" };
  const address = options.usePrivateIp
    ? found.PrivateIpAddress
    : found.PublicIpAddress;
  if (!address) return { ...base, status: "pending" };
  const since = cluster.runningSince.get(id) ?? Date.now();
  cluster.runningSince.set(id, since);
  let hostKey = cluster.hostKeys.get(id);
  if (!hostKey && options.hostKeys === "console") {
    const found = await hostKeyOf(clients, id);
    if (found) {
      hostKey = found;
      cluster.hostKeys.set(id, found);
    } else if (found === null) {
      log.warn(
        "Cannot read the console of {id} (ec2:GetConsoleOutput denied): trusting the first SSH host key it presents",
        { id },
      );
    } else if (Date.now() - since < options.hostKeyWait) {
      return { ...base, status: "pending" };
    } else {
      log.warn(
        "Instance {id} printed no SSH host key to its console within {ms} ms: trusting the first key it presents",
        { id, ms: options.hostKeyWait },
      );
    }
  }
  const details: AwsInstanceDetails = {
    id,
    ...(found.PublicIpAddress ? { publicIp: found.PublicIpAddress } : {}),
    ...(found.PrivateIpAddress ? { privateIp: found.PrivateIpAddress } : {}),
    ...(found.ImageId ? { imageId: found.ImageId } : {}),
    tags: Object.fromEntries(
      (found.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""]),
    ),
  };
  return sshRunning(base, {
    host: address,
    port: 22,
    details,
    sshUser: options.sshUser,
    defaultUser: "ubuntu",
    privateKey: cluster.privateKey,
    ...(hostKey ? { hostKey } : {}),
  });
}
