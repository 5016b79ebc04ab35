/**
 * The Verda provider's options, checked once (zod) with their defaults.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { parseOptions } from "../../src/_options.ts";
import { sshUserSchema } from "../_ssh.ts";
import type { VerdaInstance } from "./api.ts";

/** Options of `sky.Verda()`. */
export interface VerdaOptions {
  /**
   * The API client's id.
   * @default `VERDA_CLIENT_ID`
   */
  clientId?: string;
  /**
   * The API client's secret.
   * @default `VERDA_CLIENT_SECRET`
   */
  clientSecret?: string;
  /**
   * The API's base URL: for tests, or DataCrunch's former address.
   * @default "https://api.verda.com/v1"
   */
  baseUrl?: string;
  /**
   * Only this location, e.g. `"FIN-01"`. The pool's `region` option, when
   * set, wins.
   * @default every location with capacity, the first listed first
   */
  location?: string;
  /** Use exactly this instance type, e.g. `"1H100.80S.30V"`, instead of choosing by price. */
  instanceType?: string;
  /**
   * The OS image (`image_type` of `GET /images`), e.g.
   * `"ubuntu-24.04-cuda-12.8-open-docker"`.
   * @default Verda's default image for the instance type
   */
  image?: string;
  /**
   * The login user: a name, or a function of the instance.
   * @default "root" (the user of Verda's images)
   */
  sshUser?: string | ((instance: VerdaInstance) => string);
  /**
   * A machine with no SSH client connected for this long powers itself off
   * (the startup script's watchdog), in ms: the pool's client holds one
   * connection per node, so this stops machines whose client died. Verda
   * keeps an instance that powered off until it is deleted: `cleanup()`
   * deletes it. `0` turns it off.
   * @default 600_000
   */
  ttl?: number;
  /**
   * Hard limit on a machine's life, in ms, after which it powers off.
   * @default no limit
   */
  maxLifetime?: number;
}

const schema = z.object({
  clientId: z.string().min(1).optional(),
  clientSecret: z.string().min(1).optional(),
  baseUrl: z.url().optional(),
  location: z.string().regex(
    /^[A-Z]{3}-\d{2}$/,
    "not a location code such as FIN-01",
  ).optional(),
  instanceType: z.string().regex(
    /^[A-Za-z0-9]+(\.[A-Za-z0-9]+)+$/,
    "not an instance type such as 1H100.80S.30V",
  ).optional(),
  image: z.string().min(1).optional(),
  sshUser: sshUserSchema<VerdaInstance>(),
  ttl: z.number().int().nonnegative().default(600_000),
  maxLifetime: z.number().int().positive().optional(),
}).strict();

/** The options with their defaults filled in. */
export type ResolvedVerdaOptions = z.infer<typeof schema>;

/**
 * Checks the options of `sky.Verda()` and fills in their defaults.
 *
 * @param options The options as given.
 * @returns The resolved options.
 * @throws {ConfigError} Naming the bad option.
 */
export function resolveVerdaOptions(
  options: VerdaOptions,
): ResolvedVerdaOptions {
  return parseOptions(schema, options ?? {}, "Invalid sky.Verda options");
}
