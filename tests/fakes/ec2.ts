/**
 * A local EC2 for tests: an HTTP server on 127.0.0.1 that speaks the EC2
 * Query/XML protocol (and the SSM and Price List JSON protocols) for the
 * calls the AWS provider makes, checks that every request is SigV4-signed
 * with the test credentials, keeps state, and hands out the SSH rig's hosts
 * as instances: `RunInstances` gives an instance a free rig host, its rig
 * address as public (and private) IP, and authorises the instance's key pair
 * on that host, as cloud-init does on a real machine.
 *
 * Knobs for tests: no spot (or no) capacity, terminate an instance now (a
 * spot interruption: its sessions are killed and its key removed), deny an
 * action, boot and shutdown delays.
 *
 * Test equipment only: nothing in the library imports it.
 *
 * @module
 */

/** The credentials the fake accepts, and signs nothing else. */
export const TEST_CREDENTIALS = {
  accessKeyId: "AKIDSKYWARDFAKE0001",
  secretAccessKey: "skyward/fake/secret/key/for/tests/only",
} as const;

/** A machine the fake can hand out as an instance (a rig host). */
export interface FakeHost {
  /** Its address; the instance's public and private IP. */
  address: string;
  /** The SSH login user on it. */
  user: string;
  /** Its SSH host key line, printed in the console output as cloud-init does. */
  hostKey?: string;
  /**
   * The `authorized_keys` file its sshd reads: the instance's key pair is
   * appended there while the instance lives. Without it keys are not
   * authorised.
   */
  authorizedKeysPath?: string;
  /** Pid file of its listening sshd, to find and end an instance's sessions. */
  sshdPidPath?: string;
}

/** Options of {@linkcode FakeEc2.start}. */
export interface FakeEc2Options {
  /** The machines to hand out. */
  hosts?: FakeHost[];
  /** The region the fake serves. @default "us-east-1" */
  region?: string;
  /** How long an instance stays `pending`, in ms. @default 200 */
  bootMs?: number;
  /** How long an instance stays `shutting-down`, in ms. @default 100 */
  shutdownMs?: number;
}

/** An instance as the fake keeps it. */
export interface FakeInstance {
  id: string;
  type: string;
  imageId: string;
  state: "pending" | "running" | "shutting-down" | "terminated";
  spot: boolean;
  zone: string;
  subnetId: string;
  keyName?: string;
  groupIds: string[];
  tags: Record<string, string>;
  userData?: string;
  host?: FakeHost;
  launchedAt: Date;
  metadataHttpTokens?: string;
  shutdownBehavior?: string;
  rootVolumeGb?: number;
  rootDevice?: string;
  instanceProfile?: string;
  clientToken?: string;
  /** Why it ended, when it did. */
  reason?: string;
  /** The public key authorised on its host. */
  publicKey?: string;
}

interface SecurityGroup {
  id: string;
  name: string;
  description: string;
  vpcId: string;
  tags: Record<string, string>;
  ingress: {
    protocol: string;
    from?: number;
    to?: number;
    cidrs: string[];
    groups: string[];
  }[];
}

interface KeyPair {
  id: string;
  name: string;
  publicKey: string;
  tags: Record<string, string>;
  createdAt: Date;
}

interface TypeInfo {
  type: string;
  vcpus: number;
  memoryMiB: number;
  arch: "x86_64" | "arm64";
  gpu?: { name: string; maker: string; count: number; memoryMiB: number };
  neuron?: { name: string; count: number; memoryMiB: number };
}

/** Instance types the fake knows, with GPUs and Neuron devices as EC2 reports them. */
export const FAKE_INSTANCE_TYPES: readonly TypeInfo[] = [
  { type: "t3.medium", vcpus: 2, memoryMiB: 4096, arch: "x86_64" },
  { type: "t3.large", vcpus: 2, memoryMiB: 8192, arch: "x86_64" },
  { type: "m5.large", vcpus: 2, memoryMiB: 8192, arch: "x86_64" },
  { type: "m5.xlarge", vcpus: 4, memoryMiB: 16384, arch: "x86_64" },
  { type: "c5.xlarge", vcpus: 4, memoryMiB: 8192, arch: "x86_64" },
  { type: "t4g.medium", vcpus: 2, memoryMiB: 4096, arch: "arm64" },
  {
    type: "g4dn.xlarge",
    vcpus: 4,
    memoryMiB: 16384,
    arch: "x86_64",
    gpu: { name: "T4", maker: "NVIDIA", count: 1, memoryMiB: 15360 },
  },
  {
    type: "g4dn.12xlarge",
    vcpus: 48,
    memoryMiB: 196608,
    arch: "x86_64",
    gpu: { name: "T4", maker: "NVIDIA", count: 4, memoryMiB: 15360 },
  },
  {
    type: "g5.xlarge",
    vcpus: 4,
    memoryMiB: 16384,
    arch: "x86_64",
    gpu: { name: "A10G", maker: "NVIDIA", count: 1, memoryMiB: 22888 },
  },
  {
    type: "g6.xlarge",
    vcpus: 4,
    memoryMiB: 16384,
    arch: "x86_64",
    gpu: { name: "L4", maker: "NVIDIA", count: 1, memoryMiB: 22888 },
  },
  {
    type: "p4d.24xlarge",
    vcpus: 96,
    memoryMiB: 1179648,
    arch: "x86_64",
    gpu: { name: "A100", maker: "NVIDIA", count: 8, memoryMiB: 40960 },
  },
  {
    type: "p4de.24xlarge",
    vcpus: 96,
    memoryMiB: 1179648,
    arch: "x86_64",
    gpu: { name: "A100", maker: "NVIDIA", count: 8, memoryMiB: 81920 },
  },
  {
    type: "p5.48xlarge",
    vcpus: 192,
    memoryMiB: 2097152,
    arch: "x86_64",
    gpu: { name: "H100", maker: "NVIDIA", count: 8, memoryMiB: 81920 },
  },
  {
    type: "trn1.2xlarge",
    vcpus: 8,
    memoryMiB: 32768,
    arch: "x86_64",
    neuron: { name: "Trainium", count: 1, memoryMiB: 32768 },
  },
  {
    type: "inf2.xlarge",
    vcpus: 4,
    memoryMiB: 16384,
    arch: "x86_64",
    neuron: { name: "Inferentia2", count: 1, memoryMiB: 32768 },
  },
];

/** Spot prices by type and zone suffix; p5.48xlarge has no spot market here. */
const SPOT_PRICES: Record<string, Record<string, number>> = {
  "t3.medium": { a: 0.0131, b: 0.0125 },
  "t3.large": { a: 0.0262, b: 0.0259 },
  "m5.large": { a: 0.0391, b: 0.0355 },
  "m5.xlarge": { a: 0.0782, b: 0.071 },
  "c5.xlarge": { a: 0.0689, b: 0.0702 },
  "t4g.medium": { a: 0.0101, b: 0.0099 },
  "g4dn.xlarge": { a: 0.2206, b: 0.1893 },
  "g4dn.12xlarge": { a: 1.6342, b: 1.7011 },
  "g5.xlarge": { a: 0.4118, b: 0.3897 },
  "g6.xlarge": { a: 0.3471, b: 0.3322 },
  "p4d.24xlarge": { a: 11.5714, b: 12.0012 },
  "p4de.24xlarge": { a: 15.9843 },
  "trn1.2xlarge": { a: 0.4563 },
  "inf2.xlarge": { a: 0.2312, b: 0.2291 },
};

const EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/";
const ACCOUNT = "000000000000";
const PARAMS_NS = "/aws/service/";

// ---------------------------------------------------------------------------
// SigV4

const encoder = new TextEncoder();

async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return hex(
    new Uint8Array(
      await crypto.subtle.digest("SHA-256", bytes as BufferSource),
    ),
  );
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function hmac(key: Uint8Array, data: string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(
    await crypto.subtle.sign("HMAC", k, encoder.encode(data)),
  );
}

function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Checks a request's SigV4 signature, independently of the SDK's signer.
 * Returns `null` when it is valid, else why not.
 */
export async function verifySigV4(
  request: { method: string; url: string; headers: Headers; body: Uint8Array },
  credentials: { accessKeyId: string; secretAccessKey: string },
  expect: { region: string; service: string },
): Promise<string | null> {
  const auth = request.headers.get("authorization");
  if (!auth) return "the request is not signed (no Authorization header)";
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/
      .exec(auth);
  if (!match) return `malformed Authorization header: ${auth}`;
  const [, keyId, day, region, service, signedHeaders, signature] = match;
  if (keyId !== credentials.accessKeyId) return `unknown access key ${keyId}`;
  if (region !== expect.region) {
    return `credential scope region ${region}, expected ${expect.region}`;
  }
  if (service !== expect.service) {
    return `credential scope service ${service}, expected ${expect.service}`;
  }
  const amzDate = request.headers.get("x-amz-date");
  if (!amzDate || !amzDate.startsWith(day)) {
    return "missing or inconsistent X-Amz-Date";
  }
  const when = Date.parse(
    amzDate.replace(
      /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/,
      "$1-$2-$3T$4:$5:$6Z",
    ),
  );
  if (!(Math.abs(Date.now() - when) < 15 * 60_000)) {
    return `X-Amz-Date ${amzDate} is too far from now`;
  }
  const names = signedHeaders.split(";");
  if (!names.includes("host")) return "the host header is not signed";
  const url = new URL(request.url);
  const canonicalHeaders = names.map((name) => {
    const value = name === "host"
      ? (request.headers.get("host") ?? url.host)
      : request.headers.get(name);
    if (value === null) return null;
    return `${name}:${value.trim().replace(/\s+/g, " ")}\n`;
  });
  if (canonicalHeaders.includes(null)) return "a signed header is missing";
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([a, x], [b, y]) =>
      a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0
    )
    .map(([k, v]) => `${k}=${v}`).join("&");
  const path =
    url.pathname.split("/").map((s) => uriEncode(decodeURIComponent(s))).join(
      "/",
    ) || "/";
  const payloadHash = await sha256Hex(request.body);
  const claimed = request.headers.get("x-amz-content-sha256");
  if (claimed && claimed !== payloadHash && claimed !== "UNSIGNED-PAYLOAD") {
    return "x-amz-content-sha256 does not match the body";
  }
  const canonical = [
    request.method,
    path,
    query,
    canonicalHeaders.join(""),
    signedHeaders,
    payloadHash,
  ].join("\n");
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = [
    "AWS4-HMAC-SHA256",
    amzDate,
    scope,
    await sha256Hex(canonical),
  ].join("\n");
  let key = await hmac(
    encoder.encode(`AWS4${credentials.secretAccessKey}`),
    day,
  );
  key = await hmac(key, region);
  key = await hmac(key, service);
  key = await hmac(key, "aws4_request");
  const expected = hex(await hmac(key, toSign));
  return expected === signature
    ? null
    : "The request signature we calculated does not match the signature you provided";
}

// ---------------------------------------------------------------------------
// Query parameters and XML

type Tree = { [key: string]: Tree | string };

/** `Filter.1.Value.2=x` → `{ Filter: { "1": { Value: { "2": "x" } } } }`. */
function parseQuery(body: string): Tree {
  const tree: Tree = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const parts = key.split(".");
    let node = tree;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (typeof next === "object") node = next;
      else node = node[part] = {};
    }
    node[parts[parts.length - 1]] = value;
  }
  return tree;
}

function list(node: Tree | string | undefined): (Tree | string)[] {
  if (node === undefined || typeof node === "string") {
    return node === undefined ? [] : [node];
  }
  return Object.keys(node).filter((k) => /^\d+$/.test(k)).sort((a, b) =>
    Number(a) - Number(b)
  )
    .map((k) => node[k]);
}

function str(node: Tree | string | undefined): string | undefined {
  return typeof node === "string" ? node : undefined;
}

function sub(
  node: Tree | string | undefined,
  key: string,
): Tree | string | undefined {
  return typeof node === "object" ? node[key] : undefined;
}

function strings(node: Tree | string | undefined): string[] {
  return list(node).filter((v): v is string => typeof v === "string");
}

function filters(params: Tree): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of list(params.Filter)) {
    const name = str(sub(f, "Name"));
    if (name) out.set(name, strings(sub(f, "Value")));
  }
  return out;
}

function tagsOf(params: Tree, resourceType: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const spec of list(params.TagSpecification)) {
    if (str(sub(spec, "ResourceType")) !== resourceType) continue;
    for (const tag of list(sub(spec, "Tag"))) {
      const key = str(sub(tag, "Key"));
      if (key) tags[key] = str(sub(tag, "Value")) ?? "";
    }
  }
  return tags;
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(
      /"/g,
      "&quot;",
    );
}

type XmlValue =
  | string
  | number
  | boolean
  | Date
  | undefined
  | null
  | XmlValue[]
  | {
    [key: string]: XmlValue;
  };

function xml(name: string, value: XmlValue): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) {
    return `<${name}>${value.map((v) => xml("item", v)).join("")}</${name}>`;
  }
  if (value instanceof Date) return `<${name}>${value.toISOString()}</${name}>`;
  if (typeof value === "object") {
    return `<${name}>${
      Object.entries(value).map(([k, v]) => xml(k, v)).join("")
    }</${name}>`;
  }
  return `<${name}>${escape(String(value))}</${name}>`;
}

function tagSet(tags: Record<string, string>): XmlValue[] {
  return Object.entries(tags).map(([key, value]) => ({ key, value }));
}

class Ec2Error extends Error {
  constructor(readonly code: string, message: string, readonly status = 400) {
    super(message);
  }
}

function matchesTags(
  tags: Record<string, string>,
  f: Map<string, string[]>,
): boolean {
  for (const [name, values] of f) {
    if (name === "tag-key" && !values.some((v) => v in tags)) return false;
    if (
      name.startsWith("tag:") && !values.includes(tags[name.slice(4)] ?? "\0")
    ) return false;
  }
  return true;
}

function wildcard(pattern: string): RegExp {
  return new RegExp(
    `^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`,
  );
}

const STATE_CODES = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
} as const;

// ---------------------------------------------------------------------------

/** A running fake EC2 (with SSM and Price List); see the module doc. */
export class FakeEc2 implements AsyncDisposable {
  /** The URL to pass as `sky.AWS({ endpoint })`. */
  readonly endpoint: string;
  /** The region it serves. */
  readonly region: string;
  /** Every request, in order: the action and its parameters. */
  readonly requests: {
    service: "ec2" | "ssm" | "pricing";
    action: string;
    params: Tree;
  }[] = [];
  /** Spot requests fail with `InsufficientInstanceCapacity`. */
  noSpotCapacity = false;
  /** Every launch fails with `InsufficientInstanceCapacity`. */
  noCapacity = false;

  #server: Deno.HttpServer;
  #hosts: FakeHost[];
  #bootMs: number;
  #shutdownMs: number;
  #denied = new Set<string>();
  #instances = new Map<string, FakeInstance>();
  #groups = new Map<string, SecurityGroup>();
  #keys = new Map<string, KeyPair>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #seq = 0;
  #lock: Promise<unknown> = Promise.resolve();

  private constructor(server: Deno.HttpServer, options: FakeEc2Options) {
    this.#server = server;
    const addr = server.addr as Deno.NetAddr;
    this.endpoint = `http://127.0.0.1:${addr.port}`;
    this.region = options.region ?? "us-east-1";
    this.#hosts = options.hosts ?? [];
    this.#bootMs = options.bootMs ?? 200;
    this.#shutdownMs = options.shutdownMs ?? 100;
  }

  /**
   * Starts the fake on a free port of 127.0.0.1.
   *
   * @param options The hosts to hand out, the region and delays.
   * @returns The running fake.
   */
  static start(options: FakeEc2Options = {}): Promise<FakeEc2> {
    const ref: { fake?: FakeEc2 } = {};
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => ref.fake!.#handle(request),
    );
    ref.fake = new FakeEc2(server, options);
    return Promise.resolve(ref.fake);
  }

  /** Makes calls needing this permission fail as unauthorised (e.g. `"ec2:RunInstances"`, `"iam:PassRole"`). */
  deny(permission: string): void {
    this.#denied.add(permission);
  }

  /** Lifts {@linkcode FakeEc2.deny}. */
  allow(permission: string): void {
    this.#denied.delete(permission);
  }

  /** The instances, in launch order. */
  get instances(): FakeInstance[] {
    return [...this.#instances.values()];
  }

  /** Instances not terminated (pending, running or shutting down). */
  get live(): FakeInstance[] {
    return this.instances.filter((i) => i.state !== "terminated");
  }

  /** Names of the security groups that exist (the default group aside). */
  get securityGroups(): string[] {
    return [...this.#groups.values()].map((g) => g.name);
  }

  /** Names of the key pairs that exist. */
  get keyPairs(): string[] {
    return [...this.#keys.values()].map((k) => k.name);
  }

  /** The requests of one action. */
  calls(action: string): Tree[] {
    return this.requests.filter((r) => r.action === action).map((r) =>
      r.params
    );
  }

  /**
   * Terminates an instance now, as a spot interruption does: its SSH
   * sessions on the host end and its key is no longer authorised.
   *
   * @param id The instance's id.
   */
  async preempt(id: string): Promise<void> {
    const instance = this.#instances.get(id);
    if (!instance) throw new Error(`fake EC2: no instance ${id}`);
    instance.reason =
      "Server.SpotInstanceTermination: Spot instance termination";
    await this.#terminate(instance, 0);
  }

  /** Stops the server; every instance's key is removed from its host. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    for (const instance of this.#instances.values()) {
      if (instance.host) await this.#release(instance, false);
    }
    await this.#server.shutdown();
  }

  /** Closes the fake. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** A fresh id like EC2's: the prefix and 17 hex digits, unique across fakes. */
  #id(prefix: string): string {
    const random = [...crypto.getRandomValues(new Uint8Array(8))]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${prefix}-${(++this.#seq).toString(16)}${random}`.slice(
      0,
      prefix.length + 18,
    );
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  async #handle(request: Request): Promise<Response> {
    const body = new Uint8Array(await request.arrayBuffer());
    const target = request.headers.get("x-amz-target") ?? "";
    const service = target.startsWith("AmazonSSM.")
      ? "ssm"
      : target.startsWith("AWSPriceListService.")
      ? "pricing"
      : "ec2";
    const problem = await verifySigV4(
      {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body,
      },
      TEST_CREDENTIALS,
      {
        region: service === "pricing" ? "us-east-1" : this.region,
        service: service === "pricing" ? "pricing" : service,
      },
    );
    if (service !== "ec2") return this.#json(service, target, body, problem);
    const params = parseQuery(new TextDecoder().decode(body));
    const action = str(params.Action) ?? "";
    this.requests.push({ service, action, params });
    const requestId = crypto.randomUUID();
    if (problem) {
      return this.#ec2Error(
        new Ec2Error(
          problem.startsWith("unknown access key")
            ? "AuthFailure"
            : "AuthFailure",
          `AWS was not able to validate the provided access credentials (${problem})`,
          401,
        ),
        requestId,
      );
    }
    // One action at a time, as state changes must not interleave.
    const run = this.#lock.then(() => this.#ec2(action, params));
    this.#lock = run.catch(() => {});
    try {
      const result = await run;
      const text =
        `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_NS}">` +
        `<requestId>${requestId}</requestId>${
          Object.entries(result).map(([k, v]) => xml(k, v)).join("")
        }</${action}Response>`;
      return new Response(text, {
        headers: { "content-type": "text/xml;charset=UTF-8" },
      });
    } catch (error) {
      if (error instanceof Ec2Error) return this.#ec2Error(error, requestId);
      return this.#ec2Error(
        new Ec2Error(
          "InternalError",
          `fake EC2: ${(error as Error).stack}`,
          500,
        ),
        requestId,
      );
    }
  }

  #ec2Error(error: Ec2Error, requestId: string): Response {
    const text =
      `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${
        escape(error.code)
      }</Code><Message>${
        escape(error.message)
      }</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
    return new Response(text, {
      status: error.status,
      headers: { "content-type": "text/xml;charset=UTF-8" },
    });
  }

  #unauthorized(permission: string, resource = "*"): never {
    throw new Ec2Error(
      "UnauthorizedOperation",
      `You are not authorized to perform this operation. User: arn:aws:iam::${ACCOUNT}:user/skyward-test ` +
        `is not authorized to perform: ${permission} on resource: ${resource} because no identity-based ` +
        `policy allows the ${permission} action. Encoded authorization failure message: ${
          btoa(permission).replace(/=/g, "")
        }`,
      403,
    );
  }

  async #ec2(action: string, params: Tree): Promise<Record<string, XmlValue>> {
    if (this.#denied.has(`ec2:${action}`)) this.#unauthorized(`ec2:${action}`);
    switch (action) {
      case "DescribeInstanceTypes":
        return this.#describeInstanceTypes(params);
      case "DescribeSpotPriceHistory":
        return this.#describeSpotPriceHistory(params);
      case "DescribeVpcs":
        return this.#describeVpcs(params);
      case "DescribeSubnets":
        return this.#describeSubnets(params);
      case "DescribeImages":
        return this.#describeImages(params);
      case "CreateSecurityGroup":
        return this.#createSecurityGroup(params);
      case "DescribeSecurityGroups":
        return this.#describeSecurityGroups(params);
      case "AuthorizeSecurityGroupIngress":
        return this.#authorizeIngress(params);
      case "DeleteSecurityGroup":
        return this.#deleteSecurityGroup(params);
      case "ImportKeyPair":
        return this.#importKeyPair(params);
      case "DescribeKeyPairs":
        return this.#describeKeyPairs(params);
      case "DeleteKeyPair":
        return this.#deleteKeyPair(params);
      case "RunInstances":
        return await this.#runInstances(params);
      case "DescribeInstances":
        return this.#describeInstances(params);
      case "TerminateInstances":
        return await this.#terminateInstances(params);
      case "GetConsoleOutput":
        return this.#getConsoleOutput(params);
      default:
        throw new Ec2Error(
          "InvalidAction",
          `The action ${action} is not valid for this web service.`,
        );
    }
  }

  #describeInstanceTypes(params: Tree): Record<string, XmlValue> {
    const f = filters(params);
    const wanted = strings(params.InstanceType);
    const patterns = (f.get("instance-type") ?? []).map(wildcard);
    const arch = f.get("processor-info.supported-architecture");
    let types = FAKE_INSTANCE_TYPES.filter((t) =>
      (wanted.length === 0 || wanted.includes(t.type)) &&
      (patterns.length === 0 || patterns.some((p) => p.test(t.type))) &&
      (!arch || arch.includes(t.arch))
    );
    const max = Number(str(params.MaxResults) ?? 100);
    const start = Number(str(params.NextToken) ?? 0);
    const next = start + max < types.length ? String(start + max) : undefined;
    types = types.slice(start, start + max);
    return {
      instanceTypeSet: types.map((t) => ({
        instanceType: t.type,
        currentGeneration: true,
        supportedUsageClasses: SPOT_PRICES[t.type]
          ? ["on-demand", "spot"]
          : ["on-demand"],
        processorInfo: { supportedArchitectures: [t.arch] },
        vCpuInfo: { defaultVCpus: t.vcpus },
        memoryInfo: { sizeInMiB: t.memoryMiB },
        gpuInfo: t.gpu
          ? {
            gpus: [{
              name: t.gpu.name,
              manufacturer: t.gpu.maker,
              count: t.gpu.count,
              memoryInfo: { sizeInMiB: t.gpu.memoryMiB },
            }],
            totalGpuMemoryInMiB: t.gpu.count * t.gpu.memoryMiB,
          }
          : undefined,
        neuronInfo: t.neuron
          ? {
            neuronDevices: [{
              name: t.neuron.name,
              count: t.neuron.count,
              memoryInfo: { sizeInMiB: t.neuron.memoryMiB },
            }],
            totalNeuronDeviceMemoryInMiB: t.neuron.count * t.neuron.memoryMiB,
          }
          : undefined,
      })),
      nextToken: next,
    };
  }

  #describeSpotPriceHistory(params: Tree): Record<string, XmlValue> {
    const types = strings(params.InstanceType);
    const items: XmlValue[] = [];
    for (const [type, zones] of Object.entries(SPOT_PRICES)) {
      if (types.length > 0 && !types.includes(type)) continue;
      for (const [zone, price] of Object.entries(zones)) {
        items.push({
          availabilityZone: `${this.region}${zone}`,
          instanceType: type,
          productDescription: "Linux/UNIX",
          spotPrice: price.toFixed(6),
          timestamp: new Date(Date.now() - 3_600_000),
        });
      }
    }
    return { spotPriceHistorySet: items, nextToken: "" };
  }

  #describeVpcs(_params: Tree): Record<string, XmlValue> {
    return {
      vpcSet: [{
        vpcId: "vpc-0fake0000000000001",
        state: "available",
        cidrBlock: "172.31.0.0/16",
        isDefault: true,
        ownerId: ACCOUNT,
      }],
    };
  }

  #subnets() {
    return ["a", "b"].map((z, i) => ({
      subnetId: `subnet-0fake00000000000${i + 1}`,
      vpcId: "vpc-0fake0000000000001",
      availabilityZone: `${this.region}${z}`,
      cidrBlock: `172.31.${i * 16}.0/20`,
      defaultForAz: true,
      mapPublicIpOnLaunch: true,
      state: "available",
      availableIpAddressCount: 4091,
    }));
  }

  #describeSubnets(params: Tree): Record<string, XmlValue> {
    const ids = strings(params.SubnetId);
    return {
      subnetSet: this.#subnets().filter((s) =>
        ids.length === 0 || ids.includes(s.subnetId)
      ),
    };
  }

  #images() {
    return [
      {
        id: "ami-0fakeubuntu2404x86",
        name: "ubuntu-noble-24.04-amd64-server",
        arch: "x86_64",
        size: 8,
      },
      {
        id: "ami-0fakeubuntu2404arm",
        name: "ubuntu-noble-24.04-arm64-server",
        arch: "arm64",
        size: 8,
      },
      {
        id: "ami-0fakedlaminvidia01",
        name: "Deep Learning OSS Nvidia Driver AMI GPU",
        arch: "x86_64",
        size: 75,
      },
      {
        id: "ami-0fakedlamineuron01",
        name: "Deep Learning AMI Neuron",
        arch: "x86_64",
        size: 100,
      },
    ];
  }

  #describeImages(params: Tree): Record<string, XmlValue> {
    const ids = strings(params.ImageId);
    const missing = ids.filter((id) =>
      !this.#images().some((i) => i.id === id)
    );
    if (missing.length > 0) {
      throw new Ec2Error(
        "InvalidAMIID.NotFound",
        `The image id '[${missing.join(", ")}]' does not exist`,
      );
    }
    return {
      imagesSet: this.#images().filter((i) =>
        ids.length === 0 || ids.includes(i.id)
      ).map((i) => ({
        imageId: i.id,
        name: i.name,
        architecture: i.arch,
        imageState: "available",
        rootDeviceName: "/dev/sda1",
        rootDeviceType: "ebs",
        blockDeviceMapping: [{
          deviceName: "/dev/sda1",
          ebs: {
            snapshotId: "snap-0fake",
            volumeSize: i.size,
            volumeType: "gp3",
            deleteOnTermination: true,
          },
        }],
      })),
    };
  }

  #createSecurityGroup(params: Tree): Record<string, XmlValue> {
    const name = str(params.GroupName);
    const vpcId = str(params.VpcId) ?? "vpc-0fake0000000000001";
    if (!name) {
      throw new Ec2Error(
        "MissingParameter",
        "The request must contain the parameter groupName",
      );
    }
    if (
      [...this.#groups.values()].some((g) =>
        g.name === name && g.vpcId === vpcId
      )
    ) {
      throw new Ec2Error(
        "InvalidGroup.Duplicate",
        `The security group '${name}' already exists for VPC '${vpcId}'`,
      );
    }
    const group: SecurityGroup = {
      id: this.#id("sg"),
      name,
      description: str(params.GroupDescription) ?? "",
      vpcId,
      tags: tagsOf(params, "security-group"),
      ingress: [],
    };
    this.#groups.set(group.id, group);
    return { groupId: group.id, tagSet: tagSet(group.tags) };
  }

  #describeSecurityGroups(params: Tree): Record<string, XmlValue> {
    const f = filters(params);
    const ids = strings(params.GroupId);
    for (const id of ids) {
      if (!this.#groups.has(id)) {
        throw new Ec2Error(
          "InvalidGroup.NotFound",
          `The security group '${id}' does not exist`,
        );
      }
    }
    const groups = [...this.#groups.values()].filter((g) =>
      (ids.length === 0 || ids.includes(g.id)) &&
      (!f.has("group-name") || f.get("group-name")!.includes(g.name)) &&
      (!f.has("vpc-id") || f.get("vpc-id")!.includes(g.vpcId)) &&
      matchesTags(g.tags, f)
    );
    return {
      securityGroupInfo: groups.map((g) => ({
        groupId: g.id,
        groupName: g.name,
        groupDescription: g.description,
        vpcId: g.vpcId,
        ownerId: ACCOUNT,
        tagSet: tagSet(g.tags),
        ipPermissions: g.ingress.map((r) => ({
          ipProtocol: r.protocol,
          fromPort: r.from,
          toPort: r.to,
          ipRanges: r.cidrs.map((cidrIp) => ({ cidrIp })),
          groups: r.groups.map((groupId) => ({ groupId, userId: ACCOUNT })),
        })),
      })),
    };
  }

  #authorizeIngress(params: Tree): Record<string, XmlValue> {
    const id = str(params.GroupId) ?? "";
    const group = this.#groups.get(id);
    if (!group) {
      throw new Ec2Error(
        "InvalidGroup.NotFound",
        `The security group '${id}' does not exist`,
      );
    }
    for (const p of list(params.IpPermissions)) {
      const rule = {
        protocol: str(sub(p, "IpProtocol")) ?? "-1",
        from: str(sub(p, "FromPort")) === undefined
          ? undefined
          : Number(str(sub(p, "FromPort"))),
        to: str(sub(p, "ToPort")) === undefined
          ? undefined
          : Number(str(sub(p, "ToPort"))),
        cidrs: list(sub(p, "IpRanges")).map((r) => str(sub(r, "CidrIp")) ?? ""),
        groups: list(sub(p, "Groups")).map((g) => str(sub(g, "GroupId")) ?? ""),
      };
      if (
        group.ingress.some((r) => JSON.stringify(r) === JSON.stringify(rule))
      ) {
        throw new Ec2Error(
          "InvalidPermission.Duplicate",
          "the specified rule already exists",
        );
      }
      group.ingress.push(rule);
    }
    return { return: true };
  }

  #deleteSecurityGroup(params: Tree): Record<string, XmlValue> {
    const id = str(params.GroupId) ?? "";
    const group = this.#groups.get(id);
    if (!group) {
      throw new Ec2Error(
        "InvalidGroup.NotFound",
        `The security group '${id}' does not exist`,
      );
    }
    if (
      this.instances.some((i) =>
        i.state !== "terminated" && i.groupIds.includes(id)
      )
    ) {
      throw new Ec2Error(
        "DependencyViolation",
        `resource ${id} has a dependent object`,
      );
    }
    this.#groups.delete(id);
    return { return: true, groupId: id };
  }

  #importKeyPair(params: Tree): Record<string, XmlValue> {
    const name = str(params.KeyName) ?? "";
    if ([...this.#keys.values()].some((k) => k.name === name)) {
      throw new Ec2Error(
        "InvalidKeyPair.Duplicate",
        `The keypair already exists`,
      );
    }
    const material = new TextDecoder().decode(
      Uint8Array.from(
        atob(str(params.PublicKeyMaterial) ?? ""),
        (c) => c.charCodeAt(0),
      ),
    ).trim();
    if (!/^ssh-(ed25519|rsa) [A-Za-z0-9+/=]+( .*)?$/.test(material)) {
      throw new Ec2Error(
        "InvalidKey.Format",
        "Key is not in valid OpenSSH public key format",
      );
    }
    const key: KeyPair = {
      id: this.#id("key"),
      name,
      publicKey: material.split(" ").slice(0, 2).join(" "),
      tags: tagsOf(params, "key-pair"),
      createdAt: new Date(),
    };
    this.#keys.set(key.id, key);
    return {
      keyFingerprint: "SHA256:fake",
      keyName: name,
      keyPairId: key.id,
      tagSet: tagSet(key.tags),
    };
  }

  #describeKeyPairs(params: Tree): Record<string, XmlValue> {
    const f = filters(params);
    const names = strings(params.KeyName);
    const ids = strings(params.KeyPairId);
    for (const name of names) {
      if (![...this.#keys.values()].some((k) => k.name === name)) {
        throw new Ec2Error(
          "InvalidKeyPair.NotFound",
          `The key pair '${name}' does not exist`,
        );
      }
    }
    const keys = [...this.#keys.values()].filter((k) =>
      (names.length === 0 || names.includes(k.name)) &&
      (ids.length === 0 || ids.includes(k.id)) && matchesTags(k.tags, f)
    );
    return {
      keySet: keys.map((k) => ({
        keyPairId: k.id,
        keyName: k.name,
        keyType: "ed25519",
        keyFingerprint: "SHA256:fake",
        createTime: k.createdAt,
        tagSet: tagSet(k.tags),
      })),
    };
  }

  #deleteKeyPair(params: Tree): Record<string, XmlValue> {
    const name = str(params.KeyName);
    const id = str(params.KeyPairId);
    const key = [...this.#keys.values()].find((k) =>
      k.name === name || k.id === id
    );
    if (key) this.#keys.delete(key.id);
    // EC2 answers success for a key pair that does not exist.
    return { return: true, keyPairId: key?.id };
  }

  async #runInstances(params: Tree): Promise<Record<string, XmlValue>> {
    const token = str(params.ClientToken);
    if (token) {
      const earlier = this.instances.filter((i) => i.clientToken === token);
      if (earlier.length > 0) return { ...this.#reservation(earlier) };
    }
    const type = str(params.InstanceType) ?? "m1.small";
    const info = FAKE_INSTANCE_TYPES.find((t) => t.type === type);
    if (!info) {
      throw new Ec2Error(
        "InvalidParameterValue",
        `Invalid value '${type}' for InstanceType.`,
      );
    }
    const imageId = str(params.ImageId) ?? "";
    if (!this.#images().some((i) => i.id === imageId)) {
      throw new Ec2Error(
        "InvalidAMIID.NotFound",
        `The image id '[${imageId}]' does not exist`,
      );
    }
    const profile = sub(params, "IamInstanceProfile");
    if (profile !== undefined && this.#denied.has("iam:PassRole")) {
      this.#unauthorized(
        "iam:PassRole",
        `arn:aws:iam::${ACCOUNT}:role/${str(sub(profile, "Name")) ?? "role"}`,
      );
    }
    const keyName = str(params.KeyName);
    const key = [...this.#keys.values()].find((k) => k.name === keyName);
    if (keyName && !key) {
      throw new Ec2Error(
        "InvalidKeyPair.NotFound",
        `The key pair '${keyName}' does not exist`,
      );
    }
    const nic = list(params.NetworkInterface)[0];
    const subnetId = str(sub(nic, "SubnetId")) ?? str(params.SubnetId) ??
      this.#subnets()[0].subnetId;
    const subnet = this.#subnets().find((s) => s.subnetId === subnetId);
    if (!subnet) {
      throw new Ec2Error(
        "InvalidSubnetID.NotFound",
        `The subnet ID '${subnetId}' does not exist`,
      );
    }
    const groupIds = [
      ...strings(sub(nic, "SecurityGroupId")),
      ...strings(params.SecurityGroupId),
    ];
    for (const id of groupIds) {
      if (!this.#groups.has(id)) {
        throw new Ec2Error(
          "InvalidGroup.NotFound",
          `The security group '${id}' does not exist`,
        );
      }
    }
    const spot =
      str(sub(params.InstanceMarketOptions, "MarketType")) === "spot";
    if (this.noCapacity || (spot && this.noSpotCapacity)) {
      throw new Ec2Error(
        "InsufficientInstanceCapacity",
        `We currently do not have sufficient ${type} capacity in the Availability Zone you requested ` +
          `(${subnet.availabilityZone}). Our system will be working on provisioning additional capacity.`,
      );
    }
    if (spot && !SPOT_PRICES[type]) {
      throw new Ec2Error(
        "Unsupported",
        `The requested instance type ${type} is not supported for Spot.`,
      );
    }
    const min = Number(str(params.MinCount) ?? 1);
    const max = Number(str(params.MaxCount) ?? 1);
    const busy = new Set(this.live.map((i) => i.host).filter(Boolean));
    const free = this.#hosts.filter((h) => !busy.has(h));
    if (free.length < min) {
      throw new Ec2Error(
        "InsufficientInstanceCapacity",
        `We currently do not have sufficient ${type} capacity in the Availability Zone you requested ` +
          `(${subnet.availabilityZone}): ${free.length} machine(s) free, ${min} asked.`,
      );
    }
    const userData = str(params.UserData);
    const mapping = list(params.BlockDeviceMapping)[0];
    const launched: FakeInstance[] = [];
    for (const host of free.slice(0, max)) {
      const instance: FakeInstance = {
        id: this.#id("i"),
        type,
        imageId,
        state: "pending",
        spot,
        zone: subnet.availabilityZone,
        subnetId,
        keyName,
        groupIds,
        tags: tagsOf(params, "instance"),
        userData: userData
          ? new TextDecoder().decode(
            Uint8Array.from(atob(userData), (c) => c.charCodeAt(0)),
          )
          : undefined,
        host,
        launchedAt: new Date(),
        metadataHttpTokens: str(sub(params.MetadataOptions, "HttpTokens")),
        shutdownBehavior: str(params.InstanceInitiatedShutdownBehavior),
        rootDevice: str(sub(mapping, "DeviceName")),
        rootVolumeGb: str(sub(sub(mapping, "Ebs"), "VolumeSize")) === undefined
          ? undefined
          : Number(str(sub(sub(mapping, "Ebs"), "VolumeSize"))),
        instanceProfile: str(sub(profile, "Name")) ?? str(sub(profile, "Arn")),
        clientToken: token,
      };
      this.#instances.set(instance.id, instance);
      if (key) {
        instance.publicKey = key.publicKey;
        await this.#authorize(instance);
      }
      this.#later(this.#bootMs, () => {
        if (instance.state === "pending") instance.state = "running";
      });
      launched.push(instance);
    }
    return this.#reservation(launched);
  }

  #reservation(instances: FakeInstance[]): Record<string, XmlValue> {
    return {
      reservationId: `r-${instances[0].id.slice(2)}`,
      ownerId: ACCOUNT,
      groupSet: [],
      instancesSet: instances.map((i) => this.#instanceXml(i)),
    };
  }

  #instanceXml(i: FakeInstance): XmlValue {
    const ip = i.state === "terminated" ? undefined : i.host?.address;
    return {
      instanceId: i.id,
      imageId: i.imageId,
      instanceState: { code: STATE_CODES[i.state], name: i.state },
      privateDnsName: ip ? `ip-${ip.replace(/\./g, "-")}.ec2.internal` : "",
      dnsName: "",
      reason: i.reason ?? "",
      keyName: i.keyName,
      amiLaunchIndex: 0,
      instanceType: i.type,
      launchTime: i.launchedAt,
      placement: { availabilityZone: i.zone, tenancy: "default" },
      subnetId: i.subnetId,
      vpcId: "vpc-0fake0000000000001",
      privateIpAddress: ip,
      ipAddress: ip,
      architecture: FAKE_INSTANCE_TYPES.find((t) => t.type === i.type)?.arch,
      rootDeviceType: "ebs",
      rootDeviceName: i.rootDevice ?? "/dev/sda1",
      groupSet: i.groupIds.map((groupId) => ({
        groupId,
        groupName: this.#groups.get(groupId)?.name,
      })),
      instanceLifecycle: i.spot ? "spot" : undefined,
      stateReason: i.reason
        ? { code: i.reason.split(":")[0], message: i.reason }
        : undefined,
      tagSet: tagSet(i.tags),
      metadataOptions: i.metadataHttpTokens
        ? {
          state: "applied",
          httpTokens: i.metadataHttpTokens,
          httpEndpoint: "enabled",
        }
        : undefined,
    };
  }

  #describeInstances(params: Tree): Record<string, XmlValue> {
    const ids = strings(params.InstanceId);
    const missing = ids.filter((id) => !this.#instances.has(id));
    if (missing.length > 0) {
      throw new Ec2Error(
        "InvalidInstanceID.NotFound",
        `The instance IDs '${missing.join(", ")}' do not exist`,
      );
    }
    const f = filters(params);
    const states = f.get("instance-state-name");
    const found = this.instances.filter((i) =>
      (ids.length === 0 || ids.includes(i.id)) &&
      (!states || states.includes(i.state)) && matchesTags(i.tags, f)
    );
    return {
      reservationSet: found.map((i) => this.#reservation([i])),
    };
  }

  async #terminateInstances(params: Tree): Promise<Record<string, XmlValue>> {
    const ids = strings(params.InstanceId);
    const missing = ids.filter((id) => !this.#instances.has(id));
    if (missing.length > 0) {
      throw new Ec2Error(
        "InvalidInstanceID.NotFound",
        `The instance IDs '${missing.join(", ")}' do not exist`,
      );
    }
    const changes: XmlValue[] = [];
    for (const id of ids) {
      const instance = this.#instances.get(id)!;
      const previous = instance.state;
      if (previous !== "terminated" && previous !== "shutting-down") {
        instance.reason = "User initiated";
        await this.#terminate(instance, this.#shutdownMs);
      }
      changes.push({
        instanceId: id,
        currentState: {
          code: STATE_CODES[instance.state],
          name: instance.state,
        },
        previousState: { code: STATE_CODES[previous], name: previous },
      });
    }
    return { instancesSet: changes };
  }

  #getConsoleOutput(params: Tree): Record<string, XmlValue> {
    const id = str(params.InstanceId) ?? "";
    const instance = this.#instances.get(id);
    if (!instance) {
      throw new Ec2Error(
        "InvalidInstanceID.NotFound",
        `The instance ID '${id}' does not exist`,
      );
    }
    const lines = [
      "[    0.000000] Linux version 6.8.0-1012-aws",
      "Cloud-init v. 24.1 running 'modules:final'",
    ];
    if (instance.state === "running" && instance.host?.hostKey) {
      lines.push(
        "-----BEGIN SSH HOST KEY KEYS-----",
        instance.host.hostKey,
        "-----END SSH HOST KEY KEYS-----",
      );
    }
    return {
      instanceId: id,
      timestamp: new Date(),
      output: btoa(lines.join("\n") + "\n"),
    };
  }

  async #terminate(instance: FakeInstance, delayMs: number): Promise<void> {
    instance.state = "shutting-down";
    await this.#release(instance, true);
    const done = () => {
      instance.state = "terminated";
    };
    if (delayMs === 0) done();
    else this.#later(delayMs, done);
  }

  /**
   * Authorises an instance's key on its host, as cloud-init does at first
   * boot, and keeps it there while the instance lives: a rig repaired by
   * another test process (\`rigUp\`) rewrites the file.
   */
  async #authorize(instance: FakeInstance): Promise<void> {
    const path = instance.host?.authorizedKeysPath;
    if (!path || !instance.publicKey) return;
    const line = `${instance.publicKey} fake-ec2:${instance.id}`;
    await this.#files(async () => {
      if (
        this.#closed ||
        (instance.state !== "pending" && instance.state !== "running")
      ) return;
      const text = await Deno.readTextFile(path).catch(() => "");
      if (!text.split("\n").includes(line)) {
        await Deno.writeTextFile(path, `${line}\n`, { append: true });
      }
    });
    if (!this.#watching && !this.#closed) {
      this.#watching = true;
      this.#later(100, () => this.#watch());
    }
  }

  #watching = false;
  #closed = false;
  #fileOps: Promise<unknown> = Promise.resolve();

  /** Runs changes of authorized_keys files one at a time. */
  #files(fn: () => Promise<void>): Promise<void> {
    const run = this.#fileOps.then(fn);
    this.#fileOps = run.catch(() => {});
    return run;
  }

  /** Re-authorises the keys of live instances that a rig repair removed. */
  async #watch(): Promise<void> {
    this.#watching = false;
    const live = this.live.filter((i) =>
      i.state !== "shutting-down" && i.publicKey
    );
    for (const instance of live) {
      await this.#authorize(instance).catch(() => {});
    }
  }

  /**
   * The machine goes away: its key is no longer authorised and, when
   * `killSessions`, the SSH sessions of its cluster on the host end.
   */
  async #release(instance: FakeInstance, killSessions: boolean): Promise<void> {
    const host = instance.host;
    if (!host) return;
    const path = host.authorizedKeysPath;
    if (path) {
      await this.#files(async () => {
        const text = await Deno.readTextFile(path).catch(() => "");
        const kept = text.split("\n").filter((l) =>
          l && !l.endsWith(` fake-ec2:${instance.id}`)
        );
        if (kept.length !== text.split("\n").filter(Boolean).length) {
          await Deno.writeTextFile(path, kept.map((l) => `${l}\n`).join(""));
        }
      });
    }
    const cluster = instance.tags["skyward:cluster"];
    if (killSessions && cluster && host.sshdPidPath) {
      await killClusterSessions(host, cluster);
    }
  }

  // -------------------------------------------------------------------------
  // SSM and Price List (JSON 1.1)

  async #json(
    service: "ssm" | "pricing",
    target: string,
    body: Uint8Array,
    problem: string | null,
  ): Promise<Response> {
    const action = target.split(".")[1];
    const params = JSON.parse(new TextDecoder().decode(body) || "{}");
    this.requests.push({ service, action, params });
    const reply = (status: number, value: unknown, type?: string) =>
      new Response(JSON.stringify(value), {
        status,
        headers: {
          "content-type": "application/x-amz-json-1.1",
          ...(type ? { "x-amzn-errortype": type } : {}),
        },
      });
    if (problem) {
      return reply(
        400,
        {
          __type: "UnrecognizedClientException",
          message:
            `The security token included in the request is invalid (${problem})`,
        },
        "UnrecognizedClientException",
      );
    }
    const permission = `${service === "ssm" ? "ssm" : "pricing"}:${action}`;
    if (this.#denied.has(permission)) {
      return reply(400, {
        __type: "AccessDeniedException",
        message:
          `User: arn:aws:iam::${ACCOUNT}:user/skyward-test is not authorized to perform: ${permission} ` +
          `on resource: arn:aws:ssm:${this.region}::parameter${
            params.Name ?? ""
          } because no identity-based policy allows the ${permission} action`,
      }, "AccessDeniedException");
    }
    if (service === "ssm" && action === "GetParameter") {
      const name = String(params.Name ?? "");
      const value = this.#parameter(name);
      if (!value) {
        return reply(400, {
          __type: "ParameterNotFound",
          message: `Parameter ${name} not found.`,
        }, "ParameterNotFound");
      }
      return reply(200, {
        Parameter: {
          Name: name,
          Type: "String",
          Value: value,
          Version: 1,
          DataType: "aws:ec2:image",
          ARN: `arn:aws:ssm:${this.region}::parameter${name}`,
          LastModifiedDate: Date.now() / 1000,
        },
      });
    }
    if (service === "pricing" && action === "GetProducts") {
      return reply(200, await pricingProducts(params));
    }
    return reply(400, {
      __type: "InvalidAction",
      message: `${target} is not implemented by the fake`,
    }, "InvalidAction");
  }

  #parameter(name: string): string | undefined {
    if (!name.startsWith(PARAMS_NS)) return undefined;
    if (name.includes("/deeplearning/") && name.includes("nvidia")) {
      return "ami-0fakedlaminvidia01";
    }
    if (name.includes("/neuron/")) return "ami-0fakedlamineuron01";
    if (name.includes("/canonical/ubuntu/") && name.includes("/arm64/")) {
      return "ami-0fakeubuntu2404arm";
    }
    if (name.includes("/canonical/ubuntu/") && name.includes("/amd64/")) {
      return "ami-0fakeubuntu2404x86";
    }
    return undefined;
  }
}

/** On-demand prices the fake's Price List answers with (per hour, USD). */
export const FAKE_ON_DEMAND: Record<string, number> = {
  "t3.medium": 0.0416,
  "m5.large": 0.096,
  "g4dn.xlarge": 0.526,
};

async function pricingProducts(params: {
  Filters?: { Field: string; Value: string }[];
  NextToken?: string;
}): Promise<unknown> {
  await Promise.resolve();
  const field = (name: string) =>
    params.Filters?.find((f) => f.Field === name)?.Value;
  const region = field("regionCode") ?? "us-east-1";
  const type = field("instanceType");
  const items = Object.entries(FAKE_ON_DEMAND).filter(([t]) =>
    !type || t === type
  ).map(
    ([t, price], i) =>
      JSON.stringify({
        product: {
          productFamily: "Compute Instance",
          attributes: {
            instanceType: t,
            regionCode: region,
            operatingSystem: "Linux",
            tenancy: "Shared",
            preInstalledSw: "NA",
            capacitystatus: "Used",
          },
          sku: `SKU${i}`,
        },
        terms: {
          OnDemand: {
            [`SKU${i}.JRTCKXETXF`]: {
              priceDimensions: {
                [`SKU${i}.JRTCKXETXF.6YS6EN2CT7`]: {
                  unit: "Hrs",
                  pricePerUnit: { USD: price.toFixed(10) },
                },
              },
            },
          },
        },
      }),
  );
  const start = Number(params.NextToken ?? 0);
  const page = items.slice(start, start + 2);
  return {
    FormatVersion: "aws_v1",
    PriceList: page,
    ...(start + 2 < items.length ? { NextToken: String(start + 2) } : {}),
  };
}

// ---------------------------------------------------------------------------
// Ending an instance's sessions on a rig host

async function readProc(pid: number, file: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(`/proc/${pid}/${file}`);
  } catch {
    return null;
  }
}

async function ppidOf(pid: number): Promise<number | null> {
  const stat = await readProc(pid, "stat");
  if (!stat) return null;
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/**
 * Ends the SSH connections through which a cluster's processes run on a
 * host: finds the processes whose environment names the cluster, walks up to
 * the per-connection `sshd` under the host's listening `sshd`, and kills
 * that connection's process tree. Only processes of that cluster are
 * touched.
 */
export async function killClusterSessions(
  host: FakeHost,
  cluster: string,
): Promise<void> {
  const listener = Number(
    (await Deno.readTextFile(host.sshdPidPath!).catch(() => "")).trim(),
  );
  if (!listener) return;
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (/^\d+$/.test(entry.name)) pids.push(Number(entry.name));
  }
  const children = new Map<number, number[]>();
  const connections = new Set<number>();
  for (const pid of pids) {
    const ppid = await ppidOf(pid);
    if (ppid !== null) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  for (const pid of pids) {
    const environ = await readProc(pid, "environ");
    if (!environ || !environ.includes(`"jobId":"${cluster}"`)) continue;
    // Walk up to the child of the listener: that connection's sshd.
    let current = pid;
    for (let depth = 0; depth < 16; depth++) {
      const parent = await ppidOf(current);
      if (parent === null || parent <= 1) break;
      if (parent === listener) {
        connections.add(current);
        break;
      }
      current = parent;
    }
  }
  for (const root of connections) {
    const tree = [root];
    for (let i = 0; i < tree.length; i++) {
      tree.push(...(children.get(tree[i]) ?? []));
    }
    for (const pid of tree) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
}
