/**
 * RunPod's GraphQL API over the shared JSON client: one `POST /graphql` per
 * operation, authenticated with `Authorization: Bearer <key>`, values passed
 * as variables, every answer checked with zod. GraphQL errors (which RunPod
 * sends with status 200) become {@linkcode RunPodError}s carrying RunPod's
 * own message.
 *
 * Each document follows an official client, named beside it: runpodctl
 * (`api/pod.go`, `api/cloud.go`, `internal/api/gpu.go`) and runpod-python
 * (`runpod/api/queries/pods.py`, `runpod/api/mutations/pods.py`). A variable
 * is declared with an input type only where an official client declares
 * that type; otherwise the input object is written inline around scalar
 * variables, as the clients do, so that no guessed type name can make an
 * operation fail.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { ConfigError, ProvisioningError } from "../../src/errors.ts";
import { HttpClient } from "../_http.ts";

/** RunPod's public GraphQL endpoint's origin. */
export const RUNPOD_BASE_URL = "https://api.runpod.io";

/** What to tell a user whose key is missing or refused. */
export const RUNPOD_CREDENTIALS_HINT =
  "Set RUNPOD_API_KEY to an API key from https://www.runpod.io/console/user/settings " +
  "(Settings > API Keys, with read/write access), or pass sky.RunPod({ apiKey })";

/**
 * RunPod answered a GraphQL operation with errors.
 *
 * @example
 * ```ts
 * import { RunPodError } from "./api.ts";
 *
 * const error = new RunPodError("podTerminate", ["pod not found"]);
 * console.log(error.message); // "RunPod podTerminate failed: pod not found"
 * ```
 */
export class RunPodError extends ProvisioningError {
  /** The operation, e.g. `"podRentInterruptable"`. */
  readonly operation: string;
  /** RunPod's messages. */
  readonly messages: string[];

  /**
   * Creates the error.
   *
   * @param operation The operation that failed.
   * @param messages RunPod's messages.
   */
  constructor(operation: string, messages: string[]) {
    super(`RunPod ${operation} failed: ${messages.join("; ")}`);
    this.name = "RunPodError";
    this.operation = operation;
    this.messages = messages;
  }

  /** Whether RunPod said it has no machine for the request right now. */
  get noCapacity(): boolean {
    return this.messages.some((m) =>
      /no longer any instances available|no (gpu|machine|instance)s? (is |are )?available|not enough (free )?(gpus|capacity)|insufficient capacity|out of stock|bid (price )?(is )?(too low|below)/i
        .test(m)
    );
  }

  /** Whether RunPod said the pod does not exist. */
  get notFound(): boolean {
    return this.messages.some((m) =>
      /not found|does not exist|no pod/i.test(m)
    );
  }
}

const graphqlAnswer = z.object({
  data: z.record(z.string(), z.unknown()).nullable().optional(),
  errors: z.array(z.object({ message: z.string() }).loose()).optional(),
  // A 400 that is not a GraphQL answer.
  error: z.string().optional(),
  message: z.string().optional(),
});

/** Options of {@linkcode RunPodApi}. */
export interface RunPodApiOptions {
  /** The API key. */
  apiKey: string;
  /** The origin of the API. */
  baseUrl: string;
}

/** A RunPod GraphQL client. */
export class RunPodApi {
  readonly #http: HttpClient;

  /**
   * Creates a client.
   *
   * @param options The key and the endpoint.
   */
  constructor(options: RunPodApiOptions) {
    this.#http = new HttpClient({
      provider: "RunPod",
      baseUrl: options.baseUrl,
      headers: () => ({ authorization: `Bearer ${options.apiKey}` }),
      credentialsHint: RUNPOD_CREDENTIALS_HINT,
    });
  }

  /**
   * Runs one operation and returns its root field, checked by `schema`.
   *
   * @param operation The root field, e.g. `"gpuTypes"`.
   * @param document The GraphQL document.
   * @param variables Its variables.
   * @param schema The schema of the root field's value.
   * @returns The root field's value.
   * @throws {RunPodError} When RunPod answers with GraphQL errors.
   * @throws {ConfigError} When RunPod refuses the key.
   */
  async run<T>(
    operation: string,
    document: string,
    variables: Record<string, unknown>,
    schema: z.ZodType<T>,
    options: { once?: boolean } = {},
  ): Promise<T> {
    const answer = await this.#http.request("/graphql", {
      method: "POST",
      body: { query: document, variables },
      schema: graphqlAnswer,
      // GraphQL validation errors come as 400 with an `errors` list.
      accept: [400],
      // A create is sent once: an ambiguous failure is looked up by the
      // caller (see `createOnce`) before it is sent again.
      ...(options.once ? { once: true } : {}),
    });
    const messages = answer.errors?.length
      ? answer.errors.map((e) => e.message)
      : answer.data == null && (answer.error || answer.message)
      ? [(answer.error || answer.message)!]
      : [];
    if (messages.length > 0) {
      if (messages.some((m) => /unauthori[sz]ed|api key|forbidden/i.test(m))) {
        throw new ConfigError(
          `RunPod refused the credentials (${
            messages.join("; ")
          }). ${RUNPOD_CREDENTIALS_HINT}`,
        );
      }
      throw new RunPodError(operation, messages);
    }
    const parsed = schema.safeParse(answer.data?.[operation] ?? null);
    if (!parsed.success) {
      throw new ProvisioningError(
        `RunPod API: ${operation} answered in an unexpected shape: ${parsed.error.message}`,
      );
    }
    return parsed.data;
  }
}

// ---------------------------------------------------------------------------
// Documents and schemas

/**
 * The GPU types with their lowest prices for a pod's shape. The input type
 * is runpodctl's (`api/cloud.go` `GetCloud`: `$input: GpuLowestPriceInput!`).
 */
export const GPU_TYPES =
  `query GpuTypes($lowestPriceInput: GpuLowestPriceInput!) {
  gpuTypes {
    id
    displayName
    memoryInGb
    maxGpuCount
    secureCloud
    communityCloud
    lowestPrice(input: $lowestPriceInput) {
      minimumBidPrice
      uninterruptablePrice
      minVcpu
      minMemory
      stockStatus
    }
  }
}`;

/** One GPU type as {@linkcode GPU_TYPES} asks for it. */
export const gpuTypeSchema = z.object({
  id: z.string(),
  displayName: z.string().nullish(),
  memoryInGb: z.number().nullish(),
  maxGpuCount: z.number().nullish(),
  secureCloud: z.boolean().nullish(),
  communityCloud: z.boolean().nullish(),
  lowestPrice: z.object({
    minimumBidPrice: z.number().nullish(),
    uninterruptablePrice: z.number().nullish(),
    minVcpu: z.number().nullish(),
    minMemory: z.number().nullish(),
    stockStatus: z.string().nullish(),
  }).nullish(),
});

/** A GPU type with its prices. */
export type GpuType = z.infer<typeof gpuTypeSchema>;

/**
 * An on-demand pod, as runpodctl deploys one (`api/pod.go` `CreatePod`:
 * `mutation createPod($input: PodFindAndDeployOnDemandInput!)`).
 */
export const DEPLOY_ON_DEMAND =
  `mutation Deploy($input: PodFindAndDeployOnDemandInput!) {
  podFindAndDeployOnDemand(input: $input) { id name desiredStatus costPerHr machineId }
}`;

/**
 * A spot (interruptible) pod at a bid. `PodRentInterruptableInput` is the
 * input type of RunPod's GraphQL spec (graphql-spec.runpod.io, which
 * SkyPilot's `sky/provision/runpod/api/pods.py` follows); its fields are
 * those of runpod-python's `generate_pod_deployment_mutation` plus
 * `bidPerGpu`.
 */
export const RENT_INTERRUPTABLE =
  `mutation Rent($input: PodRentInterruptableInput!) {
  podRentInterruptable(input: $input) { id name desiredStatus costPerHr machineId }
}`;

/** The fields every pod answer has: a deploy's and {@linkcode POD}'s. */
const podFields = z.object({
  id: z.string(),
  name: z.string().nullish(),
  desiredStatus: z.string().nullish(),
  costPerHr: z.union([z.number(), z.string()]).nullish(),
});

/** What a deploy returns. */
export const deployedSchema = podFields.extend({
  machineId: z.string().nullish(),
}).nullable();

/**
 * One pod, with its runtime's ports: runpod-python
 * `runpod/api/queries/pods.py` `generate_pod_query` writes the input inline,
 * `pod(input: {podId: "..."})`; here the id is a `String!` variable.
 */
export const POD = `query Pod($podId: String!) {
  pod(input: {podId: $podId}) {
    id
    name
    desiredStatus
    costPerHr
    runtime {
      uptimeInSeconds
      ports { ip isIpPublic privatePort publicPort type }
    }
  }
}`;

/** A pod as {@linkcode POD} asks for it. */
export const podSchema = podFields.extend({
  runtime: z.object({
    uptimeInSeconds: z.number().nullish(),
    ports: z.array(z.object({
      ip: z.string().nullish(),
      isIpPublic: z.boolean().nullish(),
      privatePort: z.number().nullish(),
      publicPort: z.number().nullish(),
      type: z.string().nullish(),
    })).nullish(),
  }).nullish(),
}).nullable();

/** A pod with its runtime. */
export type Pod = NonNullable<z.infer<typeof podSchema>>;

/**
 * The account's pods, for teardown and cleanup (runpod-python
 * `runpod/api/queries/pods.py` `QUERY_POD`: `myself { pods { ... } }`).
 */
export const MY_PODS = `query MyPods {
  myself { pods { id name desiredStatus } }
}`;

/** What {@linkcode MY_PODS} returns. */
export const myPodsSchema = z.object({
  pods: z.array(podFields.omit({ costPerHr: true })).nullish(),
});

/**
 * The account, for a credentials check (runpodctl `internal/api/gpu.go`
 * `GetUser`: `myself { id email clientBalance … }`).
 */
export const MYSELF = `query Myself { myself { id clientBalance } }`;

/** What {@linkcode MYSELF} returns. */
export const myselfSchema = z.object({
  id: z.string(),
  clientBalance: z.number().nullish(),
});

/**
 * Terminates a pod (its container disk and volume are deleted), exactly as
 * runpodctl does (`api/pod.go` `RemovePod`, behind `runpodctl remove pod`):
 * the input inlined around a `String!` variable.
 */
export const TERMINATE = `mutation terminatePod($podId: String!) {
  podTerminate(input: {podId: $podId})
}`;

/**
 * The data centers RunPod lists (runpodctl `internal/api/gpu.go`
 * `ListDataCenters`, behind `runpodctl datacenter list`).
 */
export const DATA_CENTERS = `query DataCenters {
  dataCenters { id name location }
}`;

/** What {@linkcode DATA_CENTERS} returns. */
export const dataCentersSchema = z.array(z.object({
  id: z.string(),
  name: z.string().nullish(),
  location: z.string().nullish(),
})).nullable();
