/**
 * Verda's REST API (formerly DataCrunch, `https://api.verda.com/v1`): OAuth2
 * client credentials with token refresh, the shapes of its answers as zod
 * schemas, and its errors in the library's terms.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { ConfigError } from "../../src/errors.ts";
import { HttpClient, HttpError, type HttpRequest } from "../_http.ts";

/** Verda's public API. */
export const VERDA_API = "https://api.verda.com/v1";

/** What to set when credentials are missing, as the getting-started guide says. */
export const CREDENTIALS_HELP =
  "set VERDA_CLIENT_ID and VERDA_CLIENT_SECRET (an API client made in the Verda console, " +
  "https://console.verda.com/dashboard/api), or pass sky.Verda({ clientId, clientSecret })";

/**
 * Verda's prices come as numbers or as decimal strings (the Go SDK's
 * `FlexibleFloat`, `pkg/verda/types.go`), and may be `null`: the Go SDK
 * accepts `null` for every price field (`pkg/verda/instance_types.go`).
 * `null`, a missing field and an empty string are "no price".
 */
const Price = z.union([z.number(), z.string(), z.null()]).optional()
  .transform((v) =>
    v === null || v === undefined || v === "" ? undefined : Number(v)
  ).pipe(z.number().nonnegative().optional());

/** A list that Verda may answer as `null` when empty (Go's nil slices). */
export function list<T extends z.ZodType>(item: T) {
  return z.array(item).nullish().transform((v) => v ?? []);
}

/** A `{ size_in_gigabytes }` record that may be `null`. */
const Size = z.object({ size_in_gigabytes: z.number().nullish() }).nullish();

const Token = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().optional(),
  expires_in: z.number(),
  token_type: z.string().optional(),
  scope: z.string().optional(),
});

/**
 * An instance type of `GET /instance-types?currency=usd`: the fields of
 * `InstanceTypeInfo` (Go SDK `pkg/verda/instance_types.go`) and
 * `InstanceType` (Python SDK `verda/instance_types/_instance_types.py`) the
 * provider reads. The Go SDK accepts `null` in any of them.
 */
export const InstanceTypeSchema = z.object({
  instance_type: z.string(),
  price_per_hour: Price,
  spot_price: Price,
  cpu: z.object({ number_of_cores: z.number().nullish() }).nullish(),
  gpu: z.object({
    number_of_gpus: z.number().nullish(),
    description: z.string().nullish(),
  }).nullish(),
  memory: Size,
  gpu_memory: Size,
  model: z.string().nullish(),
  currency: z.string().nullish(),
}).transform((t) => ({
  instance_type: t.instance_type,
  price_per_hour: t.price_per_hour,
  spot_price: t.spot_price,
  cores: t.cpu?.number_of_cores ?? 0,
  gpus: t.gpu?.number_of_gpus ?? 0,
  memoryGb: t.memory?.size_in_gigabytes ?? 0,
  gpuMemoryGb: t.gpu_memory?.size_in_gigabytes ?? 0,
  model: t.model ?? undefined,
  currency: t.currency ?? undefined,
}));
/** An instance type, as the provider reads it. */
export type VerdaInstanceType = z.infer<typeof InstanceTypeSchema>;

/**
 * `GET /instance-availability`: the types that can be deployed now, by
 * location (`LocationAvailability`, Go SDK
 * `pkg/verda/instance_availability.go`; `null` lists accepted as Go does).
 */
export const AvailabilitySchema = list(z.object({
  location_code: z.string(),
  availabilities: list(z.string()),
}));

/**
 * An instance as `GET /instances` describes it (the fields the provider
 * reads; `Instance` in Go SDK `pkg/verda/instances_types.go` and Python SDK
 * `verda/instances/_instances.py`, where `ip` and `os_volume_id` are `null`
 * until the instance is provisioned).
 */
export interface VerdaInstance {
  /** The instance's id, a UUID. */
  id: string;
  /**
   * Its state: `new`, `ordered`, `provisioning`, `validating`, `running`,
   * `offline`, `discontinued`, `no_capacity`, `error`, `deleting`, … (the
   * `Status*` constants of Go SDK `pkg/verda/instances_types.go`).
   */
  status: string;
  /** Its public IPv4 address, once it has one. */
  ip?: string | null;
  /** Its hostname. */
  hostname?: string | null;
  /** Its description; Skyward's name the cluster. */
  description?: string | null;
  /** Its location code, e.g. `"FIN-01"`. */
  location?: string | null;
  /** Its instance type, e.g. `"1H100.80S.30V"`. */
  instance_type?: string | null;
  /** Whether it is a spot instance. */
  is_spot?: boolean | null;
  /** When it was created, ISO 8601. */
  created_at?: string | null;
  /** Its OS volume's id, once it has one. */
  os_volume_id?: string | null;
}

/** The schema of {@linkcode VerdaInstance}. */
export const InstanceSchema: z.ZodType<VerdaInstance> = z.object({
  id: z.string(),
  status: z.string(),
  ip: z.string().nullish(),
  hostname: z.string().nullish(),
  description: z.string().nullish(),
  location: z.string().nullish(),
  instance_type: z.string().nullish(),
  is_spot: z.boolean().nullish(),
  created_at: z.string().nullish(),
  os_volume_id: z.string().nullish(),
});

/** An SSH key or a startup script: what teardown looks for. */
export const NamedSchema = z.object({
  id: z.string(),
  name: z.string(),
  created_at: z.string().nullish(),
});

/** An OS image of `GET /images`. */
export const ImageSchema = z.object({
  image_type: z.string(),
  name: z.string().nullish(),
  is_default: z.boolean().nullish(),
});

/** `GET /balance`. */
export const BalanceSchema = z.object({
  amount: Price.pipe(z.number()),
  currency: z.string(),
});

/** Options of {@linkcode VerdaApi}. */
export interface VerdaApiOptions {
  /** The API's base URL. */
  baseUrl: string;
  /** The OAuth2 client id. */
  clientId?: string;
  /** The OAuth2 client secret. */
  clientSecret?: string;
}

/**
 * Verda's API with its OAuth2 token: the token is fetched with the client
 * credentials on first use, refreshed with the refresh token before it
 * expires (or fetched anew when refreshing fails), and dropped on a 401.
 */
export class VerdaApi {
  readonly #options: VerdaApiOptions;
  readonly #http: HttpClient;
  readonly #auth: HttpClient;
  #token?: { access: string; refresh?: string; expiresAt: number };
  #fetching?: Promise<string>;

  /**
   * Creates the client; nothing is sent yet.
   *
   * @param options The base URL and the credentials.
   */
  constructor(options: VerdaApiOptions) {
    this.#options = options;
    const hint =
      "Check VERDA_CLIENT_ID and VERDA_CLIENT_SECRET (or sky.Verda({ clientId, clientSecret }))";
    this.#auth = new HttpClient({
      provider: "Verda",
      baseUrl: options.baseUrl,
      credentialsHint: hint,
    });
    this.#http = new HttpClient({
      provider: "Verda",
      baseUrl: options.baseUrl,
      credentialsHint: hint,
      headers: async () => ({
        authorization: `Bearer ${await this.#accessToken()}`,
      }),
      onUnauthorized: () => {
        this.#token = undefined;
      },
    });
  }

  /**
   * Sends an authenticated request.
   *
   * @param path The path under the base URL, e.g. `/instances`.
   * @param request The request.
   * @returns The checked answer.
   * @throws {ConfigError} Credentials missing or refused.
   * @throws {HttpError} Any other error status, with Verda's own message.
   */
  request<T>(path: string, request: HttpRequest<T>): Promise<T> {
    return this.#http.request(path, request);
  }

  #accessToken(): Promise<string> {
    const token = this.#token;
    if (token && Date.now() < token.expiresAt - 30_000) {
      return Promise.resolve(token.access);
    }
    this.#fetching ??= this.#fetchToken(token?.refresh).finally(() => {
      this.#fetching = undefined;
    });
    return this.#fetching;
  }

  async #fetchToken(refresh?: string): Promise<string> {
    const { clientId, clientSecret } = this.#options;
    if (!clientId || !clientSecret) {
      const missing = [
        ...(clientId ? [] : ["VERDA_CLIENT_ID"]),
        ...(clientSecret ? [] : ["VERDA_CLIENT_SECRET"]),
      ];
      throw new ConfigError(
        `No Verda credentials found (${
          missing.join(" and ")
        } not set): ${CREDENTIALS_HELP}`,
      );
    }
    const grant = (body: Record<string, string>) =>
      this.#auth.request("/oauth2/token", {
        method: "POST",
        body,
        schema: Token,
      });
    let answer: z.infer<typeof Token> | undefined;
    if (refresh) {
      answer = await grant({
        grant_type: "refresh_token",
        refresh_token: refresh,
        client_id: clientId,
        client_secret: clientSecret,
      }).catch(() => undefined);
    }
    try {
      answer ??= await grant({
        grant_type: "client_credentials",
        client_id: clientId,
        client_secret: clientSecret,
      });
    } catch (error) {
      // OAuth2 answers a bad client with 400 `invalid_client`.
      if (error instanceof HttpError && error.status === 400) {
        throw new ConfigError(
          `Verda refused the credentials (400: ${error.detail}). Check VERDA_CLIENT_ID and VERDA_CLIENT_SECRET ` +
            `(or sky.Verda({ clientId, clientSecret }))`,
          { cause: error },
        );
      }
      throw error;
    }
    this.#token = {
      access: answer.access_token,
      ...(answer.refresh_token ? { refresh: answer.refresh_token } : {}),
      expiresAt: Date.now() + answer.expires_in * 1000,
    };
    return answer.access_token;
  }
}
