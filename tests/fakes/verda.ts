/**
 * A local Verda (formerly DataCrunch) for tests: an HTTP server on 127.0.0.1
 * that speaks the part of Verda's public REST API (`/v1`) the Verda provider
 * uses, keeps state, and hands out the SSH rig's hosts as instances.
 *
 * It answers as Verda's official SDKs show the API answering — the Python SDK
 * (`verda-cloud/sdk-python`, files under `verda/`) and the Go SDK
 * (`verda-cloud/verdacloud-sdk-go`, files under `pkg/verda/`) — and, where
 * they allow several forms, in each of them, chosen per test:
 *
 * - `POST /oauth2/token` with a JSON body, `grant_type` `client_credentials`
 *   (`client_id`, `client_secret`) or `refresh_token`, answering
 *   `{ access_token, refresh_token, expires_in, token_type, scope }`; every
 *   other call needs `Authorization: Bearer <access_token>`, else 401
 *   (Python `verda/authentication/_authentication.py`, Go `auth.go`).
 * - `GET /instance-types?currency=` with prices as decimal strings (Go
 *   `types.go` `FlexibleFloat`); priced in the currency asked, in
 *   {@linkcode FakeVerda.defaultCurrency} when none is (Python
 *   `verda/instance_types/_instance_types.py` always sends `usd`).
 *   `GET /instance-availability?is_spot=` (Go `instance_availability.go`) or
 *   `?isSpot=` (Python `verda/instances/_instances.py`), answering
 *   `[{ location_code, availabilities }]`. `GET /images?instance_type=`,
 *   `GET /balance`.
 * - With {@linkcode FakeVerda.nulls}: `null` wherever the Go SDK accepts it
 *   (its slices, pointers and `FlexibleFloat`s take `null`): empty lists,
 *   `availabilities`, a type's `spot_price` when spot does not sell it, a
 *   CPU type's `model` and `gpu_memory`.
 * - `POST /sshkeys` `{ name, key }` and `POST /scripts` `{ name, script }`
 *   answering the new id as plain text (Python `verda/ssh_keys/_ssh_keys.py`
 *   and `verda/startup_scripts/_startup_scripts.py` read `.text`); `GET`
 *   lists them, `DELETE /sshkeys/{id}` and `DELETE /scripts/{id}`.
 * - `POST /instances` (body of Python `InstancesService.create`) answering
 *   the new id as plain text (Python reads `.text`) or, with
 *   {@linkcode FakeVerda.createAnswer} `"json"`, `201` with the whole
 *   instance as JSON (Go `instances.go` `createWithPlainTextResponse`: "API's
 *   inconsistent response format (sometimes JSON, sometimes plain text
 *   ID)"; Go `testutil/mock_server.go` `handleCreateInstance`). No capacity
 *   is `503 { code: "service_unavailable", message: "Not enough resources …" }`
 *   or, after a create that succeeded, the instance's status `no_capacity`
 *   (Go `instances_types.go` `StatusNoCapacity`; knob
 *   {@linkcode FakeVerda.noCapacityAfterCreate}). A create can take effect
 *   and then lose its answer: the connection breaks after the status line
 *   (knob {@linkcode FakeVerda.dropAfterCreate}).
 * - `GET /instances` (non-deleted ones, Python `get`), `GET /instances/{id}`
 *   with `ip` and `os_volume_id` `null` until it is provisioned (Python
 *   `Instance`). `PUT /instances` `{ action: "delete", id, volume_ids,
 *   delete_permanently }` answering 202 with a result per instance (207 when
 *   some failed; Go `instances.go` `Action`). `delete_permanently` applies
 *   only to the volumes in `volume_ids` (Python `action`: "Only applicable
 *   when volume_ids is also provided"); without `volume_ids` the OS volume
 *   goes to the trash and the others are detached (Go `instances_types.go`
 *   `InstanceActionRequest`), listed `volume_ids` without it go to the trash,
 *   and volumes not listed stay, detached. See {@linkcode FakeVerda.volumes}
 *   and {@linkcode FakeVerda.trash}.
 * - Deleting an instance while it is `provisioning` is refused with 400
 *   "Can't discontinue a provisioning instance" (dstack's Verda backend,
 *   `src/dstack/_internal/core/backends/verda/compute.py`; knob
 *   {@linkcode FakeVerda.refuseDeleteWhileProvisioning}, on by default).
 * - Errors are `{ code, message }` (Go `errors.go` `APIError`) with Verda's
 *   codes (`invalid_request`, `unauthorized_request`, `not_found`,
 *   `service_unavailable`).
 *
 * An instance is `ordered`, then `provisioning` with its address and its OS
 * volume, then `running`; deploying one authorises the registered SSH key on
 * a free rig host (as Verda's image does for root), deleting it removes the
 * key. A discontinued spot instance's OS volume follows its
 * `on_spot_discontinue` (Python `OSVolume`). Startup scripts are kept, not
 * run.
 *
 * Other knobs: no capacity (everywhere, or for a market in a location while
 * the availability still lists it), rate limiting, token lifetime, expiring
 * every token, discontinuing a spot instance.
 *
 * Test equipment only: nothing in the library imports it.
 *
 * @module
 */
import { type FakeHost, killClusterSessions } from "./ec2.ts";

/** The API client the fake accepts. */
export const VERDA_TEST_CREDENTIALS = {
  clientId: "skyward-fake-client",
  clientSecret: "skyward-fake-secret-for-tests-only",
} as const;

/** Options of {@linkcode FakeVerda.start}. */
export interface FakeVerdaOptions {
  /** The machines to hand out. */
  hosts?: FakeHost[];
  /** How long an instance is `ordered`, then `provisioning`, each, in ms. @default 100 */
  bootMs?: number;
  /** How long a deleted instance stays listed as `deleting`, in ms. @default 100 */
  deleteMs?: number;
  /** Lifetime of access tokens, in seconds. @default 3600 */
  tokenLifetime?: number;
}

/** An instance type as the fake serves it. */
interface TypeInfo {
  instance_type: string;
  model?: string;
  cores: number;
  memory: number;
  gpus: number;
  gpuMemory: number;
  price: string;
  spot: string;
}

/** Instance types the fake knows, with made-up prices. */
export const FAKE_VERDA_TYPES: readonly TypeInfo[] = [
  {
    instance_type: "CPU.4V.16G",
    cores: 4,
    memory: 16,
    gpus: 0,
    gpuMemory: 0,
    price: "0.0798",
    spot: "0.0279",
  },
  {
    instance_type: "CPU.8V.32G",
    cores: 8,
    memory: 32,
    gpus: 0,
    gpuMemory: 0,
    price: "0.1596",
    spot: "0.0559",
  },
  {
    instance_type: "1V100.6V",
    model: "V100",
    cores: 6,
    memory: 23,
    gpus: 1,
    gpuMemory: 16,
    price: "0.1975",
    spot: "0.0691",
  },
  {
    instance_type: "1A100.22V",
    model: "A100",
    cores: 22,
    memory: 120,
    gpus: 1,
    gpuMemory: 40,
    price: "0.7245",
    spot: "0.2536",
  },
  {
    instance_type: "8A100.176V",
    model: "A100",
    cores: 176,
    memory: 960,
    gpus: 8,
    gpuMemory: 640,
    price: "10.3600",
    spot: "3.6260",
  },
  {
    instance_type: "1H100.80S.30V",
    model: "H100",
    cores: 30,
    memory: 120,
    gpus: 1,
    gpuMemory: 80,
    price: "2.1900",
    spot: "0.7665",
  },
  {
    instance_type: "2H100.80S.60V",
    model: "H100",
    cores: 60,
    memory: 240,
    gpus: 2,
    gpuMemory: 160,
    price: "4.3800",
    spot: "1.5330",
  },
  {
    instance_type: "1RTX6000ADA.10V",
    model: "RTX 6000 Ada",
    cores: 10,
    memory: 60,
    gpus: 1,
    gpuMemory: 48,
    price: "0.8300",
    spot: "0.2905",
  },
  {
    instance_type: "1L40S.20V",
    model: "L40S",
    cores: 20,
    memory: 60,
    gpus: 1,
    gpuMemory: 48,
    price: "0.9100",
    spot: "0",
  },
];

/** Where each market has capacity: on-demand in FIN-01 and FIN-03, spot in FIN-03. */
const MARKETS: Record<"spot" | "on-demand", string[]> = {
  spot: ["FIN-03"],
  "on-demand": ["FIN-01", "FIN-03"],
};

const IMAGES = [
  {
    id: "img-0001",
    image_type: "ubuntu-24.04-cuda-12.8-open-docker",
    name: "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
    gpu: true,
  },
  {
    id: "img-0002",
    image_type: "ubuntu-24.04",
    name: "Ubuntu 24.04",
    gpu: false,
  },
  {
    id: "img-0003",
    image_type: "ubuntu-22.04-cuda-12.4-docker",
    name: "Ubuntu 22.04 + CUDA 12.4 + Docker",
    gpu: true,
  },
];

/** An instance as the fake keeps it. */
export interface FakeVerdaInstance {
  id: string;
  instanceType: string;
  image: string;
  hostname: string;
  description: string;
  status: string;
  location: string;
  isSpot: boolean;
  contract?: string;
  sshKeyIds: string[];
  startupScriptId: string | null;
  osVolume?: { name?: string; size?: number; on_spot_discontinue?: string };
  /** The OS volume's id, once it is provisioned. */
  osVolumeId: string | null;
  ip: string | null;
  host?: FakeHost;
  createdAt: Date;
}

/** A volume as the fake keeps it. */
export interface FakeVerdaVolume {
  id: string;
  name: string;
  size: number;
  /** The instance it is attached to, or `null` once detached. */
  instanceId: string | null;
}

interface Named {
  id: string;
  name: string;
  createdAt: Date;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A running fake Verda; see the module doc. */
export class FakeVerda implements AsyncDisposable {
  /** The URL to pass as `sky.Verda({ baseUrl })`. */
  readonly baseUrl: string;
  /** Every request, in order. */
  readonly requests: {
    method: string;
    path: string;
    query: Record<string, string>;
    body: unknown;
    status: number;
  }[] = [];
  /** Every deploy answers 503 "Not enough resources". */
  noCapacity = false;
  /**
   * `"<market> <location>"` pairs (e.g. `"spot FIN-03"`) whose deploys answer
   * 503 although the availability lists them, as when capacity goes between
   * the two calls.
   */
  readonly full: Set<string> = new Set();
  /**
   * How `POST /instances` answers the new id: as plain text, or the whole
   * instance as JSON (201).
   */
  createAnswer: "text" | "json" = "text";
  /**
   * The next this many creates take effect, then their connection ends in
   * the middle of the answer.
   */
  dropAfterCreate = 0;
  /**
   * `"<market> <location>"` pairs whose creates succeed but whose instance
   * then goes to `no_capacity` instead of `provisioning`.
   */
  readonly noCapacityAfterCreate: Set<string> = new Set();
  /**
   * Refuse to delete an instance while it is `provisioning`, as Verda does
   * (dstack's `core/backends/verda/compute.py`: "Can't discontinue a
   * provisioning instance").
   */
  refuseDeleteWhileProvisioning = true;
  /** Answer `null` wherever the Go SDK accepts it (see the module doc). */
  nulls = false;
  /** The currency of prices when the request names none. */
  defaultCurrency: "usd" | "eur" = "eur";
  /** Prices in this currency whatever the request asks, when set. */
  forceCurrency?: "usd" | "eur";
  /** Volumes that exist and are not in the trash, attached or detached. */
  readonly volumes: FakeVerdaVolume[] = [];
  /** Volumes in the trash (Verda keeps them, billed, for 96 hours). */
  readonly trash: FakeVerdaVolume[] = [];
  /** The SSH keys registered: id, name and public key. */
  readonly sshKeys: (Named & { key: string })[] = [];
  /** The startup scripts registered. */
  readonly scripts: (Named & { script: string })[] = [];

  /**
   * Registers an SSH key as its owner would (not through the API), e.g. a
   * key of the user's own.
   *
   * @param name The key's name.
   * @param key The public key line.
   */
  addSshKey(name: string, key: string): void {
    this.sshKeys.push({
      id: crypto.randomUUID(),
      name,
      key,
      createdAt: new Date(),
    });
  }

  #server: Deno.HttpServer;
  #hosts: FakeHost[];
  #bootMs: number;
  #deleteMs: number;
  #tokenLifetime: number;
  #tokens = new Map<string, number>();
  #refreshTokens = new Set<string>();
  #instances = new Map<string, FakeVerdaInstance>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #throttle = 0;
  #closed = false;
  #watcher?: ReturnType<typeof setInterval>;

  private constructor(server: Deno.HttpServer, options: FakeVerdaOptions) {
    this.#server = server;
    this.baseUrl = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/v1`;
    this.#hosts = options.hosts ?? [];
    this.#bootMs = options.bootMs ?? 100;
    this.#deleteMs = options.deleteMs ?? 100;
    this.#tokenLifetime = options.tokenLifetime ?? 3600;
  }

  /**
   * Starts the fake on a free port of 127.0.0.1.
   *
   * @param options The hosts to hand out and delays.
   * @returns The running fake.
   */
  static start(options: FakeVerdaOptions = {}): Promise<FakeVerda> {
    const ref: { fake?: FakeVerda } = {};
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => ref.fake!.#handle(request),
    );
    ref.fake = new FakeVerda(server, options);
    return Promise.resolve(ref.fake);
  }

  /** The instances Verda lists (not deleted yet), in deploy order. */
  get instances(): FakeVerdaInstance[] {
    return [...this.#instances.values()];
  }

  /** The requests to one method and path, e.g. `"POST /instances"`. */
  calls(route: string): { query: Record<string, string>; body: unknown }[] {
    return this.requests.filter((r) => `${r.method} ${r.path}` === route);
  }

  /** The next `count` API calls are answered 429 Too Many Requests. */
  throttle(count: number): void {
    this.#throttle = count;
  }

  /** Every access token handed out so far stops working (a 401 until a new one is fetched). */
  expireTokens(): void {
    this.#tokens.clear();
  }

  /**
   * Takes a spot instance back, as Verda does when it discontinues one: its
   * status becomes `discontinued`, its key is no longer authorised and the
   * SSH connections of its cluster on its host end.
   *
   * @param id The instance's id.
   */
  async discontinue(id: string): Promise<void> {
    const instance = this.#instances.get(id);
    if (!instance) throw new Error(`fake Verda: no instance ${id}`);
    instance.status = "discontinued";
    const policy = instance.osVolume?.on_spot_discontinue ?? "keep_detached";
    const os = instance.osVolumeId ? [instance.osVolumeId] : [];
    this.#dropVolumes(
      instance,
      policy === "keep_detached" ? [] : os,
      policy === "delete_permanently",
    );
    await this.#release(instance);
    const cluster = instance.description.split(" ").pop();
    if (cluster && instance.host?.sshdPidPath) {
      await killClusterSessions(instance.host, cluster);
    }
  }

  /** Stops the server; every instance's key is removed from its host. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#watcher);
    for (const timer of this.#timers) clearTimeout(timer);
    for (const instance of this.#instances.values()) {
      await this.#release(instance);
    }
    await this.#server.shutdown();
  }

  /** Closes the fake. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname.replace(/^\/v1/, "");
    const text = await request.text();
    let body: unknown = undefined;
    if (text) {
      if (
        (request.headers.get("content-type") ?? "").includes("urlencoded")
      ) {
        body = Object.fromEntries(new URLSearchParams(text));
      } else {
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
      }
    }
    const record = {
      method: request.method,
      path,
      query: Object.fromEntries(url.searchParams),
      body,
      status: 200,
    };
    this.requests.push(record);
    let response: Response;
    try {
      if (!url.pathname.startsWith("/v1/")) {
        throw new ApiError(404, "not_found", `No route ${url.pathname}`);
      }
      if (this.#throttle > 0) {
        this.#throttle--;
        response = Response.json({
          code: "too_many_requests",
          message: "Rate limit exceeded, retry later",
        }, { status: 429, headers: { "retry-after": "0" } });
      } else if (path === "/oauth2/token" && request.method === "POST") {
        response = this.#token(body);
      } else {
        this.#authorize(request.headers.get("authorization"));
        response = await this.#route(request.method, path, url, body);
      }
    } catch (error) {
      const e = error instanceof ApiError
        ? error
        : new ApiError(500, "server_error", `fake Verda: ${error}`);
      response = Response.json({ code: e.code, message: e.message }, {
        status: e.status,
      });
    }
    record.status = response.status;
    return response;
  }

  #token(body: unknown): Response {
    const b = (body ?? {}) as Record<string, string>;
    if (b.grant_type === "client_credentials") {
      if (
        b.client_id !== VERDA_TEST_CREDENTIALS.clientId ||
        b.client_secret !== VERDA_TEST_CREDENTIALS.clientSecret
      ) {
        throw new ApiError(
          401,
          "unauthorized_request",
          "Invalid client credentials",
        );
      }
    } else if (b.grant_type === "refresh_token") {
      if (!this.#refreshTokens.delete(b.refresh_token)) {
        throw new ApiError(
          401,
          "unauthorized_request",
          "Invalid refresh token",
        );
      }
    } else {
      throw new ApiError(
        400,
        "invalid_request",
        `Unsupported grant type: ${b.grant_type}`,
      );
    }
    const access = `access-${crypto.randomUUID()}`;
    const refresh = `refresh-${crypto.randomUUID()}`;
    this.#tokens.set(access, Date.now() + this.#tokenLifetime * 1000);
    this.#refreshTokens.add(refresh);
    return Response.json({
      access_token: access,
      refresh_token: refresh,
      scope: "fullAccess",
      token_type: "Bearer",
      expires_in: this.#tokenLifetime,
    });
  }

  #authorize(header: string | null): void {
    const token = /^Bearer (.+)$/.exec(header ?? "")?.[1];
    const expires = token ? this.#tokens.get(token) : undefined;
    if (!expires || expires < Date.now()) {
      throw new ApiError(
        401,
        "unauthorized_request",
        token ? "Access token is invalid or expired" : "Missing access token",
      );
    }
  }

  async #route(
    method: string,
    path: string,
    url: URL,
    body: unknown,
  ): Promise<Response> {
    const route = `${method} ${path.replace(/\/[^/]+$/, "/{id}")}`;
    const id = decodeURIComponent(path.split("/")[2] ?? "");
    switch (`${method} ${path}`) {
      case "GET /instance-types": {
        const currency = this.forceCurrency ??
          url.searchParams.get("currency") ?? this.defaultCurrency;
        return Response.json(
          FAKE_VERDA_TYPES.map((t) => typeJson(t, currency, this.nulls)),
        );
      }
      case "GET /instance-availability":
        return this.#list(this.#availability(url.searchParams));
      case "GET /images": {
        const type = url.searchParams.get("instance_type");
        const gpu = FAKE_VERDA_TYPES.find((t) => t.instance_type === type)
          ?.gpus;
        return Response.json(
          IMAGES.filter((i) => gpu === undefined || i.gpu === gpu > 0).map((
            i,
            n,
          ) => ({
            id: i.id,
            image_type: i.image_type,
            name: i.name,
            is_default: n === 0,
            is_cluster: false,
            details: [],
            category: "ubuntu",
          })),
        );
      }
      case "GET /balance":
        return Response.json({ amount: 100.5, currency: "usd" });
      case "GET /sshkeys":
        return this.#list(this.sshKeys.map((k) => ({
          id: k.id,
          name: k.name,
          key: k.key,
          fingerprint: "SHA256:fake",
          created_at: k.createdAt.toISOString(),
        })));
      case "POST /sshkeys": {
        const b = object(body);
        const name = str(b.name, "name");
        const key = str(b.key, "key");
        if (!/^ssh-(ed25519|rsa) [A-Za-z0-9+/=]+/.test(key)) {
          throw new ApiError(400, "invalid_request", "Invalid SSH public key");
        }
        const id = crypto.randomUUID();
        this.sshKeys.push({ id, name, key, createdAt: new Date() });
        return new Response(id, { status: 201 });
      }
      case "GET /scripts":
        return this.#list(this.scripts.map((s) => ({
          id: s.id,
          name: s.name,
          script: s.script,
          created_at: s.createdAt.toISOString(),
        })));
      case "POST /scripts": {
        const b = object(body);
        const id = crypto.randomUUID();
        this.scripts.push({
          id,
          name: str(b.name, "name"),
          script: str(b.script, "script"),
          createdAt: new Date(),
        });
        return new Response(id, { status: 201 });
      }
      case "GET /instances":
        return this.#list(
          this.instances.map((i) => instanceJson(i, this.volumes)),
        );
      case "POST /instances":
        return await this.#deploy(object(body));
      case "PUT /instances":
        return await this.#action(object(body));
    }
    switch (route) {
      case "GET /instances/{id}": {
        const instance = this.#instances.get(id);
        if (!instance) {
          throw new ApiError(404, "not_found", `Instance ${id} not found`);
        }
        return Response.json(instanceJson(instance, this.volumes));
      }
      case "DELETE /sshkeys/{id}":
      case "DELETE /scripts/{id}": {
        const list: Named[] = path.startsWith("/sshkeys")
          ? this.sshKeys
          : this.scripts;
        const index = list.findIndex((r) => r.id === id);
        if (index < 0) {
          throw new ApiError(404, "not_found", `Resource ${id} not found`);
        }
        if (
          path.startsWith("/sshkeys") &&
          this.instances.some((i) =>
            i.status !== "deleting" && i.sshKeyIds.includes(id)
          )
        ) {
          throw new ApiError(
            400,
            "invalid_request",
            `SSH key ${id} is in use by an instance`,
          );
        }
        list.splice(index, 1);
        return new Response(null, { status: 200 });
      }
    }
    throw new ApiError(404, "not_found", `No route ${method} ${path}`);
  }

  /** A list, or `null` for an empty one when {@linkcode nulls} is set. */
  #list(items: unknown[]): Response {
    return Response.json(this.nulls && items.length === 0 ? null : items);
  }

  /** Free hosts: those no listed instance holds. */
  #free(): FakeHost[] {
    const busy = new Set(this.instances.map((i) => i.host));
    return this.#hosts.filter((h) => !busy.has(h));
  }

  #availability(params: URLSearchParams): unknown[] {
    const spot = (params.get("is_spot") ?? params.get("isSpot")) === "true";
    const only = params.get("location_code") ?? params.get("locationCode");
    const capacity = !this.noCapacity && this.#free().length > 0;
    return MARKETS[spot ? "spot" : "on-demand"].filter((l) =>
      !only || l === only
    ).map((location_code) => ({
      location_code,
      availabilities: capacity
        ? FAKE_VERDA_TYPES.filter((t) => !spot || Number(t.spot) > 0).map((t) =>
          t.instance_type
        )
        : this.nulls
        ? null
        : [],
    }));
  }

  async #deploy(b: Record<string, unknown>): Promise<Response> {
    const typeName = str(b.instance_type, "instance_type");
    const type = FAKE_VERDA_TYPES.find((t) => t.instance_type === typeName);
    if (!type) {
      throw new ApiError(
        400,
        "invalid_request",
        `Invalid instance type ${typeName}`,
      );
    }
    const image = str(b.image, "image");
    if (!IMAGES.some((i) => i.image_type === image)) {
      throw new ApiError(400, "invalid_request", `Invalid image ${image}`);
    }
    const hostname = str(b.hostname, "hostname");
    if (!/^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$/.test(hostname)) {
      throw new ApiError(
        400,
        "invalid_request",
        `Invalid hostname ${hostname}`,
      );
    }
    const description = str(b.description, "description");
    const location = typeof b.location_code === "string"
      ? b.location_code
      : "FIN-03";
    const isSpot = b.is_spot === true;
    const keyIds = Array.isArray(b.ssh_key_ids)
      ? b.ssh_key_ids as string[]
      : [];
    for (const keyId of keyIds) {
      if (!this.sshKeys.some((k) => k.id === keyId)) {
        throw new ApiError(400, "invalid_request", `Invalid SSH key ${keyId}`);
      }
    }
    const scriptId = typeof b.startup_script_id === "string"
      ? b.startup_script_id
      : null;
    if (scriptId && !this.scripts.some((s) => s.id === scriptId)) {
      throw new ApiError(
        400,
        "invalid_request",
        `Invalid startup script ${scriptId}`,
      );
    }
    const market = isSpot ? "spot" : "on-demand";
    const free = this.#free();
    if (
      this.noCapacity || this.full.has(`${market} ${location}`) ||
      !MARKETS[market].includes(location) || free.length === 0 ||
      (isSpot && Number(type.spot) === 0)
    ) {
      throw new ApiError(
        503,
        "service_unavailable",
        `Not enough resources to deploy a ${type.gpus || "CPU"}${
          type.gpus ? " GPU" : ""
        } instance type ${typeName} in ${location}`,
      );
    }
    const instance: FakeVerdaInstance = {
      id: crypto.randomUUID(),
      instanceType: typeName,
      image,
      hostname,
      description,
      status: "ordered",
      location,
      isSpot,
      ...(typeof b.contract === "string" ? { contract: b.contract } : {}),
      sshKeyIds: keyIds,
      startupScriptId: scriptId,
      ...(b.os_volume && typeof b.os_volume === "object"
        ? { osVolume: b.os_volume as FakeVerdaInstance["osVolume"] }
        : {}),
      osVolumeId: null,
      ip: null,
      createdAt: new Date(),
    };
    this.#instances.set(instance.id, instance);
    if (this.noCapacityAfterCreate.has(`${market} ${location}`)) {
      // Accepted, then placed nowhere (Go `StatusNoCapacity`).
      this.#later(this.#bootMs, () => {
        if (instance.status === "ordered") instance.status = "no_capacity";
      });
    } else {
      instance.host = free[0];
      await this.#grant(instance);
      this.#later(this.#bootMs, () => {
        if (instance.status !== "ordered") return;
        instance.status = "provisioning";
        instance.ip = instance.host?.address ?? null;
        const volume: FakeVerdaVolume = {
          id: crypto.randomUUID(),
          name: instance.osVolume?.name ?? `${instance.hostname}-os`,
          size: instance.osVolume?.size ?? 50,
          instanceId: instance.id,
        };
        this.volumes.push(volume);
        instance.osVolumeId = volume.id;
        this.#later(this.#bootMs, () => {
          if (instance.status === "provisioning") instance.status = "running";
        });
      });
    }
    const answer = this.createAnswer === "json"
      ? Response.json(instanceJson(instance, this.volumes), { status: 201 })
      : new Response(instance.id, { status: 202 });
    if (this.dropAfterCreate > 0) {
      this.dropAfterCreate--;
      // The status line and part of the body go out, then the connection
      // ends short of the promised length: the client cannot read the answer.
      const body = await answer.text();
      return new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(
              new TextEncoder().encode(body.slice(0, body.length >> 1)),
            );
            controller.close();
          },
        }),
        {
          status: answer.status,
          headers: { "content-length": String(body.length + 100) },
        },
      );
    }
    return answer;
  }

  /**
   * What deleting (or discontinuing) an instance does to its volumes:
   * listed ones are deleted for good with `permanently`, else put in the
   * trash; without a list, the OS volume goes to the trash and the others
   * are detached.
   */
  #dropVolumes(
    instance: FakeVerdaInstance,
    listed: string[] | undefined,
    permanently: boolean,
  ): void {
    for (
      const volume of this.volumes.filter((v) => v.instanceId === instance.id)
    ) {
      const isOs = volume.id === instance.osVolumeId;
      const drop = listed ? listed.includes(volume.id) : isOs;
      volume.instanceId = null;
      if (!drop) continue;
      this.volumes.splice(this.volumes.indexOf(volume), 1);
      if (!(permanently && listed)) this.trash.push(volume);
    }
  }

  async #action(b: Record<string, unknown>): Promise<Response> {
    const action = str(b.action, "action");
    const ids = Array.isArray(b.id) ? b.id as string[] : [str(b.id, "id")];
    if (action !== "delete") {
      throw new ApiError(
        400,
        "invalid_request",
        `The fake does not implement action ${action}`,
      );
    }
    if (
      this.refuseDeleteWhileProvisioning &&
      ids.some((id) => this.#instances.get(id)?.status === "provisioning")
    ) {
      throw new ApiError(
        400,
        "invalid_request",
        "Can't discontinue a provisioning instance",
      );
    }
    const listed = Array.isArray(b.volume_ids)
      ? b.volume_ids as string[]
      : undefined;
    const permanently = b.delete_permanently === true;
    const results = [];
    for (const id of ids) {
      const instance = this.#instances.get(id);
      if (!instance) {
        results.push({
          action,
          instanceId: id,
          status: "error",
          error: "Instance not found",
          statusCode: 404,
        });
        continue;
      }
      if (instance.status !== "deleting") {
        instance.status = "deleting";
        this.#dropVolumes(instance, listed, permanently);
        await this.#release(instance);
        this.#later(this.#deleteMs, () => this.#instances.delete(id));
      }
      results.push({ action, instanceId: id, status: "success" });
    }
    return Response.json(results, {
      status: results.some((r) => r.error) ? 207 : 202,
    });
  }

  // -------------------------------------------------------------------------
  // Keys on the rig hosts

  #lines(instance: FakeVerdaInstance): string[] {
    return instance.sshKeyIds.map((id) => this.sshKeys.find((k) => k.id === id))
      .filter((k) => k !== undefined).map((k) =>
        `${k.key.split(" ").slice(0, 2).join(" ")} fake-verda:${instance.id}`
      );
  }

  /** Authorises the instance's keys on its host, as the image does at boot. */
  async #grant(instance: FakeVerdaInstance): Promise<void> {
    const path = instance.host?.authorizedKeysPath;
    if (!path) return;
    const lines = this.#lines(instance);
    // Decided under the file's lock, which #release takes too: an instance
    // deleted (or the fake closed) meanwhile is not granted again.
    await editKeys(
      path,
      (kept) =>
        this.#closed || instance.status === "deleting" ||
          instance.status === "discontinued"
          ? kept
          : [...kept, ...lines.filter((l) => !kept.includes(l))],
    );
    this.#watcher ??= setInterval(() => this.#watch(), 250);
  }

  /** Puts back keys of live instances that another writer of the file dropped. */
  async #watch(): Promise<void> {
    for (const instance of this.instances) {
      if (
        this.#closed || instance.status === "deleting" ||
        instance.status === "discontinued"
      ) continue;
      const path = instance.host?.authorizedKeysPath;
      if (!path) continue;
      const text = await Deno.readTextFile(path).catch(() => "");
      if (this.#lines(instance).some((l) => !text.includes(l))) {
        await this.#grant(instance).catch(() => {});
      }
    }
  }

  async #release(instance: FakeVerdaInstance): Promise<void> {
    const path = instance.host?.authorizedKeysPath;
    if (!path) return;
    await editKeys(
      path,
      (kept) => kept.filter((l) => !l.endsWith(` fake-verda:${instance.id}`)),
    );
  }
}

/** Rewrites an `authorized_keys` file under an exclusive lock. */
async function editKeys(
  path: string,
  edit: (lines: string[]) => string[],
): Promise<void> {
  using file = await Deno.open(path, { read: true, write: true });
  await file.lock(true);
  try {
    const text = new TextDecoder().decode(await readAll(file));
    const before = text.split("\n").filter(Boolean);
    const after = edit(before);
    if (after.join("\n") === before.join("\n")) return;
    const out = new TextEncoder().encode(after.map((l) => `${l}\n`).join(""));
    await file.seek(0, Deno.SeekMode.Start);
    await file.truncate(0);
    let written = 0;
    while (written < out.length) {
      written += await file.write(out.subarray(written));
    }
  } finally {
    await file.unlock();
  }
}

async function readAll(file: Deno.FsFile): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(16 * 1024);
  for (;;) {
    const n = await file.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function object(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new ApiError(400, "invalid_request", "Expected a JSON object body");
  }
  return body as Record<string, unknown>;
}

function str(value: unknown, name: string): string {
  if (typeof value !== "string" || value === "") {
    throw new ApiError(400, "invalid_request", `"${name}" is required`);
  }
  return value;
}

/** Made-up exchange rate for prices asked in euros. */
const EUR_PER_USD = 0.9;

function typeJson(t: TypeInfo, currency: string, nulls: boolean) {
  const rate = currency === "eur" ? EUR_PER_USD : 1;
  const price = (usd: string) => (Number(usd) * rate).toFixed(4);
  return {
    id: `type-${t.instance_type}`,
    instance_type: t.instance_type,
    model: t.model ?? (nulls ? null : "CPU Node"),
    name: t.instance_type,
    cpu: {
      description: `${t.cores} CPU`,
      number_of_cores: t.cores,
    },
    gpu: {
      description: t.gpus ? `${t.gpus}x ${t.model}` : "",
      number_of_gpus: t.gpus,
    },
    memory: {
      description: `${t.memory}GB RAM`,
      size_in_gigabytes: t.memory,
    },
    gpu_memory: nulls && !t.gpuMemory ? null : {
      description: t.gpuMemory ? `${t.gpuMemory}GB VRAM` : "",
      size_in_gigabytes: t.gpuMemory,
    },
    storage: { description: "dynamic" },
    price_per_hour: price(t.price),
    spot_price: nulls && Number(t.spot) === 0 ? null : price(t.spot),
    currency,
    manufacturer: t.gpus ? "NVIDIA" : "AMD",
    description: t.gpus ? "Dedicated Hardware Instance" : "CPU Instance",
  };
}

function instanceJson(i: FakeVerdaInstance, volumes: FakeVerdaVolume[]) {
  const type = FAKE_VERDA_TYPES.find((t) => t.instance_type === i.instanceType);
  return {
    id: i.id,
    instance_type: i.instanceType,
    price_per_hour: Number(i.isSpot ? type?.spot : type?.price),
    hostname: i.hostname,
    description: i.description,
    status: i.status,
    created_at: i.createdAt.toISOString(),
    ssh_key_ids: i.sshKeyIds,
    cpu: { description: `${type?.cores} CPU`, number_of_cores: type?.cores },
    gpu: { description: "", number_of_gpus: type?.gpus },
    memory: {
      description: `${type?.memory}GB RAM`,
      size_in_gigabytes: type?.memory,
    },
    gpu_memory: { description: "", size_in_gigabytes: type?.gpuMemory },
    storage: { description: "dynamic" },
    ip: i.ip,
    os_volume_id: i.osVolumeId,
    volume_ids: volumes.filter((v) => v.instanceId === i.id).map((v) => v.id),
    location: i.location,
    image: i.image,
    startup_script_id: i.startupScriptId,
    is_spot: i.isSpot,
    contract: i.contract ?? (i.isSpot ? "SPOT" : "PAY_AS_YOU_GO"),
    pricing: "FIXED_PRICE",
  };
}
