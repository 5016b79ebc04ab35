/**
 * What a cluster needs around its instances — the default VPC and subnets,
 * a security group (SSH from the client, all traffic within the group), a
 * per-pool key pair, the AMI — and its removal. Everything is tagged with
 * the cluster id, so that teardown, and the orphan sweep, find it by tag.
 *
 * @module
 */
import { ConfigError, ProvisioningError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import type { ClusterSpec } from "../../src/provider.ts";
import { retry } from "../../src/_retry.ts";
import { pollUntil } from "../_poll.ts";
import type { AwsClients } from "./api.ts";
import {
  type AwsCluster,
  type AwsOffer,
  errorCode,
  type ResolvedAwsOptions,
} from "./config.ts";
import { generateSshKeyPair, withPrivateKey } from "../_keys.ts";
import { sweepFailedPrepare } from "../_cleanup.ts";
import { userData } from "../_user_data.ts";

export type { AwsCluster };

const log = logger("aws");

/** The tag that marks every resource of a cluster; its value is the cluster id. */
export const CLUSTER_TAG = "skyward:cluster";
/** When the cluster was prepared, ISO 8601. */
export const CREATED_TAG = "skyward:created";

/** Tags of a cluster's resources. */
export function clusterTags(
  id: string,
  options: ResolvedAwsOptions,
): { Key: string; Value: string }[] {
  return [
    { Key: CLUSTER_TAG, Value: id },
    { Key: CREATED_TAG, Value: new Date().toISOString() },
    { Key: "Name", Value: `skyward-${id}` },
    ...Object.entries(options.tags).map(([Key, Value]) => ({ Key, Value })),
  ];
}

/** The SSM public parameter of the AMI for an offer. */
export function amiParameter(offer: AwsOffer, spec: ClusterSpec): string {
  const arch = offer.architecture ?? "x86_64";
  const maker = spec.accelerator?.manufacturer ??
    (offer.accelerator && /^(trainium|inferentia)/i.test(offer.accelerator.name)
      ? "AWS"
      : undefined);
  if (
    maker === "NVIDIA" ||
    (!maker && offer.accelerator &&
      !/radeon|gaudi/i.test(offer.accelerator.name))
  ) {
    return `/aws/service/deeplearning/ami/${arch}/base-oss-nvidia-driver-gpu-ubuntu-${
      arch === "arm64" ? "22.04" : "24.04"
    }/latest/ami-id`;
  }
  if (maker === "AWS") {
    return "/aws/service/neuron/dlami/multi-framework/ubuntu-22.04/latest/image_id";
  }
  return `/aws/service/canonical/ubuntu/server/24.04/stable/current/${
    arch === "arm64" ? "arm64" : "amd64"
  }/hvm/ebs-gp3/ami-id`;
}

async function clientAddress(): Promise<string[]> {
  try {
    const response = await fetch("https://checkip.amazonaws.com/", {
      signal: AbortSignal.timeout(5_000),
    });
    const ip = (await response.text()).trim();
    if (/^(\d{1,3}\.){3}\d{1,3}$/.test(ip)) return [`${ip}/32`];
  } catch {
    // Fall through.
  }
  log.warn(
    "Cannot find this machine's public address: the security group allows SSH from anywhere " +
      "(pass sky.AWS({ allowSshFrom }) to narrow it)",
  );
  return ["0.0.0.0/0"];
}

async function network(
  clients: AwsClients,
  options: ResolvedAwsOptions,
): Promise<{ vpcId: string; subnets: { id: string; zone: string }[] }> {
  const { DescribeSubnetsCommand, DescribeVpcsCommand } = clients.sdk;
  type Subnets = {
    Subnets?: {
      SubnetId?: string;
      VpcId?: string;
      AvailabilityZone?: string;
    }[];
  };
  if (options.subnetIds) {
    const out = await clients.send<Subnets>(
      new DescribeSubnetsCommand({ SubnetIds: options.subnetIds }),
      "DescribeSubnets",
    );
    const subnets = out.Subnets ?? [];
    const vpcs = new Set(subnets.map((s) => s.VpcId));
    if (subnets.length === 0 || vpcs.size !== 1) {
      throw new ConfigError(
        `sky.AWS({ subnetIds }) must name subnets of one VPC in ${clients.region}; found ${subnets.length} in ${vpcs.size} VPC(s)`,
      );
    }
    return {
      vpcId: subnets[0].VpcId!,
      subnets: subnets.map((s) => ({
        id: s.SubnetId!,
        zone: s.AvailabilityZone ?? "",
      })),
    };
  }
  const vpcs = await clients.send<{ Vpcs?: { VpcId?: string }[] }>(
    new DescribeVpcsCommand({
      Filters: [{ Name: "isDefault", Values: ["true"] }],
    }),
    "DescribeVpcs",
  );
  const vpcId = vpcs.Vpcs?.[0]?.VpcId;
  if (!vpcId) {
    throw new ConfigError(
      `There is no default VPC in ${clients.region}: create one (aws ec2 create-default-vpc --region ${clients.region}) ` +
        `or pass sky.AWS({ subnetIds: ["subnet-…"] })`,
    );
  }
  const out = await clients.send<Subnets>(
    new DescribeSubnetsCommand({
      Filters: [{ Name: "vpc-id", Values: [vpcId] }, {
        Name: "default-for-az",
        Values: ["true"],
      }],
    }),
    "DescribeSubnets",
  );
  const subnets = (out.Subnets ?? []).map((s) => ({
    id: s.SubnetId!,
    zone: s.AvailabilityZone ?? "",
  }))
    .sort((a, b) => a.zone.localeCompare(b.zone));
  if (subnets.length === 0) {
    throw new ConfigError(
      `The default VPC ${vpcId} of ${clients.region} has no default subnet: pass sky.AWS({ subnetIds })`,
    );
  }
  return { vpcId, subnets };
}

async function image(
  clients: AwsClients,
  imageId: string,
): Promise<{ rootDevice: string; snapshotGb: number }> {
  const out = await clients.send<{
    Images?: {
      RootDeviceName?: string;
      BlockDeviceMappings?: {
        DeviceName?: string;
        Ebs?: { VolumeSize?: number };
      }[];
    }[];
  }>(
    new clients.sdk.DescribeImagesCommand({ ImageIds: [imageId] }),
    "DescribeImages",
  );
  const found = out.Images?.[0];
  if (!found) {
    throw new ConfigError(
      `The AMI ${imageId} does not exist in ${clients.region}`,
    );
  }
  const rootDevice = found.RootDeviceName ?? "/dev/sda1";
  const root = found.BlockDeviceMappings?.find((m) =>
    m.DeviceName === rootDevice
  );
  return { rootDevice, snapshotGb: root?.Ebs?.VolumeSize ?? 8 };
}

/**
 * Prepares a cluster: network, AMI, security group and key pair, all tagged
 * with the cluster id. On failure what it created is removed before the
 * error is rethrown.
 *
 * @returns The cluster's record.
 */
export async function prepareCluster(
  clients: AwsClients,
  options: ResolvedAwsOptions,
  spec: ClusterSpec,
  offer: AwsOffer,
): Promise<AwsCluster> {
  const id = spec.clusterId;
  const tags = clusterTags(id, options);
  const name = `skyward-${id}`;
  const [net, imageId, cidrs] = await Promise.all([
    network(clients, options),
    options.ami ?? clients.parameter(amiParameter(offer, spec)),
    options.allowSshFrom ?? clientAddress(),
  ]);
  const { rootDevice, snapshotGb } = await image(clients, imageId);
  const diskGb = spec.diskGb ??
    Math.max(spec.accelerator ? 100 : 30, snapshotGb);
  if (diskGb < snapshotGb) {
    throw new ConfigError(
      `Cannot start pool: 'diskGb' ${diskGb} is smaller than the root snapshot of ${imageId} (${snapshotGb} GiB)`,
    );
  }
  const {
    AuthorizeSecurityGroupIngressCommand,
    CreateSecurityGroupCommand,
    ImportKeyPairCommand,
  } = clients.sdk;
  try {
    let groupId: string;
    try {
      const created = await clients.send<{ GroupId?: string }>(
        new CreateSecurityGroupCommand({
          GroupName: name,
          Description:
            `Skyward cluster ${id}: SSH from the client, all traffic within the cluster`,
          VpcId: net.vpcId,
          TagSpecifications: [{ ResourceType: "security-group", Tags: tags }],
        }),
        "CreateSecurityGroup",
      );
      groupId = created.GroupId!;
    } catch (error) {
      if (errorCode((error as Error).cause) !== "InvalidGroup.Duplicate") {
        throw error;
      }
      // A repeated prepare: reuse the group.
      const found = await clients.send<
        { SecurityGroups?: { GroupId?: string }[] }
      >(
        new clients.sdk.DescribeSecurityGroupsCommand({
          Filters: [{ Name: "group-name", Values: [name] }, {
            Name: "vpc-id",
            Values: [net.vpcId],
          }],
        }),
        "DescribeSecurityGroups",
      );
      groupId = found.SecurityGroups![0].GroupId!;
    }
    try {
      await clients.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: groupId,
          IpPermissions: [
            {
              IpProtocol: "tcp",
              FromPort: 22,
              ToPort: 22,
              IpRanges: cidrs.map((CidrIp) => ({
                CidrIp,
                Description: "SSH from the Skyward client",
              })),
            },
            {
              IpProtocol: "-1",
              UserIdGroupPairs: [{
                GroupId: groupId,
                Description: "within the cluster",
              }],
            },
          ],
        }),
        "AuthorizeSecurityGroupIngress",
      );
    } catch (error) {
      if (errorCode((error as Error).cause) !== "InvalidPermission.Duplicate") {
        throw error;
      }
    }
    const keys = await generateSshKeyPair(name);
    const importKey = () =>
      clients.send(
        new ImportKeyPairCommand({
          KeyName: name,
          PublicKeyMaterial: new TextEncoder().encode(keys.publicKey),
          TagSpecifications: [{ ResourceType: "key-pair", Tags: tags }],
        }),
        "ImportKeyPair",
      );
    try {
      await importKey();
    } catch (error) {
      if (errorCode((error as Error).cause) !== "InvalidKeyPair.Duplicate") {
        throw error;
      }
      // A repeated prepare: the old private key is gone, so replace the pair.
      await clients.send(
        new clients.sdk.DeleteKeyPairCommand({ KeyName: name }),
        "DeleteKeyPair",
      );
      await importKey();
    }
    return withPrivateKey<AwsCluster>({
      id,
      region: clients.region,
      offer,
      allocation: spec.allocation,
      ...(spec.maxHourlyCost !== undefined
        ? { maxHourlyCost: spec.maxHourlyCost }
        : {}),
      imageId,
      rootDevice,
      diskGb,
      vpcId: net.vpcId,
      subnets: net.subnets,
      securityGroupId: groupId,
      keyName: name,
      userData: userData(options),
      tags,
      hostKeys: new Map(),
      runningSince: new Map(),
    }, keys.privateKey);
  } catch (error) {
    await sweepFailedPrepare(id, () => sweep(clients, { cluster: id }), log);
    throw error;
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
  /** How long to wait for instances to terminate before deleting groups, in ms. @default 600_000 */
  timeout?: number;
}

/** What a sweep found (and removed, unless it was a dry run). */
export interface SweepReport {
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

type Tagged = { Tags?: { Key?: string; Value?: string }[] };

function tagOf(resource: Tagged, key: string): string | undefined {
  return resource.Tags?.find((t) => t.Key === key)?.Value;
}

/**
 * Terminates the tagged instances of a cluster (or of every cluster), waits
 * until they are gone, then deletes the tagged security groups and key
 * pairs. Used by teardown (one cluster) and by the orphan sweep (all).
 *
 * @returns What was found and removed.
 * @throws {ProvisioningError} When something could not be removed, naming
 *   what is left and the command that sweeps it.
 */
export async function sweep(
  clients: AwsClients,
  options: SweepOptions = {},
): Promise<SweepReport> {
  const sdk = clients.sdk;
  const tagFilter = options.cluster
    ? { Name: `tag:${CLUSTER_TAG}`, Values: [options.cluster] }
    : { Name: "tag-key", Values: [CLUSTER_TAG] };
  const cutoff = Date.now() - (options.olderThan ?? 0);
  const old = (resource: Tagged) => {
    if (!options.olderThan) return true;
    const created = Date.parse(tagOf(resource, CREATED_TAG) ?? "");
    return Number.isFinite(created) && created <= cutoff;
  };
  const report: SweepReport = {
    region: clients.region,
    clusters: [],
    instances: [],
    securityGroups: [],
    keyPairs: [],
  };
  const clusters = new Set<string>();
  const problems: string[] = [];

  // Instances first: groups cannot go while instances use them.
  const instances: string[] = [];
  const ending: string[] = [];
  let token: string | undefined;
  do {
    const out = await clients.send<{
      Reservations?: {
        Instances?:
          ({ InstanceId?: string; State?: { Name?: string } } & Tagged)[];
      }[];
      NextToken?: string;
    }>(
      new sdk.DescribeInstancesCommand({
        Filters: [tagFilter, {
          Name: "instance-state-name",
          Values: [
            "pending",
            "running",
            "stopping",
            "stopped",
            "shutting-down",
          ],
        }],
        NextToken: token,
      }),
      "DescribeInstances",
    );
    for (
      const instance of (out.Reservations ?? []).flatMap((r) =>
        r.Instances ?? []
      )
    ) {
      if (!instance.InstanceId || !old(instance)) continue;
      clusters.add(tagOf(instance, CLUSTER_TAG) ?? "?");
      if (instance.State?.Name === "shutting-down") {
        ending.push(instance.InstanceId);
      } else instances.push(instance.InstanceId);
    }
    token = out.NextToken || undefined;
  } while (token);
  report.instances = instances;
  if (!options.dryRun && instances.length > 0) {
    try {
      await terminateInstances(clients, instances);
    } catch (error) {
      problems.push(
        `instances ${instances.join(", ")}: ${(error as Error).message}`,
      );
    }
  }

  /** The old enough resources of a listing, their clusters noted. */
  const ours = <R extends Tagged>(listed: R[] | undefined): R[] =>
    (listed ?? []).filter(old).map((resource) => {
      clusters.add(tagOf(resource, CLUSTER_TAG) ?? "?");
      return resource;
    });
  const groups = await clients.send<
    { SecurityGroups?: ({ GroupId?: string } & Tagged)[] }
  >(
    new sdk.DescribeSecurityGroupsCommand({ Filters: [tagFilter] }),
    "DescribeSecurityGroups",
  );
  const groupIds = ours(groups.SecurityGroups).map((g) => g.GroupId!);
  const { KeyPairs } = await clients.send<
    { KeyPairs?: ({ KeyName?: string } & Tagged)[] }
  >(
    new sdk.DescribeKeyPairsCommand({ Filters: [tagFilter] }),
    "DescribeKeyPairs",
  );
  const keyNames = ours(KeyPairs).map((k) => k.KeyName!);
  report.securityGroups = groupIds;
  report.keyPairs = keyNames;
  report.clusters = [...clusters].sort();
  if (options.dryRun) return report;

  if (groupIds.length > 0 && instances.length + ending.length > 0) {
    try {
      await waitTerminated(
        clients,
        [...instances, ...ending],
        options.timeout ?? 600_000,
      );
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  for (const groupId of groupIds) {
    try {
      await deleteGroup(clients, groupId, options.timeout ?? 600_000);
    } catch (error) {
      problems.push(`security group ${groupId}: ${(error as Error).message}`);
    }
  }
  for (const keyName of keyNames) {
    try {
      await clients.send(
        new sdk.DeleteKeyPairCommand({ KeyName: keyName }),
        "DeleteKeyPair",
      );
    } catch (error) {
      problems.push(`key pair ${keyName}: ${(error as Error).message}`);
    }
  }
  if (problems.length > 0) {
    const scope = options.cluster ? ` --cluster ${options.cluster}` : "";
    throw new ProvisioningError(
      `AWS resources of ${
        options.cluster ? `cluster ${options.cluster}` : "Skyward clusters"
      } in ${clients.region} ` +
        `may be left: ${problems.join("; ")}. Remove them with: ` +
        `deno run -A jsr:@skyward/skyward/cli cleanup --provider aws --region ${clients.region}${scope}`,
    );
  }
  return report;
}

/** Terminates instances; ids that no longer exist are skipped. */
export async function terminateInstances(
  clients: AwsClients,
  ids: string[],
): Promise<void> {
  let left = [...ids];
  while (left.length > 0) {
    try {
      await clients.send(
        new clients.sdk.TerminateInstancesCommand({ InstanceIds: left }),
        "TerminateInstances",
      );
      return;
    } catch (error) {
      if (errorCode((error as Error).cause) !== "InvalidInstanceID.NotFound") {
        throw error;
      }
      const gone = new Set(
        (((error as Error).cause as Error)?.message ?? "").match(
          /i-[0-9a-f]+/g,
        ) ?? [],
      );
      const next = left.filter((id) => !gone.has(id));
      if (next.length === left.length) return;
      left = next;
    }
  }
}

async function waitTerminated(
  clients: AwsClients,
  ids: string[],
  timeout: number,
): Promise<void> {
  let running: string[] = [];
  const done = await pollUntil(async () => {
    try {
      const out = await clients.send<{
        Reservations?: {
          Instances?: { InstanceId?: string; State?: { Name?: string } }[];
        }[];
      }>(
        new clients.sdk.DescribeInstancesCommand({ InstanceIds: ids }),
        "DescribeInstances",
      );
      running = (out.Reservations ?? []).flatMap((r) => r.Instances ?? [])
        .filter((s) => s.State?.Name !== "terminated")
        .map((s) => s.InstanceId!);
    } catch (error) {
      if (
        errorCode((error as Error).cause) !== "InvalidInstanceID.NotFound"
      ) {
        throw error;
      }
      running = [];
    }
    return running.length === 0 ? true : undefined;
  }, { timeout });
  if (!done) {
    throw new ProvisioningError(
      `instances ${running.join(", ")} did not terminate within ${timeout} ms`,
    );
  }
}

async function deleteGroup(
  clients: AwsClients,
  groupId: string,
  timeout: number,
): Promise<void> {
  const deadline = AbortSignal.timeout(timeout);
  await retry(async () => {
    try {
      await clients.send(
        new clients.sdk.DeleteSecurityGroupCommand({ GroupId: groupId }),
        "DeleteSecurityGroup",
      );
    } catch (error) {
      if (errorCode((error as Error).cause) === "InvalidGroup.NotFound") return;
      throw error;
    }
  }, {
    maxAttempts: Infinity,
    jitter: 0,
    minDelay: 500,
    maxDelay: 10_000,
    // Network interfaces of terminated instances linger for a while.
    isRetriable: (error) =>
      errorCode((error as Error).cause) === "DependencyViolation" &&
      !deadline.aborted,
  });
}
