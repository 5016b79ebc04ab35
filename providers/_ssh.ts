/**
 * How the clouds' machines are reached over SSH: the `sshUser` option (a
 * name, or a function of what the provider knows of the machine), checked
 * once, and the running instance's endpoint.
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import type { Instance } from "../src/provider.ts";

/** The `sshUser` option of a cloud whose machines are described by `D`. */
export type SshUser<D> = string | ((details: D) => string);

/**
 * The zod schema of an `sshUser` option: a non-empty name, or a function.
 *
 * @returns The schema, optional.
 *
 * @example
 * ```ts
 * import { sshUserSchema } from "./_ssh.ts";
 *
 * console.log(sshUserSchema<{ id: string }>().safeParse("").success); // false
 * ```
 */
export function sshUserSchema<D>(): z.ZodType<
  SshUser<D> | undefined
> {
  return z.union([
    z.string().min(1),
    z.custom<(details: D) => string>(
      (f) => typeof f === "function",
      "must be a function",
    ),
  ]).optional();
}

/** Where a running machine listens for SSH, and with which key. */
export interface SshAccess<D> {
  /** The address. */
  host: string;
  /** The port. */
  port: number;
  /** The machine, for an `sshUser` function. */
  details: D;
  /** The `sshUser` option. */
  sshUser: SshUser<D> | undefined;
  /** The user when the option is not set, e.g. `"root"`. */
  defaultUser: string;
  /** The cluster's private key. */
  privateKey: string;
  /** The host's public key, when the provider knows it. */
  hostKey?: string;
}

/**
 * A running instance reached over SSH.
 *
 * @param base The instance as the provider sees it (id, spot, address).
 * @param access Where and as whom to log in.
 * @returns The instance, `"running"`, with its SSH endpoint.
 *
 * @example
 * ```ts
 * import { sshRunning } from "./_ssh.ts";
 *
 * const instance = sshRunning({ id: "i-1" }, {
 *   host: "10.0.0.1",
 *   port: 22,
 *   details: { id: "i-1" },
 *   sshUser: (machine) => machine.id === "i-1" ? "ubuntu" : "root",
 *   defaultUser: "root",
 *   privateKey: "…",
 * });
 * console.log(instance.endpoint?.kind === "ssh" && instance.endpoint.user); // "ubuntu"
 * ```
 */
export function sshRunning<D>(
  base: Omit<Instance, "status">,
  access: SshAccess<D>,
): Instance {
  const user = typeof access.sshUser === "function"
    ? access.sshUser(access.details)
    : access.sshUser ?? access.defaultUser;
  return {
    ...base,
    status: "running",
    endpoint: {
      kind: "ssh",
      host: access.host,
      port: access.port,
      user,
      privateKey: access.privateKey,
      ...(access.hostKey ? { hostKey: access.hostKey } : {}),
    },
  };
}
