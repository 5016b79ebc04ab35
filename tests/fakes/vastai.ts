/**
 * A local Vast.ai for tests: an HTTP server on 127.0.0.1 that speaks the
 * parts of Vast.ai's REST API the provider uses, written from Vast.ai's API
 * reference (docs.vast.ai/api-reference) and its official CLI and SDK,
 * vast-ai/vast-cli (`vast.py`, `vastai/api/instances.py`,
 * `vastai/api/client.py`). Behaviour by source:
 *
 * - Bearer authentication (or `?api_key=`), answering 401 `{ success:
 *   false, error, msg }` otherwise (API reference).
 * - `POST /bundles/` offer search with `{ field: { op: value } }` filters
 *   (`eq`, `neq`, `gt`, `gte`, `lt`, `lte`, `in`, `notin`), `type`, `order`
 *   and `limit`, answering `{ offers: [...] }` (`vast.py` `search__offers`).
 * - `PUT /asks/{id}/` answering `{ success, new_contract }` (`vast.py`
 *   `create__instance`'s example), or 410 when the offer is taken and 400
 *   for a bid under the offer's `min_bid`. The `runtype` decides the SSH
 *   routes (`vast.py` `get_runtype`): `ssh_direc` maps port 22 on the
 *   machine's address, `ssh_proxy` gives the proxy's `ssh_host`/`ssh_port`.
 * - `GET /api/v1/instances/` (`vastai/api/instances.py` `show_instances_v1`,
 *   `vast.py` `_fetch_all_instances_v1`): JSON-encoded `select_filters`
 *   (`{ label: { in | eq } }`), `order_by`, `limit` (at most 25) and
 *   `after_token`, answering `{ instances, next_token, total_instances }`;
 *   `instances` is `null` when there are none if {@linkcode
 *   FakeVastAI.nullLists} is set, and pages are {@linkcode
 *   FakeVastAI.pageSize} long. Rows carry `extra_env` as `[name, value]`
 *   pairs (`vast.py` `show__instances`) and, with {@linkcode
 *   FakeVastAI.paddedAddresses}, address fields with surrounding whitespace
 *   (which `vast.py` `strip_strings` removes).
 * - The v0 `GET /instances/` list, which `vast.py` calls deprecated, still
 *   answers `{ instances_found, instances }` (a provider should not use it).
 * - `GET /instances/{id}/` (`vastai/api/instances.py` `show_instance`,
 *   `?owner=me`): `{ instances: {...} }`, or `{ instances: null }` once the
 *   instance is gone.
 * - `DELETE /instances/{id}/` with the body `{}` (`vast.py`
 *   `destroy_instance`): `{ success: true }`, or, as chosen per test,
 *   `{ success: false, msg }` with status 200 while nothing is destroyed.
 * - `GET|POST /ssh/` and `DELETE /ssh/{id}/` (`vast.py` `show__ssh_keys`,
 *   `create__ssh_key`, `delete__ssh_key`); `GET /users/current/`.
 *
 * Each offer is a machine; an instance made from it is one of the SSH rig's
 * hosts, whose `authorized_keys` gets the account's SSH keys while the
 * instance lives, as Vast.ai installs the account's keys in new instances
 * (docs.vast.ai "Keys": keys are "automatically added to your future
 * instances"). The onstart script is kept, not run.
 *
 * Knobs for tests: offers that are gone (410), no capacity at all, rate
 * limiting (429) for the next requests, failing destroys (500), destroys
 * answered `success: false`, creates whose connection drops after the
 * instance is made, null lists, short pages, padded addresses, an outbid
 * instance, boot delay.
 *
 * Test equipment only: nothing in the library imports it.
 *
 * @module
 */
import { type FakeHost, killClusterSessions } from "./ec2.ts";

/** The API key the fake accepts. */
export const TEST_VAST_KEY = "vast-fake-key-for-tests-0001";

/** An offer the fake lists: the fields of Vast.ai's search results. */
export interface FakeVastOffer {
  id: number;
  machine_id: number;
  gpu_name: string;
  num_gpus: number;
  gpu_ram: number;
  cpu_cores_effective: number;
  cpu_ram: number;
  cpu_arch: string;
  disk_space: number;
  dph_total: number;
  min_bid: number;
  reliability2: number;
  verified: boolean;
  cuda_max_good: number;
  geolocation: string;
  rentable: boolean;
  rented: boolean;
}

/** An instance as the fake keeps it. */
export interface FakeVastInstance {
  id: number;
  offerId: number;
  /** The body of the `PUT /asks/{id}/` that made it. */
  request: Record<string, unknown>;
  label: string | null;
  actual_status: "loading" | "running" | "exited";
  intended_status: "running" | "stopped";
  is_bid: boolean;
  host?: FakeHost;
  /** The public keys authorised on its host. */
  keys: string[];
  destroyed: boolean;
  /** When it was made, in seconds since the epoch. */
  startDate: number;
}

/** Offers the fake lists by default, cheapest on-demand first within each GPU. */
export function defaultOffers(): FakeVastOffer[] {
  const offer = (
    id: number,
    gpu: string,
    count: number,
    ramMb: number,
    dph: number,
    minBid: number,
    extra: Partial<FakeVastOffer> = {},
  ): FakeVastOffer => ({
    id,
    machine_id: 9000 + id,
    gpu_name: gpu,
    num_gpus: count,
    gpu_ram: ramMb,
    cpu_cores_effective: 8 * count,
    cpu_ram: 32768 * count,
    cpu_arch: "amd64",
    disk_space: 200,
    dph_total: dph,
    min_bid: minBid,
    reliability2: 0.99,
    verified: true,
    cuda_max_good: 12.4,
    geolocation: "Oregon, US",
    rentable: true,
    rented: false,
    ...extra,
  });
  return [
    offer(1001, "RTX 4090", 1, 24564, 0.35, 0.2),
    offer(1002, "RTX 4090", 1, 24564, 0.38, 0.22, {
      geolocation: "Quebec, CA",
    }),
    offer(1003, "RTX 4090", 1, 24564, 0.3, 0.15, {
      reliability2: 0.8,
      verified: false,
    }),
    offer(1004, "RTX 4090", 2, 24564, 0.72, 0.4),
    offer(1005, "RTX 3090", 1, 24576, 0.2, 0.1, { cuda_max_good: 11.8 }),
    offer(1006, "Tesla T4", 1, 15360, 0.15, 0.08),
    offer(1007, "A100 SXM4", 1, 81920, 1.4, 0.9),
    offer(1008, "A100 PCIE", 1, 40960, 0.9, 0.6),
    offer(1009, "H100 SXM", 8, 81559, 19.5, 14),
  ];
}

/** Options of {@linkcode FakeVastAI.start}. */
export interface FakeVastAIOptions {
  /** The machines to hand out as instances. */
  hosts?: FakeHost[];
  /** The offers listed. @default {@linkcode defaultOffers} */
  offers?: FakeVastOffer[];
  /** How long an instance stays `loading`, in ms. @default 200 */
  bootMs?: number;
}

type Filter = Record<string, unknown>;

function matches(value: unknown, filter: Filter): boolean {
  for (const [op, want] of Object.entries(filter)) {
    const v = value as number | string | boolean;
    const w = want as number | string | boolean;
    switch (op) {
      case "eq":
        if (v !== w) return false;
        break;
      case "neq":
        if (v === w) return false;
        break;
      case "gt":
        if (!(v > w)) return false;
        break;
      case "gte":
        if (!(v >= w)) return false;
        break;
      case "lt":
        if (!(v < w)) return false;
        break;
      case "lte":
        if (!(v <= w)) return false;
        break;
      case "in":
        if (!(want as unknown[]).includes(value)) return false;
        break;
      case "notin":
        if ((want as unknown[]).includes(value)) return false;
        break;
      default:
        throw new BadRequest(`unknown operator ${op}`);
    }
  }
  return true;
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
    readonly code = "bad_request",
  ) {
    super(message);
  }
}

/** The fake Vast.ai. Start it with {@linkcode FakeVastAI.start}. */
export class FakeVastAI implements AsyncDisposable {
  /** The URL to pass as `sky.VastAI({ baseUrl })`. */
  readonly baseUrl: string;
  /** Every request, in order: method, path (`/api/v0` left out), query and JSON body. */
  readonly requests: {
    method: string;
    path: string;
    query: URLSearchParams;
    body: unknown;
  }[] = [];
  /** Every `PUT /asks/{id}/` answers 410: no capacity anywhere. */
  noCapacity = false;
  /** Offers whose `PUT /asks/{id}/` answers 410 (taken by someone else). */
  readonly gone = new Set<number>();
  /** `DELETE /instances/{id}/` answers 500. */
  failDestroy = false;
  /**
   * How many of the next `DELETE /instances/{id}/` answer 200 `{ success:
   * false, msg }` and destroy nothing; `Infinity` for all of them.
   */
  refuseDestroys = 0;
  /**
   * How many of the next `PUT /asks/{id}/` make the instance and then drop
   * the connection instead of answering.
   */
  dropCreates = 0;
  /** `GET /api/v1/instances/` answers `instances: null` for an empty list. */
  nullLists = false;
  /** Rows per page of `GET /api/v1/instances/` (the CLI asks for 25). */
  pageSize = 25;
  /** Address fields come with surrounding whitespace. */
  paddedAddresses = false;
  /** `GET /api/v1/instances/` answers 500. */
  failListing = false;
  /** How many of the next requests answer 429. */
  rateLimited = 0;
  /** Whether instances report port 22 mapped on their public address. */
  directPorts = true;
  /** The SSH proxy instances report; without it, their own address and port 22. */
  proxy?: { host: string; port: number };
  /** The offers listed. */
  readonly offers: FakeVastOffer[];

  #server: Deno.HttpServer;
  #hosts: FakeHost[];
  #bootMs: number;
  #instances = new Map<number, FakeVastInstance>();
  #keys = new Map<number, { id: number; key: string; created_at: string }>();
  #seq = 0;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #fileOps: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(server: Deno.HttpServer, options: FakeVastAIOptions) {
    this.#server = server;
    const addr = server.addr as Deno.NetAddr;
    this.baseUrl = `http://127.0.0.1:${addr.port}/api/v0`;
    this.#hosts = options.hosts ?? [];
    this.#bootMs = options.bootMs ?? 200;
    this.offers = options.offers ?? defaultOffers();
  }

  /**
   * Starts the fake on a free port of 127.0.0.1.
   *
   * @param options The hosts to hand out, the offers and the boot delay.
   * @returns The running fake.
   */
  static start(options: FakeVastAIOptions = {}): Promise<FakeVastAI> {
    const ref: { fake?: FakeVastAI } = {};
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => ref.fake!.#handle(request),
    );
    ref.fake = new FakeVastAI(server, options);
    return Promise.resolve(ref.fake);
  }

  /** Every instance made, destroyed ones included. */
  get instances(): FakeVastInstance[] {
    return [...this.#instances.values()];
  }

  /** Instances not destroyed. */
  get live(): FakeVastInstance[] {
    return this.instances.filter((i) => !i.destroyed);
  }

  /** The account's SSH keys (public key lines). */
  get sshKeys(): string[] {
    return [...this.#keys.values()].map((k) => k.key);
  }

  /** The requests to paths matching a pattern, e.g. `PUT /asks/`. */
  calls(
    method: string,
    path: RegExp,
  ): { path: string; query: URLSearchParams; body: unknown }[] {
    return this.requests.filter((r) =>
      r.method === method && path.test(r.path)
    );
  }

  /**
   * Outbids an interruptible instance, as a higher bid does: it stops
   * (`exited`, intended `stopped`), its keys leave the host and the SSH
   * sessions of its pool (its label) on that host end.
   */
  async outbid(id: number): Promise<void> {
    const instance = this.#instances.get(id);
    if (!instance) throw new Error(`fake Vast.ai: no instance ${id}`);
    instance.actual_status = "exited";
    instance.intended_status = "stopped";
    await this.#release(instance);
    if (instance.host?.sshdPidPath && instance.label) {
      await killClusterSessions(instance.host, instance.label);
    }
  }

  /** Stops the server; every instance's keys leave its host. */
  async close(): Promise<void> {
    this.#closed = true;
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

  #json(status: number, body: unknown): Response {
    return new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json" },
    });
  }

  #error(status: number, error: string, msg: string, extra = {}): Response {
    return this.#json(status, { success: false, error, msg, ...extra });
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const text = await request.text();
    let body: unknown = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        return this.#error(400, "bad_request", "body is not JSON");
      }
    }
    const path = url.pathname.replace(/^\/api\/v0/, "");
    this.requests.push({
      method: request.method,
      path,
      query: url.searchParams,
      body,
    });
    if (this.rateLimited > 0) {
      this.rateLimited--;
      return this.#json(429, { detail: "API requests too frequent" });
    }
    const auth = request.headers.get("authorization");
    const key = auth?.startsWith("Bearer ")
      ? auth.slice(7)
      : url.searchParams.get("api_key");
    if (key !== TEST_VAST_KEY) {
      return this.#error(
        401,
        "auth_error",
        key ? "Invalid user key" : "Authentication required",
      );
    }
    try {
      return await this.#route(request.method, path, body, url);
    } catch (error) {
      if (error instanceof BadRequest) {
        return this.#error(error.status, error.code, error.message);
      }
      return this.#error(500, "server_error", `fake Vast.ai: ${error}`);
    }
  }

  async #route(
    method: string,
    path: string,
    body: unknown,
    url: URL,
  ): Promise<Response> {
    let m: RegExpExecArray | null;
    if (method === "GET" && path === "/users/current/") {
      return this.#json(200, {
        id: 4242,
        email: "skyward@example.com",
        credit: 25.5,
        balance: 0,
      });
    }
    if (path === "/bundles/" && (method === "POST" || method === "GET")) {
      const query = method === "POST"
        ? body
        : JSON.parse(url.searchParams.get("q") ?? "{}");
      return this.#json(200, { offers: this.#search(query as Filter) });
    }
    if (method === "PUT" && (m = /^\/asks\/(\d+)\/$/.exec(path))) {
      const response = this.#create(Number(m[1]), (body ?? {}) as Filter);
      if (response.ok && this.dropCreates > 0) {
        this.dropCreates--;
        // The instance exists; the client never hears of it.
        return new Response(
          new ReadableStream({
            start: (c) => c.error(new Error("connection dropped")),
          }),
          { status: 200, headers: { "content-type": "application/json" } },
        );
      }
      return response;
    }
    if (method === "GET" && path === "/api/v1/instances/") {
      return this.#listV1(url.searchParams);
    }
    if (method === "GET" && path === "/instances/") {
      const list = this.live.map((i) => this.#view(i));
      return this.#json(200, { instances_found: list.length, instances: list });
    }
    if ((m = /^\/instances\/(\d+)\/$/.exec(path))) {
      const instance = this.#instances.get(Number(m[1]));
      if (method === "GET") {
        if (!instance || instance.destroyed) {
          return this.#json(200, { instances: null });
        }
        return this.#json(200, { instances: this.#view(instance) });
      }
      if (method === "DELETE") {
        if (this.failDestroy) {
          return this.#error(500, "server_error", "Internal error, try again");
        }
        if (this.refuseDestroys > 0 && instance && !instance.destroyed) {
          this.refuseDestroys--;
          return this.#json(200, {
            success: false,
            error: "busy",
            msg: "Instance is busy with another operation, try again later",
          });
        }
        if (!instance || instance.destroyed) {
          return this.#error(404, "no_such_instance", "Instance not found");
        }
        instance.destroyed = true;
        await this.#release(instance);
        return this.#json(200, { success: true });
      }
    }
    if (path === "/ssh/" && method === "GET") {
      return this.#json(
        200,
        [...this.#keys.values()].map((k) => ({
          id: k.id,
          user_id: 4242,
          key: k.key,
          created_at: k.created_at,
          deleted_at: null,
        })),
      );
    }
    if (path === "/ssh/" && method === "POST") {
      const sshKey = (body as { ssh_key?: unknown })?.ssh_key;
      if (typeof sshKey !== "string" || !/^ssh-[a-z0-9-]+ \S+/.test(sshKey)) {
        throw new BadRequest("ssh_key must be an OpenSSH public key line");
      }
      const key = {
        id: ++this.#seq,
        key: sshKey.trim(),
        created_at: new Date().toISOString(),
      };
      this.#keys.set(key.id, key);
      return this.#json(200, {
        success: true,
        key: {
          id: key.id,
          user_id: 4242,
          public_key: key.key,
          created_at: key.created_at,
          deleted_at: null,
        },
      });
    }
    if (method === "DELETE" && (m = /^\/ssh\/(\d+)\/$/.exec(path))) {
      if (!this.#keys.delete(Number(m[1]))) {
        return this.#error(404, "no_such_key", "SSH key not found");
      }
      return this.#json(200, { success: true });
    }
    return this.#error(404, "not_found", `no route ${method} ${path}`);
  }

  #listV1(params: URLSearchParams): Response {
    if (this.failListing) {
      return this.#error(500, "server_error", "Internal error, try again");
    }
    const parse = (name: string, fallback: unknown) => {
      const text = params.get(name);
      if (text === null) return fallback;
      try {
        return JSON.parse(text);
      } catch {
        throw new BadRequest(`${name} must be JSON, got ${text}`);
      }
    };
    const filters = parse("select_filters", {}) as Record<string, Filter>;
    const order = parse("order_by", [{ col: "id", dir: "asc" }]) as {
      col: string;
      dir: string;
    }[];
    const limit = Math.min(Number(parse("limit", 25)), 25, this.pageSize);
    const after = params.get("after_token");
    let rows = this.live.map((i) => this.#view(i));
    for (const [field, filter] of Object.entries(filters)) {
      rows = rows.filter((r) => matches(r[field], filter));
    }
    rows.sort((a, b) => {
      for (const { col, dir } of order) {
        const x = a[col] as number, y = b[col] as number;
        if (x !== y) return (x < y ? -1 : 1) * (dir === "desc" ? -1 : 1);
      }
      return 0;
    });
    const start = after === null ? 0 : Number(atob(after));
    const page = rows.slice(start, start + limit);
    const next = start + limit < rows.length
      ? btoa(String(start + limit))
      : null;
    return this.#json(200, {
      instances: page.length === 0 && this.nullLists ? null : page,
      next_token: next,
      total_instances: rows.length,
    });
  }

  #search(query: Filter): FakeVastOffer[] {
    const reserved = new Set([
      "type",
      "order",
      "limit",
      "allocated_storage",
      "disable_bundling",
    ]);
    const type = query.type ?? "on-demand";
    if (!["on-demand", "bid", "reserved"].includes(type as string)) {
      throw new BadRequest(`type must be on-demand, bid or reserved`);
    }
    const busy = new Set(this.live.map((i) => i.offerId));
    let found = this.offers.map((o) => ({ ...o, rented: busy.has(o.id) }))
      .filter((o) =>
        Object.entries(query).every(([field, filter]) => {
          if (reserved.has(field)) return true;
          if (!filter || typeof filter !== "object" || Array.isArray(filter)) {
            throw new BadRequest(`filter ${field} must be { op: value }`);
          }
          if (!(field in o)) return true;
          return matches(o[field as keyof FakeVastOffer], filter as Filter);
        })
      );
    const order = (query.order as [string, string][] | undefined) ??
      [["dph_total", "asc"]];
    found = found.sort((a, b) => {
      for (const [field, dir] of order) {
        const x = a[field as keyof FakeVastOffer] as number;
        const y = b[field as keyof FakeVastOffer] as number;
        if (x !== y) return (x < y ? -1 : 1) * (dir === "desc" ? -1 : 1);
      }
      return 0;
    });
    return found.slice(0, Number(query.limit ?? 64));
  }

  #create(offerId: number, body: Filter): Response {
    const offer = this.offers.find((o) => o.id === offerId);
    if (!offer) {
      return this.#error(404, "no_such_ask", `Offer ${offerId} not found`, {
        ask_id: offerId,
      });
    }
    if (typeof body.image !== "string" || !body.image) {
      throw new BadRequest("image is required");
    }
    if (body.disk !== undefined && Number(body.disk) < 8) {
      throw new BadRequest("disk must be at least 8 GB");
    }
    if (typeof body.onstart === "string" && body.onstart.length > 4048) {
      throw new BadRequest("onstart is limited to 4048 characters");
    }
    const taken = this.live.some((i) => i.offerId === offerId);
    const used = new Set(this.live.map((i) => i.host?.address));
    const host = this.#hosts.find((h) => !used.has(h.address));
    if (this.noCapacity || this.gone.has(offerId) || taken || !host) {
      return this.#error(
        410,
        "no_such_ask",
        `Instance type ${offerId} is no longer available`,
        { ask_id: offerId },
      );
    }
    const isBid = body.price !== undefined;
    if (isBid && !(Number(body.price) >= offer.min_bid)) {
      return this.#error(
        400,
        "invalid_args",
        `Bid ${body.price} is below the minimum bid ${offer.min_bid}`,
        { ask_id: offerId },
      );
    }
    const instance: FakeVastInstance = {
      id: 5_000_000 + ++this.#seq,
      offerId,
      request: body,
      label: typeof body.label === "string" ? body.label : null,
      actual_status: "loading",
      intended_status: "running",
      is_bid: isBid,
      host,
      keys: [...this.#keys.values()].map((k) => k.key),
      destroyed: false,
      startDate: Date.now() / 1000,
    };
    this.#instances.set(instance.id, instance);
    this.#later(this.#bootMs, async () => {
      if (instance.destroyed || instance.actual_status !== "loading") return;
      await this.#authorize(instance);
      instance.actual_status = "running";
    });
    return this.#json(200, { success: true, new_contract: instance.id });
  }

  #view(i: FakeVastInstance): Record<string, unknown> {
    const offer = this.offers.find((o) => o.id === i.offerId)!;
    const running = i.actual_status === "running";
    const pad = (text: string | null | undefined) =>
      text && this.paddedAddresses ? ` ${text}\n` : text;
    const runtype = String(i.request.runtype ?? "ssh").split(/\s+/);
    const direct = runtype.includes("ssh_direc") && this.directPorts;
    const proxied = runtype.includes("ssh_proxy") || runtype.includes("ssh");
    const env = (i.request.env ?? {}) as Record<string, string>;
    return {
      id: i.id,
      label: i.label,
      actual_status: i.actual_status,
      intended_status: i.intended_status,
      cur_state: running ? "running" : "stopped",
      status_msg: running ? "success, running" : null,
      image_uuid: i.request.image,
      onstart: i.request.onstart ?? null,
      machine_id: offer.machine_id,
      gpu_name: offer.gpu_name,
      num_gpus: offer.num_gpus,
      is_bid: i.is_bid,
      dph_total: offer.dph_total,
      image_runtype: i.request.runtype ?? null,
      extra_env: Object.entries(env).map(([k, v]) => [k, String(v)]),
      start_date: i.startDate,
      // The proxy's address and port, as Vast.ai's `sshN.vast.ai` gives
      // them, when the runtype asked for the proxy.
      ssh_host: running && proxied
        ? pad(this.proxy?.host ?? i.host?.address)
        : null,
      ssh_port: running && proxied ? (this.proxy?.port ?? 22) : null,
      public_ipaddr: running ? pad(i.host?.address) : null,
      ports: running && direct
        ? { "22/tcp": [{ HostIp: "0.0.0.0", HostPort: "22" }] }
        : {},
    };
  }

  /** Runs changes of authorized_keys files one at a time. */
  #files(fn: () => Promise<void>): Promise<void> {
    const run = this.#fileOps.then(fn);
    this.#fileOps = run.catch(() => {});
    return run;
  }

  async #authorize(instance: FakeVastInstance): Promise<void> {
    const path = instance.host?.authorizedKeysPath;
    if (!path || this.#closed) return;
    await this.#files(async () => {
      const text = await Deno.readTextFile(path).catch(() => "");
      const lines = text.split("\n");
      const missing = instance.keys.map((k) =>
        `${k} fake-vastai:${instance.id}`
      ).filter((l) => !lines.includes(l));
      if (missing.length) {
        await Deno.writeTextFile(path, missing.map((l) => `${l}\n`).join(""), {
          append: true,
        });
      }
    });
  }

  async #release(instance: FakeVastInstance): Promise<void> {
    const path = instance.host?.authorizedKeysPath;
    if (!path) return;
    await this.#files(async () => {
      const text = await Deno.readTextFile(path).catch(() => "");
      const all = text.split("\n").filter(Boolean);
      const kept = all.filter((l) =>
        !l.endsWith(` fake-vastai:${instance.id}`)
      );
      if (kept.length !== all.length) {
        await Deno.writeTextFile(path, kept.map((l) => `${l}\n`).join(""));
      }
    });
  }
}
