/**
 * A local RunPod for tests: an HTTP server on 127.0.0.1 (or another local
 * address) that answers `POST /graphql` for the operations the RunPod
 * provider uses, written from RunPod's official clients and documentation:
 *
 * - runpodctl `api/pod.go`: `podTerminate(input: {podId: $podId})` with a
 *   `String!` variable (`RemovePod`), `podStop` likewise (`StopPod`), and
 *   `$input: PodFindAndDeployOnDemandInput!` (`CreatePod`);
 *   runpodctl `api/cloud.go`: `$input: GpuLowestPriceInput!`;
 *   runpodctl `internal/api/gpu.go` `ListDataCenters`: `dataCenters { id
 *   name location }`, with ids such as `EU-RO-1`, `EUR-IS-1`, `EUR-NO-1`,
 *   `US-TX-3` (runpodctl's `datacenter list` docs and RunPod's data center
 *   list); a deploy to an id not listed fails.
 * - runpod-python `runpod/api/queries/pods.py`: `pod(input: {podId: "..."})`
 *   and `myself { pods { ... } }`; `runpod/api/mutations/pods.py`: the
 *   deploy input's fields. The fake reads the pod id of `pod`,
 *   `podTerminate` and `podStop` from an inline input (literal or
 *   variable) or from an `$input` variable.
 * - Variable types: only those an official client or RunPod's GraphQL spec
 *   declares are known (`String`, `Int`, `Float`, `Boolean`, `ID`,
 *   `GpuLowestPriceInput`, `PodFindAndDeployOnDemandInput`,
 *   `PodRentInterruptableInput` — the spec's, cited by SkyPilot's
 *   `sky/provision/runpod/api/pods.py`); any other is refused with status
 *   400 and GraphQL's `Unknown type "…".`, as a GraphQL server validates a
 *   document, so a guessed type name fails here as it could at RunPod.
 * - Inside a pod, RunPod sets `RUNPOD_POD_ID` and a pod-scoped
 *   `RUNPOD_API_KEY` ("Manage Pods": `runpodctl stop pod $RUNPOD_POD_ID`
 *   from the pod); that key may stop or terminate its own pod and nothing
 *   else. The fake writes both, as the pod's command saves them, to the
 *   host's `tmpDir` when the host has one.
 *
 * - the GraphQL spec (graphql-spec.runpod.io): `gpuTypes` with
 *   `lowestPrice(input: GpuLowestPriceInput)` (`minimumBidPrice`,
 *   `uninterruptablePrice`, `minVcpu`, `minMemory`, `stockStatus`),
 *   `pod(input: { podId })` with `runtime { ports { ip isIpPublic
 *   privatePort publicPort type } }`, `myself { id clientBalance pods }`,
 *   `podFindAndDeployOnDemand`, `podRentInterruptable` (with `bidPerGpu`)
 *   and `podTerminate`;
 * - "Manage Pods" (docs.runpod.io/sdks/graphql/manage-pods): the deploy
 *   inputs (`cloudType`, `gpuCount`, `gpuTypeId`, `imageName`,
 *   `containerDiskInGb`, `volumeInGb`, `ports`, `dockerArgs`, `env` as
 *   `{ key, value }` pairs) and the answers' shapes;
 * - authentication by `Authorization: Bearer <key>` or `?api_key=<key>`;
 *   a refused key is status 401, as the official Python client expects.
 *   GraphQL errors come with status 200 and an `errors` list, data `null`.
 *
 * What is guessed rather than documented: the exact text of error messages
 * (the no-capacity one is the message RunPod users report: "There are no
 * longer any instances available with the requested specifications…"),
 * the body of a 401, and that prices are per GPU.
 *
 * Simplifications: only the root field of an operation is recognised (by
 * name) and answered in full, whatever the selection; inputs must come as
 * variables, which is how the provider sends them.
 *
 * Pods are rig hosts: a deploy takes a free host, authorises the pod's
 * `PUBLIC_KEY` on it (as the pod's command does in a real container) and
 * reports the host's address and SSH port as the public mapping of port 22.
 * Knobs: no capacity (spot or all), refuse the next requests with a status
 * (rate limits, 5xx), preempt a spot pod (its sessions end, its key goes).
 *
 * Test equipment only: nothing in the library imports it.
 *
 * @module
 */
import { type FakeHost, killClusterSessions } from "./ec2.ts";

/** The API key the fake accepts. */
export const TEST_RUNPOD_KEY = "rpa_SKYWARDFAKEKEY0000000000000000";

/** A rig host the fake hands out as a pod, with its SSH port. */
export interface RunPodFakeHost extends FakeHost {
  /** The port its sshd listens on. @default 22 */
  port?: number;
  /**
   * The directory that is the host's `/tmp`: the pod's command keeps the
   * pod's id and pod-scoped key there, and so does the fake.
   */
  tmpDir?: string;
}

/** A GPU type as the fake lists it; prices per GPU. */
export interface FakeGpuType {
  id: string;
  displayName: string;
  memoryInGb: number;
  maxGpuCount: number;
  securePrice: number;
  communityPrice: number;
  /** Lowest spot bid per GPU; none: no spot. */
  minimumBid?: number;
  /** `null`: out of stock. */
  stockStatus: "High" | "Medium" | "Low" | null;
}

/** The GPU types of the fake. */
export const FAKE_GPU_TYPES: readonly FakeGpuType[] = [
  {
    id: "NVIDIA GeForce RTX 4090",
    displayName: "RTX 4090",
    memoryInGb: 24,
    maxGpuCount: 8,
    securePrice: 0.69,
    communityPrice: 0.34,
    minimumBid: 0.2,
    stockStatus: "High",
  },
  {
    id: "NVIDIA RTX A4000",
    displayName: "RTX A4000",
    memoryInGb: 16,
    maxGpuCount: 8,
    securePrice: 0.32,
    communityPrice: 0.17,
    minimumBid: 0.09,
    stockStatus: "Medium",
  },
  {
    id: "NVIDIA A100 80GB PCIe",
    displayName: "A100 PCIe",
    memoryInGb: 80,
    maxGpuCount: 8,
    securePrice: 1.64,
    communityPrice: 1.19,
    minimumBid: 0.82,
    stockStatus: "Low",
  },
  {
    id: "NVIDIA A100-SXM4-80GB",
    displayName: "A100 SXM",
    memoryInGb: 80,
    maxGpuCount: 8,
    securePrice: 1.89,
    communityPrice: 1.39,
    minimumBid: 0.95,
    stockStatus: "High",
  },
  {
    id: "NVIDIA H100 80GB HBM3",
    displayName: "H100 SXM",
    memoryInGb: 80,
    maxGpuCount: 8,
    securePrice: 2.99,
    communityPrice: 2.69,
    stockStatus: "Low",
  },
  {
    id: "NVIDIA L40S",
    displayName: "L40S",
    memoryInGb: 48,
    maxGpuCount: 8,
    securePrice: 0.86,
    communityPrice: 0.79,
    minimumBid: 0.4,
    stockStatus: null,
  },
];

/** A pod as the fake keeps it. */
export interface FakePod {
  id: string;
  name: string;
  desiredStatus: "RUNNING" | "EXITED" | "TERMINATED";
  interruptible: boolean;
  bidPerGpu?: number;
  gpuTypeId: string;
  gpuCount: number;
  cloudType: string;
  imageName: string;
  dockerArgs?: string;
  ports?: string;
  containerDiskInGb?: number;
  env: Record<string, string>;
  costPerHr: number;
  host?: RunPodFakeHost;
  /** When the container's sshd starts answering. */
  readyAt: number;
  /** The pod-scoped API key RunPod sets in the pod as `RUNPOD_API_KEY`. */
  apiKey: string;
}

/** Options of {@linkcode FakeRunPod.start}. */
export interface FakeRunPodOptions {
  /** The machines to hand out. */
  hosts?: RunPodFakeHost[];
  /** How long a pod has no runtime after its deploy, in ms. @default 200 */
  bootMs?: number;
  /** The address to listen on. @default "127.0.0.1" */
  hostname?: string;
}

/** The input and scalar types the fake knows, with the source of each. */
const KNOWN_TYPES = new Set([
  "String",
  "Int",
  "Float",
  "Boolean",
  "ID",
  "GpuLowestPriceInput", // runpodctl api/cloud.go
  "PodFindAndDeployOnDemandInput", // runpodctl api/pod.go
  "PodRentInterruptableInput", // graphql-spec.runpod.io (SkyPilot's pods.py)
]);

/** The data centers the fake lists (RunPod's ids, several shapes). */
export const FAKE_DATA_CENTERS = [
  { id: "EU-RO-1", name: "EU-RO-1", location: "Europe" },
  { id: "EUR-IS-1", name: "EUR-IS-1", location: "Europe" },
  { id: "EUR-NO-1", name: "EUR-NO-1", location: "Europe" },
  { id: "US-TX-3", name: "US-TX-3", location: "United States" },
  { id: "CA-MTL-1", name: "CA-MTL-1", location: "Canada" },
];

const NO_CAPACITY =
  "There are no longer any instances available with the requested specifications. Please refresh and try again.";

class GraphqlError extends Error {}

/** The fake RunPod API. */
export class FakeRunPod implements AsyncDisposable {
  /** The URL to pass as `sky.RunPod({ baseUrl })`. */
  readonly baseUrl: string;
  /** Every request: the root field, its variables and how it authenticated. */
  readonly requests: {
    operation: string;
    variables: Record<string, unknown>;
    auth: "bearer" | "query" | "none";
    /** The pod whose pod-scoped key authenticated the request. */
    podKey?: string;
  }[] = [];
  /** `podRentInterruptable` fails for lack of capacity. */
  noSpotCapacity = false;
  /** Every deploy fails for lack of capacity. */
  noCapacity = false;
  /** How many of the next deploys make the pod and then drop the connection. */
  dropCreates = 0;
  /** `myself { pods }` is `null` when there are none. */
  nullLists = false;

  #server: Deno.HttpServer;
  #hosts: RunPodFakeHost[];
  #bootMs: number;
  #pods = new Map<string, FakePod>();
  #failures: number[] = [];
  #failAfterwards?: number;
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(server: Deno.HttpServer, options: FakeRunPodOptions) {
    this.#server = server;
    const addr = server.addr as Deno.NetAddr;
    this.baseUrl = `http://${addr.hostname}:${addr.port}`;
    this.#hosts = options.hosts ?? [];
    this.#bootMs = options.bootMs ?? 200;
  }

  /**
   * Starts the fake on a free port of 127.0.0.1.
   *
   * @param options The hosts to hand out and the boot delay.
   * @returns The running fake.
   */
  static start(options: FakeRunPodOptions = {}): Promise<FakeRunPod> {
    const ref: { fake?: FakeRunPod } = {};
    const server = Deno.serve(
      {
        hostname: options.hostname ?? "127.0.0.1",
        port: 0,
        onListen: () => {},
      },
      (request) => ref.fake!.#handle(request),
    );
    ref.fake = new FakeRunPod(server, options);
    return Promise.resolve(ref.fake);
  }

  /** Every pod ever deployed, in order. */
  get pods(): FakePod[] {
    return [...this.#pods.values()];
  }

  /** Pods not terminated. */
  get live(): FakePod[] {
    return this.pods.filter((p) => p.desiredStatus !== "TERMINATED");
  }

  /** The requests for one root field. */
  calls(operation: string): Record<string, unknown>[] {
    return this.requests.filter((r) => r.operation === operation).map((r) =>
      r.variables
    );
  }

  /** Answers the next requests with these statuses (e.g. 429, 503) before serving again. */
  failNext(...statuses: number[]): void {
    this.#failures.push(...statuses);
  }

  /**
   * Carries out the next request but answers it with this status, as when a
   * gateway fails after the API did the work.
   */
  failNextAfterwards(status: number): void {
    this.#failAfterwards = status;
  }

  /**
   * Takes a spot pod back, as RunPod does when outbid: the pod is stopped
   * (`EXITED`), its SSH sessions end and its key is no longer authorised.
   *
   * @param id The pod's id.
   */
  async preempt(id: string): Promise<void> {
    const pod = this.#pods.get(id);
    if (!pod) throw new Error(`fake RunPod: no pod ${id}`);
    pod.desiredStatus = "EXITED";
    await this.#release(pod, true);
  }

  /** Stops the server; every pod's key is removed from its host. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const pod of this.#pods.values()) await this.#release(pod, false);
    await this.#server.shutdown();
  }

  /** Closes the fake. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const json = (status: number, body: unknown) =>
      new Response(JSON.stringify(body), {
        status,
        headers: { "content-type": "application/json" },
      });
    if (url.pathname !== "/graphql" || request.method !== "POST") {
      return json(404, { error: `Cannot ${request.method} ${url.pathname}` });
    }
    const header = request.headers.get("authorization");
    const key = header?.startsWith("Bearer ")
      ? header.slice(7)
      : url.searchParams.get("api_key");
    const auth = header ? "bearer" : key ? "query" : "none";
    let body: { query?: string; variables?: Record<string, unknown> };
    try {
      body = await request.json();
    } catch {
      return json(400, { errors: [{ message: "Must provide query string." }] });
    }
    const query = body.query ?? "";
    if (!query.trim()) {
      return json(400, { errors: [{ message: "Must provide query string." }] });
    }
    const operation =
      /^\s*(?:(?:query|mutation)\b[^{]*)?\{\s*(\w+)/.exec(query)?.[1] ?? "";
    const variables = body.variables ?? {};
    const podKey = this.pods.find((p) => p.apiKey === key)?.id;
    this.requests.push({
      operation,
      variables,
      auth,
      ...(podKey ? { podKey } : {}),
    });
    // A GraphQL server validates the document first: unknown types fail.
    const head = /^\s*(?:query|mutation)\b[^{]*/.exec(query)?.[0] ?? "";
    for (const [, type] of head.matchAll(/\$\w+\s*:\s*\[?\s*(\w+)/g)) {
      if (!KNOWN_TYPES.has(type)) {
        return json(400, {
          errors: [{
            message: `Unknown type "${type}".`,
            extensions: { code: "GRAPHQL_VALIDATION_FAILED" },
          }],
        });
      }
    }
    const failure = this.#failures.shift();
    if (failure !== undefined) {
      return json(failure, {
        errors: [{
          message: failure === 429
            ? "Too many requests"
            : "Internal server error",
        }],
      });
    }
    const selfService = podKey !== undefined &&
      ["podTerminate", "podStop"].includes(operation) &&
      podIdOf(query, variables) === podKey;
    if (key !== TEST_RUNPOD_KEY && !selfService) {
      return json(401, { errors: [{ message: "Unauthorized" }] });
    }
    const run = this.#lock.then(() =>
      this.#operation(operation, query, variables)
    );
    this.#lock = run.catch(() => {});
    try {
      const data = { data: { [operation]: await run } };
      if (
        this.dropCreates > 0 &&
        ["podFindAndDeployOnDemand", "podRentInterruptable"].includes(
          operation,
        )
      ) {
        this.dropCreates--;
        // The pod exists; the client never hears of it.
        return new Response(
          new ReadableStream({
            start: (c) => c.error(new Error("connection dropped")),
          }),
          { status: 200, headers: { "content-type": "application/json" } },
        );
      }
      const status = this.#failAfterwards;
      if (status !== undefined) {
        this.#failAfterwards = undefined;
        return json(status, { errors: [{ message: "Bad gateway" }] });
      }
      return json(200, data);
    } catch (error) {
      if (error instanceof GraphqlError) {
        return json(200, {
          errors: [{ message: error.message, path: [operation] }],
          data: { [operation]: null },
        });
      }
      return json(500, { errors: [{ message: String(error) }] });
    }
  }

  async #operation(
    operation: string,
    query: string,
    variables: Record<string, unknown>,
  ): Promise<unknown> {
    switch (operation) {
      case "gpuTypes": {
        const name = /lowestPrice\s*\(\s*input:\s*\$(\w+)/.exec(query)?.[1];
        const input = (name ? variables[name] : undefined) as
          | { gpuCount?: number; secureCloud?: boolean }
          | undefined;
        return FAKE_GPU_TYPES.map((t) => this.#gpuType(t, input ?? {}));
      }
      case "myself":
        return {
          id: "user_fake0001",
          clientBalance: 42.5,
          pods: this.#pods.size === 0 && this.nullLists
            ? null
            : this.pods.map((p) => this.#pod(p)),
        };
      case "dataCenters":
        return FAKE_DATA_CENTERS;
      case "pod": {
        const pod = this.#pods.get(podIdOf(query, variables) ?? "");
        return pod ? this.#pod(pod) : null;
      }
      case "podStop": {
        const podId = podIdOf(query, variables);
        const pod = this.#pods.get(podId ?? "");
        if (!pod) throw new GraphqlError(`Pod ${podId} not found`);
        pod.desiredStatus = "EXITED";
        await this.#release(pod, true);
        return { id: pod.id, desiredStatus: pod.desiredStatus };
      }
      case "podFindAndDeployOnDemand":
      case "podRentInterruptable":
        return this.#pod(
          await this.#deploy(
            operation === "podRentInterruptable",
            (variables.input ?? {}) as Record<string, unknown>,
          ),
        );
      case "podTerminate": {
        const podId = podIdOf(query, variables);
        const pod = this.#pods.get(podId ?? "");
        if (!pod) throw new GraphqlError(`Pod ${podId} not found`);
        pod.desiredStatus = "TERMINATED";
        await this.#release(pod, true);
        return null;
      }
      default:
        throw new GraphqlError(
          `Cannot query field "${operation}" on type "Query".`,
        );
    }
  }

  #gpuType(
    type: FakeGpuType,
    input: { gpuCount?: number; secureCloud?: boolean },
  ): unknown {
    const count = input.gpuCount ?? 1;
    const available = type.stockStatus !== null && count <= type.maxGpuCount;
    const onDemand = input.secureCloud === true
      ? type.securePrice
      : input.secureCloud === false
      ? type.communityPrice
      : Math.min(type.securePrice, type.communityPrice);
    return {
      id: type.id,
      displayName: type.displayName,
      memoryInGb: type.memoryInGb,
      maxGpuCount: type.maxGpuCount,
      secureCloud: true,
      communityCloud: true,
      securePrice: type.securePrice,
      communityPrice: type.communityPrice,
      lowestPrice: {
        minimumBidPrice: available ? type.minimumBid ?? null : null,
        uninterruptablePrice: available ? onDemand : null,
        minVcpu: 8 * count,
        minMemory: 31 * count,
        stockStatus: available ? type.stockStatus : null,
      },
    };
  }

  #pod(pod: FakePod): unknown {
    const running = pod.desiredStatus === "RUNNING" &&
      Date.now() >= pod.readyAt;
    return {
      id: pod.id,
      name: pod.name,
      desiredStatus: pod.desiredStatus,
      imageName: pod.imageName,
      gpuCount: pod.gpuCount,
      costPerHr: pod.costPerHr,
      env: Object.entries(pod.env).map(([k, v]) => `${k}=${v}`),
      machineId: `machine-${pod.id.slice(0, 6)}`,
      runtime: running && pod.host
        ? {
          uptimeInSeconds: Math.floor((Date.now() - pod.readyAt) / 1000),
          ports: [{
            ip: pod.host.address,
            isIpPublic: true,
            privatePort: 22,
            publicPort: pod.host.port ?? 22,
            type: "tcp",
          }],
        }
        : null,
    };
  }

  async #deploy(
    interruptible: boolean,
    input: Record<string, unknown>,
  ): Promise<FakePod> {
    const gpuTypeId = String(input.gpuTypeId ?? "");
    const type = FAKE_GPU_TYPES.find((t) => t.id === gpuTypeId);
    if (!type) {
      throw new GraphqlError(`GPU type ${gpuTypeId} is not available.`);
    }
    for (const field of ["name", "imageName", "gpuCount", "cloudType"]) {
      if (input[field] === undefined) {
        throw new GraphqlError(
          `Variable "$input" got invalid value; Field "${field}" of required type was not provided.`,
        );
      }
    }
    if (!["ALL", "SECURE", "COMMUNITY"].includes(String(input.cloudType))) {
      throw new GraphqlError(
        `Variable "$input" got invalid value "${input.cloudType}" at "input.cloudType"; Value does not exist in "CloudTypeEnum" enum.`,
      );
    }
    if (
      input.dataCenterId != null &&
      !FAKE_DATA_CENTERS.some((d) => d.id === input.dataCenterId)
    ) {
      throw new GraphqlError(
        `Data center ${input.dataCenterId} does not exist.`,
      );
    }
    const count = Number(input.gpuCount);
    if (count > type.maxGpuCount) {
      throw new GraphqlError(
        `${gpuTypeId} is available with at most ${type.maxGpuCount} GPUs per pod.`,
      );
    }
    let bid: number | undefined;
    if (interruptible) {
      bid = Number(input.bidPerGpu);
      if (!Number.isFinite(bid)) {
        throw new GraphqlError(
          `Variable "$input" got invalid value; Field "bidPerGpu" of required type "Float!" was not provided.`,
        );
      }
      if (type.minimumBid === undefined) {
        throw new GraphqlError(NO_CAPACITY);
      }
      if (bid < type.minimumBid) {
        throw new GraphqlError(
          `Your bid price of $${bid}/hr is below the minimum bid price of $${type.minimumBid}/hr for ${gpuTypeId}.`,
        );
      }
    }
    if (
      this.noCapacity || (interruptible && this.noSpotCapacity) ||
      type.stockStatus === null
    ) {
      throw new GraphqlError(NO_CAPACITY);
    }
    const busy = new Set(this.live.map((p) => p.host).filter(Boolean));
    const host = this.#hosts.find((h) => !busy.has(h));
    if (!host && this.#hosts.length > 0) throw new GraphqlError(NO_CAPACITY);
    const env: Record<string, string> = {};
    for (const item of (input.env ?? []) as { key: string; value: string }[]) {
      env[item.key] = item.value;
    }
    const id = [...crypto.getRandomValues(new Uint8Array(7))]
      .map((b) => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("") +
      (this.#pods.size + 1).toString(36).padStart(7, "0");
    const pod: FakePod = {
      id: id.slice(0, 14),
      name: String(input.name),
      desiredStatus: "RUNNING",
      interruptible,
      ...(bid !== undefined ? { bidPerGpu: bid } : {}),
      gpuTypeId,
      gpuCount: count,
      cloudType: String(input.cloudType),
      imageName: String(input.imageName),
      ...(input.dockerArgs !== undefined
        ? { dockerArgs: String(input.dockerArgs) }
        : {}),
      ...(input.ports !== undefined ? { ports: String(input.ports) } : {}),
      ...(input.containerDiskInGb !== undefined
        ? { containerDiskInGb: Number(input.containerDiskInGb) }
        : {}),
      env,
      costPerHr: (bid ?? type.securePrice) * count,
      ...(host ? { host } : {}),
      readyAt: Date.now() + this.#bootMs,
      apiKey: `rpa_POD${
        [...crypto.getRandomValues(new Uint8Array(12))]
          .map((b) => (b % 36).toString(36).toUpperCase()).join("")
      }`,
    };
    this.#pods.set(pod.id, pod);
    await this.#authorize(pod);
    return pod;
  }

  /**
   * Authorises the pod's `PUBLIC_KEY` on its host and keeps the pod's id and
   * pod-scoped key in the host's `/tmp`, as its command does.
   */
  async #authorize(pod: FakePod): Promise<void> {
    const tmp = pod.host?.tmpDir;
    if (tmp && !this.#closed) {
      // World-readable here: the rig's login users are not root.
      await Deno.writeTextFile(
        `${tmp}/.skyward-runpod.env`,
        `export RUNPOD_POD_ID=${pod.id}\nexport RUNPOD_API_KEY=${pod.apiKey}\n`,
        { mode: 0o644 },
      );
    }
    const path = pod.host?.authorizedKeysPath;
    const key = pod.env.PUBLIC_KEY;
    if (!path || !key || this.#closed) return;
    const text = await Deno.readTextFile(path).catch(() => "");
    const line = `${key.trim()} fake-runpod:${pod.id}`;
    if (!text.split("\n").includes(line)) {
      await Deno.writeTextFile(path, `${line}\n`, { append: true });
    }
  }

  /** The pod's container goes: its key is removed and, if asked, its sessions end. */
  async #release(pod: FakePod, killSessions: boolean): Promise<void> {
    const host = pod.host;
    if (!host) return;
    if (host.tmpDir) {
      const file = `${host.tmpDir}/.skyward-runpod.env`;
      const text = await Deno.readTextFile(file).catch(() => "");
      if (text.includes(`RUNPOD_POD_ID=${pod.id}\n`)) {
        await Deno.remove(file).catch(() => {});
      }
    }
    const path = host.authorizedKeysPath;
    if (path) {
      const text = await Deno.readTextFile(path).catch(() => "");
      const lines = text.split("\n").filter(Boolean);
      const kept = lines.filter((l) => !l.endsWith(` fake-runpod:${pod.id}`));
      if (kept.length !== lines.length) {
        await Deno.writeTextFile(path, kept.map((l) => `${l}\n`).join(""));
      }
    }
    const cluster = pod.env.SKYWARD_CLUSTER;
    if (killSessions && cluster && host.sshdPidPath) {
      await killClusterSessions(host, cluster);
    }
  }
}

/**
 * The pod id of a `pod`, `podTerminate` or `podStop` document: from an inline
 * input (`input: {podId: $podId}` or `input: {podId: "…"}`, as runpodctl and
 * runpod-python write it) or from an `$input` variable.
 */
function podIdOf(
  query: string,
  variables: Record<string, unknown>,
): string | undefined {
  const inline = /input\s*:\s*\{[^}]*podId\s*:\s*(?:\$(\w+)|"([^"]*)")/.exec(
    query,
  );
  if (inline?.[1]) {
    const value = variables[inline[1]];
    return typeof value === "string" ? value : undefined;
  }
  if (inline?.[2] !== undefined) return inline[2];
  const input = variables.input as { podId?: unknown } | undefined;
  return typeof input?.podId === "string" ? input.podId : undefined;
}
