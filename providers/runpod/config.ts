/**
 * The RunPod provider's options, validated once, and the API key found in
 * the options or the environment.
 *
 * @module
 */
import { envVar } from "../_env.ts";
import { z } from "npm:zod@4.6.7";
import { sshUserSchema } from "../_ssh.ts";
import { parseOptions } from "../../src/_options.ts";
import { ConfigError } from "../../src/errors.ts";
import { RUNPOD_BASE_URL, RUNPOD_CREDENTIALS_HINT } from "./api.ts";

/** What the provider knows of a pod when it picks the SSH user. */
export interface RunPodPodDetails {
  /** The pod's id. */
  id: string;
  /** Its public IP address. */
  ip: string;
  /** The public port mapped to its port 22. */
  port: number;
}

/** Options of {@linkcode RunPod}. */
export interface RunPodOptions {
  /**
   * The API key.
   * @default `RUNPOD_API_KEY`
   */
  apiKey?: string;
  /**
   * The API's origin; `/graphql` is appended. For tests and proxies.
   * @default "https://api.runpod.io"
   */
  baseUrl?: string;
  /**
   * Where pods run: RunPod's Secure Cloud, its Community Cloud, or either.
   * @default "ALL"
   */
  cloudType?: "ALL" | "SECURE" | "COMMUNITY";
  /**
   * A data center to deploy in, one RunPod lists (`runpodctl datacenter
   * list`), e.g. `"EU-RO-1"` or `"EUR-IS-1"`; an id RunPod does not list is
   * a `ConfigError` naming those it does.
   * @default any
   */
  dataCenterId?: string;
  /**
   * The container image of the pods. It needs `/bin/sh`, `base64` and
   * OpenSSH's `sshd` (installed with `apt-get` at start when missing): the
   * pod's command authorises the pool's key for root and runs `sshd`.
   * @default "runpod/pytorch:2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04"
   */
  image?: string;
  /**
   * Size of each pod's container disk, in GB. The pool's `diskGb` wins.
   * @default 30
   */
  containerDiskGb?: number;
  /**
   * The bid per GPU of spot pods, in dollars per hour.
   * @default the GPU type's current minimum bid
   */
  bidPerGpu?: number;
  /**
   * The login user of the pods: a name, or a function of the pod.
   * @default "root"
   */
  sshUser?: string | ((pod: RunPodPodDetails) => string);
  /** Extra environment variables of the pods' containers. */
  env?: Record<string, string>;
}

/** Options after validation. */
export interface ResolvedRunPodOptions extends RunPodOptions {
  baseUrl: string;
  cloudType: "ALL" | "SECURE" | "COMMUNITY";
  image: string;
  containerDiskGb: number;
  env: Record<string, string>;
}

/** The image pods run by default: one of RunPod's own, with CUDA and sshd. */
export const DEFAULT_IMAGE =
  "runpod/pytorch:2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04";

const schema = z.object({
  apiKey: z.string().min(1).optional(),
  baseUrl: z.url().default(RUNPOD_BASE_URL),
  cloudType: z.enum(["ALL", "SECURE", "COMMUNITY"]).default("ALL"),
  // RunPod's ids take several shapes (EU-RO-1, EUR-IS-1, US-TX-3,
  // CA-MTL-1): only the characters are checked here; offers() checks the id
  // against the data centers RunPod lists.
  dataCenterId: z.string().regex(
    /^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$/,
    "not a data center id such as EU-RO-1 or EUR-IS-1",
  ).optional(),
  image: z.string().min(1).default(DEFAULT_IMAGE),
  containerDiskGb: z.number().int().positive().default(30),
  bidPerGpu: z.number().positive().optional(),
  sshUser: sshUserSchema<RunPodPodDetails>(),
  env: z.record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "not a variable name"),
    z.string(),
  ).default({}),
}).strict();

/**
 * Validates the options of `sky.RunPod`.
 *
 * @param options The options.
 * @returns The resolved options.
 * @throws {ConfigError} Naming the bad option.
 */
export function resolveRunPodOptions(
  options: RunPodOptions,
): ResolvedRunPodOptions {
  return parseOptions(
    schema,
    options ?? {},
    "Invalid sky.RunPod options",
  ) as ResolvedRunPodOptions;
}

/**
 * The API key: the option, else `RUNPOD_API_KEY`.
 *
 * @param options The resolved options.
 * @returns The key.
 * @throws {ConfigError} Naming `RUNPOD_API_KEY` when there is none.
 */
export function runpodApiKey(options: RunPodOptions): string {
  const key = options.apiKey || envVar("RUNPOD_API_KEY");
  if (!key) {
    throw new ConfigError(
      `No RunPod API key found. ${RUNPOD_CREDENTIALS_HINT}`,
    );
  }
  return key;
}
