/**
 * The SSH provider: machines you already have, reached over SSH. The pool
 * bootstraps them like cloud machines and leaves nothing behind when it
 * closes but a cache directory.
 *
 * @module
 */
import { envVar } from "../_env.ts";
import { forgetOnRelease } from "../_lent.ts";
import { z } from "npm:zod@4.6.7";
import { parseOptions } from "../../src/_options.ts";
import { ConfigError, ProvisioningError } from "../../src/errors.ts";
import type {
  ClusterSpec,
  Instance,
  Offer,
  Provider,
} from "../../src/provider.ts";
import { pathExistsSync } from "../../src/_fs.ts";
import { sshTransport } from "../../src/transport/host.ts";

/** Options of {@linkcode SSH}. */
export interface SshOptions {
  /** The machines: `"host"`, `"host:port"`, `"user@host"` or `"user@host:port"`. */
  hosts: string[];
  /**
   * Path of the private key to log in with.
   * @default `~/.ssh/id_ed25519`, else `~/.ssh/id_rsa`
   */
  key?: string;
  /**
   * The user to log in as, where a host does not name one.
   * @default the `USER` environment variable
   */
  user?: string;
  /**
   * A `known_hosts` file whose keys the hosts must match. Hosts it does not
   * list are pinned at first contact for the pool's life.
   * @default `~/.ssh/known_hosts`, when present
   */
  knownHosts?: string;
  /**
   * What each host costs, in dollars per hour while the pool holds it, for
   * the pool's spend, its `Cost` events and its `budget`. Your own machines
   * cost nothing unless given a price.
   * @default no price
   */
  pricePerHour?: number;
}

/** One machine of an SSH provider. */
export interface SshTarget {
  /** The host name or address. */
  host: string;
  /** The SSH port. */
  port: number;
  /** The login user. */
  user: string;
}

/** A prepared SSH cluster: the hosts, and which are in use. */
export interface SshCluster {
  /** The pool's id. */
  id: string;
  /** Every host, in the order given. */
  targets: SshTarget[];
  /** The private key's text. */
  privateKey: string;
  /** The known_hosts file to check keys against, when present. */
  knownHostsPath?: string;
  /** The hosts in use, by instance id. */
  used: Map<string, number>;
}

/** The SSH provider's type. */
export type SshProvider = Provider<SshCluster> & {
  readonly targets: SshTarget[];
};

const schema = z.object({
  hosts: z.array(z.string().min(1)).min(1, "must name at least one host"),
  key: z.string().min(1).optional(),
  user: z.string().min(1).optional(),
  knownHosts: z.string().min(1).optional(),
  pricePerHour: z.number().nonnegative().optional(),
}).strict();

/**
 * Parses `user@host:port` (every part but the host optional; IPv6 hosts in
 * brackets).
 */
export function parseTarget(text: string, defaultUser: string): SshTarget {
  const match = /^(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s]+)(?::(\d+))?$/.exec(text);
  if (!match) {
    throw new ConfigError(
      `Invalid SSH host '${text}': write it as host, host:port, user@host or user@host:port`,
    );
  }
  const port = match[3] === undefined ? 22 : Number(match[3]);
  if (port < 1 || port > 65535) {
    throw new ConfigError(
      `Invalid SSH host '${text}': port ${port} is out of range`,
    );
  }
  return {
    user: match[1] ?? defaultUser,
    host: match[2].replace(/^\[|\]$/g, ""),
    port,
  };
}

function instanceOf(cluster: SshCluster, id: string, index: number): Instance {
  const target = cluster.targets[index];
  return {
    id,
    status: "running",
    privateAddress: target.host,
    endpoint: {
      kind: "ssh",
      host: target.host,
      port: target.port,
      user: target.user,
      privateKey: cluster.privateKey,
      knownHostsPath: cluster.knownHostsPath,
    },
  };
}

/**
 * Uses machines you already have, reached over SSH, as the pool's nodes.
 * Each needs a POSIX shell; the pool installs Deno there (or uploads the
 * client's binary when the host cannot download it) under
 * `~/.cache/skyward`.
 *
 * @param options The hosts, the key and the user.
 * @returns The provider, for `ComputePool.start({ provider })`.
 * @throws {ConfigError} When a host is malformed, or no key can be found.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const provider = sky.SSH({ hosts: ["deploy@10.0.0.5", "deploy@10.0.0.6:2222"], key: "id_ed25519" });
 * console.log(provider.targets.map((t) => `${t.user}@${t.host}:${t.port}`));
 * ```
 */
export function SSH(options: SshOptions): SshProvider {
  const valid = parseOptions(schema, options, "Invalid sky.SSH options");
  const user = valid.user ?? envVar("USER") ?? envVar("LOGNAME");
  const targets = valid.hosts.map((h) => {
    if (!h.includes("@") && !user) {
      throw new ConfigError(
        `Cannot log in to '${h}': name the user (user@host, or the 'user' option, or set USER)`,
      );
    }
    return parseTarget(h, user ?? "");
  });
  const home = envVar("HOME");
  return {
    name: "ssh",
    targets,
    nodeLimit: {
      max: targets.length,
      reason:
        `sky.SSH() runs one node per host and was given ${targets.length}`,
    },
    offers(spec: ClusterSpec): Promise<Offer[]> {
      if (spec.accelerator) {
        return Promise.reject(
          new ConfigError(
            `sky.SSH() cannot provide accelerators (the pool asked for ${spec.accelerator.count}x ` +
              `${spec.accelerator.name}): it uses the hosts it is given as they are. ` +
              `Leave 'accelerator' out (tasks still see the hosts' GPUs), or use a cloud provider such as sky.AWS()`,
          ),
        );
      }
      // The pool ranks offers while it builds the code: the SSH client
      // (npm:ssh2, loaded on first use) loads meanwhile, not when the
      // first host is dialled. A failure to load surfaces there.
      sshTransport().catch(() => {});
      return Promise.resolve([{
        provider: "ssh",
        instanceType: "host",
        region: "ssh",
        ...valid.pricePerHour !== undefined &&
          { onDemandPrice: valid.pricePerHour },
      }]);
    },
    async prepare(spec: ClusterSpec): Promise<SshCluster> {
      const candidates = valid.key
        ? [valid.key]
        : home
        ? [`${home}/.ssh/id_ed25519`, `${home}/.ssh/id_rsa`]
        : [];
      const keyPath = candidates.find(pathExistsSync);
      if (!keyPath) {
        throw new ConfigError(
          valid.key
            ? `Cannot read the SSH key '${valid.key}': no such file`
            : `No SSH key found (looked for ${
              candidates.join(", ") || "~/.ssh/id_ed25519"
            }): ` +
              `pass sky.SSH({ key: "path/to/private_key" })`,
        );
      }
      let privateKey: string;
      try {
        privateKey = await Deno.readTextFile(keyPath);
      } catch (error) {
        throw new ConfigError(
          `Cannot read the SSH key '${keyPath}': ${(error as Error).message}`,
        );
      }
      const knownHosts = valid.knownHosts ??
        (home ? `${home}/.ssh/known_hosts` : undefined);
      return {
        id: spec.clusterId,
        targets,
        privateKey,
        knownHostsPath: knownHosts && pathExistsSync(knownHosts)
          ? knownHosts
          : undefined,
        used: new Map(),
      };
    },
    provision(cluster: SshCluster, count: number): Promise<Instance[]> {
      const free = cluster.targets.map((_, i) => i).filter((i) =>
        ![...cluster.used.values()].includes(i)
      );
      if (free.length < count) {
        return Promise.reject(
          new ProvisioningError(
            `sky.SSH has ${free.length} free host(s) of ${cluster.targets.length}; ` +
              `the pool asked for ${count}`,
          ),
        );
      }
      return Promise.resolve(
        free.slice(0, count).map((i) => {
          const target = cluster.targets[i];
          const id = `${target.user}@${target.host}:${target.port}`;
          cluster.used.set(id, i);
          return instanceOf(cluster, id, i);
        }),
      );
    },
    getInstance(
      cluster: SshCluster,
      id: string,
    ): Promise<Instance | undefined> {
      const i = cluster.used.get(id);
      return Promise.resolve(
        i === undefined ? undefined : instanceOf(cluster, id, i),
      );
    },
    ...forgetOnRelease((cluster: SshCluster) => cluster.used),
  };
}
