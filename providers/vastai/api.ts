/**
 * The Vast.ai provider's REST clients and the zod schemas of the responses
 * it reads.
 *
 * Follows Vast.ai's REST API reference (`https://console.vast.ai/api/v0`)
 * and its official CLI and SDK (vast-ai/vast-cli: `vast.py` and
 * `vastai/api/instances.py`, `vastai/api/client.py`): Bearer authentication,
 * `POST /bundles/` offer search, `PUT /asks/{id}/`, the instance listing
 * `GET /api/v1/instances/` paged with `next_token` (the v0 `GET /instances/`
 * list is deprecated), `GET|DELETE /instances/{id}/`, `GET|POST /ssh/`,
 * `DELETE /ssh/{id}/` and `GET /users/current/`. Each request in `mod.ts`
 * names the file and function it follows.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { HttpClient } from "../_http.ts";
import {
  CREDENTIALS_HELP,
  type ResolvedVastAIOptions,
  vastApiKey,
} from "./config.ts";

/**
 * The REST client of one provider: the key is looked up at the first call.
 *
 * @param options The resolved options.
 * @returns The client.
 */
export function vastClient(options: ResolvedVastAIOptions): HttpClient {
  return vastClients(options).v0;
}

/** The clients of the two API versions a provider uses. */
export interface VastClients {
  /** `https://console.vast.ai/api/v0`: offers, creates, one instance, keys. */
  v0: HttpClient;
  /** `https://console.vast.ai/api/v1`: the paged instance listing. */
  v1: HttpClient;
}

/**
 * The REST clients of one provider, for `/api/v0` and `/api/v1` (vast-cli
 * `vastai/api/client.py` `_build_url` prefixes `/api/v0` unless a path
 * names its own version); the key is looked up once, at the first call.
 *
 * @param options The resolved options.
 * @returns The two clients.
 */
export function vastClients(options: ResolvedVastAIOptions): VastClients {
  let key: Promise<string> | undefined;
  const make = (baseUrl: string) =>
    new HttpClient({
      provider: "Vast.ai",
      baseUrl,
      headers: async () => {
        key ??= vastApiKey(options);
        key.catch(() => key = undefined);
        return { authorization: `Bearer ${await key}` };
      },
      credentialsHint: `Check the API key: ${CREDENTIALS_HELP}`,
    });
  return {
    v0: make(options.baseUrl),
    v1: make(options.baseUrl.replace(/\/api\/v0\/?$/, "/api/v1")),
  };
}

/**
 * Strips the whitespace around every string of an API answer, as the CLI
 * does with every instance row (vast-cli `vast.py` `strip_strings`,
 * `vastai/api/instances.py` `_strip_strings`): Vast.ai's address fields
 * can come with a trailing newline.
 *
 * @param value A parsed JSON value.
 * @returns The value with its strings trimmed.
 */
export function stripStrings<T>(value: T): T {
  if (typeof value === "string") return value.trim() as T;
  if (Array.isArray(value)) return value.map(stripStrings) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, stripStrings(v)]),
    ) as T;
  }
  return value;
}

const num = z.number();
const maybe = <T extends z.ZodType>(t: T) => t.nullish();

/** One offer of `POST /bundles/`: a machine's GPUs, for rent. */
export const vastOfferSchema = z.object({
  id: num,
  ask_contract_id: maybe(num),
  machine_id: maybe(num),
  gpu_name: z.string(),
  num_gpus: num,
  gpu_ram: maybe(num),
  cpu_cores_effective: maybe(num),
  cpu_ram: maybe(num),
  cpu_arch: maybe(z.string()),
  disk_space: maybe(num),
  dph_total: num,
  min_bid: maybe(num),
  reliability2: maybe(num),
  reliability: maybe(num),
  verified: maybe(z.boolean()),
  cuda_max_good: maybe(num),
  geolocation: maybe(z.string()),
});

/** An offer as the search returns it. */
export type VastApiOffer = z.infer<typeof vastOfferSchema>;

/** The answer of `POST /bundles/`. */
export const searchSchema = z.object({ offers: z.array(vastOfferSchema) });

/**
 * The answer of `PUT /asks/{id}/`: `{ success, new_contract }` (vast-cli
 * `vast.py` `create__instance`'s example); `success: false` comes with `msg`.
 */
export const createSchema = z.object({
  success: z.boolean().nullish(),
  new_contract: num.nullish(),
  msg: z.string().nullish(),
  error: z.string().nullish(),
});

const portMapSchema = z.record(
  z.string(),
  z.array(z.object({ HostIp: z.string().optional(), HostPort: z.string() }))
    .nullable(),
);

/** One instance of `GET /instances/` or `GET /instances/{id}/`. */
export const vastInstanceSchema = z.object({
  id: num,
  label: maybe(z.string()),
  actual_status: maybe(z.string()),
  intended_status: maybe(z.string()),
  cur_state: maybe(z.string()),
  status_msg: maybe(z.string()),
  ssh_host: maybe(z.string()),
  ssh_port: maybe(num),
  public_ipaddr: maybe(z.string()),
  ports: maybe(z.union([portMapSchema, z.array(z.unknown())])),
  is_bid: maybe(z.boolean()),
  machine_id: maybe(num),
  start_date: maybe(num),
  image_runtype: maybe(z.string()),
  // `[[name, value], ...]`: the env the instance was created with (vast-cli
  // `vast.py` `show__instances` turns it into a dict).
  extra_env: maybe(z.array(z.array(z.unknown()))),
});

/** An instance as the API reports it. */
export type VastApiInstance = z.infer<typeof vastInstanceSchema>;

/**
 * One page of `GET /api/v1/instances/` (vast-cli `vastai/api/instances.py`
 * `show_instances_v1`): `instances` may be `null` (read as none, as the CLI's
 * `data.get("instances") or []` does), and `next_token`, when set, is the
 * `after_token` of the next page.
 */
export const instancesPageSchema = z.object({
  instances: z.array(vastInstanceSchema).nullish(),
  next_token: z.string().nullish(),
  total_instances: maybe(num),
});

/** The answer of `GET /instances/{id}/` (`null` once the instance is gone). */
export const instanceSchema = z.object({
  instances: vastInstanceSchema.nullish(),
}).nullable();

/**
 * The answer of `DELETE /instances/{id}/`: vast-cli `vast.py`
 * `destroy_instance` reads `success`, and prints `msg` when it is false.
 */
export const destroySchema = z.object({
  success: z.boolean().nullish(),
  msg: z.string().nullish(),
  error: z.string().nullish(),
}).loose().nullable();

/** An SSH key of the account, as `GET /ssh/` lists it. */
export const sshKeySchema = z.object({
  id: num,
  key: maybe(z.string()),
  public_key: maybe(z.string()),
});

/** An SSH key of the account, as {@linkcode sshKeySchema} reads it. */
export type VastApiSshKey = z.infer<typeof sshKeySchema>;

/** The answer of `POST /ssh/`. */
export const createKeySchema = z.object({
  success: z.boolean().optional(),
  key: sshKeySchema,
});

/** The answer of `GET /users/current/`. */
export const userSchema = z.object({
  id: num,
  email: maybe(z.string()),
  credit: maybe(num),
  balance: maybe(num),
});

/** Any answer whose body is not read. */
export const anySchema: z.ZodType<unknown> = z.unknown();
