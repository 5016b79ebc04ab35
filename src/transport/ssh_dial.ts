/**
 * The SSH transport's entry point for the pool, loaded on first use through
 * {@linkcode SshTransport} (see `_lazy.ts`): everything that needs
 * `npm:ssh2` is reached from here, never from `mod.ts`'s static graph.
 *
 * @module
 */
import type { Endpoint } from "../provider.ts";
import { SshConnection } from "./ssh/connection.ts";
import { SshHost } from "./ssh/host.ts";
import type { Host, SshTransport } from "./host.ts";

/**
 * Opens one SSH connection to a machine, retrying while it boots.
 *
 * @param endpoint Where the machine is and how to log in.
 * @param retries How many times a refused or reset connection is tried again.
 * @returns The machine as a {@linkcode Host}.
 *
 * @example
 * ```ts
 * import { sshTransport } from "./host.ts";
 *
 * const { dialSsh } = await sshTransport(); // loads npm:ssh2 now
 * console.log(typeof dialSsh); // "function"
 * // const host = await dialSsh({ kind: "ssh", host: "10.0.0.5", port: 22,
 * //   user: "sky", privateKey }, 5);
 * // const child = await host.exec(["uname", "-a"]);
 * ```
 */
export const dialSsh: SshTransport["dialSsh"] = async (
  endpoint: Extract<Endpoint, { kind: "ssh" }>,
  retries: number,
): Promise<Host> => {
  const connection = await SshConnection.connect({
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    privateKey: endpoint.privateKey,
    hostKey: endpoint.hostKey,
    knownHostsPath: endpoint.knownHostsPath,
    retries,
  });
  return new SshHost(connection);
};
