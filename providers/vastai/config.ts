/**
 * The Vast.ai provider's options (checked once, with their defaults) and
 * its API key: from the options, `VAST_API_KEY`, or the file `vastai set
 * api-key` writes (vast-ai/vast-cli `vast.py`).
 *
 * @module
 */
import { envVar } from "../_env.ts";
import { z } from "npm:zod@4.6.7";
import { sshUserSchema } from "../_ssh.ts";
import { parseOptions } from "../../src/_options.ts";
import { ConfigError } from "../../src/errors.ts";

/** What the provider knows of an instance when it picks the SSH user. */
export interface VastInstanceDetails {
  /** The instance's (contract's) id. */
  id: string;
  /** The address the client connects to. */
  sshHost: string;
  /** The port the client connects to. */
  sshPort: number;
  /** The machine's public address, when Vast.ai reports it. */
  publicIp?: string;
  /** The machine's id on the marketplace. */
  machineId?: number;
}

/** Options of {@linkcode VastAI}. */
export interface VastAIOptions {
  /**
   * The API key.
   * @default `VAST_API_KEY`, else the file `vastai set api-key` writes
   * (`$XDG_CONFIG_HOME/vastai/vast_api_key`, `~/.config/vastai/vast_api_key`,
   * or the older CLIs' `~/.vast_api_key`)
   */
  apiKey?: string;
  /**
   * The API's base URL, ending in `/api/v0`: for tests and proxies. The
   * instance listing is read from the `/api/v1` beside it, as the `vastai`
   * CLI does.
   * @default "https://console.vast.ai/api/v0"
   */
  baseUrl?: string;
  /**
   * The Docker image of the instances; Vast.ai adds its SSH server to it.
   * @default "vastai/base-image:@vastai-automatic-tag"
   */
  image?: string;
  /**
   * Least reliability score of a machine (`reliability2`, 0 to 1).
   * @default 0.95
   */
  minReliability?: number;
  /**
   * Only machines Vast.ai has verified.
   * @default true
   */
  verified?: boolean;
  /**
   * Least CUDA version the machine's driver supports (`cuda_max_good`),
   * e.g. `12.4`.
   * @default no bound
   */
  cudaVersion?: number;
  /**
   * The bid of an interruptible (spot) instance, in dollars per hour per
   * machine.
   * @default the offer's minimum bid plus 20%, capped by the pool's `maxHourlyCost`
   */
  bid?: number;
  /**
   * How the client reaches an instance over SSH: `"direct"` to the
   * machine's public address and mapped port (falling back to the proxy when
   * the machine has none), or `"proxy"` through Vast.ai's SSH proxy.
   * @default "direct"
   */
  ssh?: "direct" | "proxy";
  /**
   * The login user: a name, or a function of the instance.
   * @default "root"
   */
  sshUser?: string | ((instance: VastInstanceDetails) => string);
  /**
   * An instance with no SSH client connected for this long destroys itself
   * (with the key Vast.ai gives each instance), in ms: the pool's client
   * holds one connection per node, so this reaps instances whose client
   * died. `0` turns it off.
   * @default 600_000
   */
  ttl?: number;
  /**
   * How many offers a search returns at most.
   * @default 64
   */
  searchLimit?: number;
}

/** Options after validation. */
export interface ResolvedVastAIOptions extends VastAIOptions {
  baseUrl: string;
  image: string;
  minReliability: number;
  verified: boolean;
  ssh: "direct" | "proxy";
  ttl: number;
  searchLimit: number;
}

const schema = z.object({
  apiKey: z.string().min(1).optional(),
  baseUrl: z.url().refine(
    (url) => /\/api\/v0\/?$/.test(url),
    "must end with /api/v0 (the v1 instance listing is found beside it), e.g. https://console.vast.ai/api/v0",
  ).default("https://console.vast.ai/api/v0"),
  image: z.string().min(1).max(1024).default(
    "vastai/base-image:@vastai-automatic-tag",
  ),
  minReliability: z.number().min(0).max(1).default(0.95),
  verified: z.boolean().default(true),
  cudaVersion: z.number().positive().optional(),
  bid: z.number().min(0.001).max(128).optional(),
  ssh: z.enum(["direct", "proxy"]).default("direct"),
  sshUser: sshUserSchema<VastInstanceDetails>(),
  ttl: z.number().int().nonnegative().default(600_000),
  searchLimit: z.number().int().min(1).max(1000).default(64),
}).strict();

/**
 * Validates the options of `sky.VastAI`.
 *
 * @param options The options.
 * @returns The resolved options.
 * @throws {ConfigError} Naming the bad option.
 */
export function resolveVastOptions(
  options: VastAIOptions,
): ResolvedVastAIOptions {
  return parseOptions(
    schema,
    options ?? {},
    "Invalid sky.VastAI options",
  ) as ResolvedVastAIOptions;
}

/** The key files the `vastai` CLI reads, newest location first. */
export function vastKeyFiles(): string[] {
  const home = envVar("HOME");
  const config = envVar("XDG_CONFIG_HOME") ?? (home ? `${home}/.config` : "");
  const files: string[] = [];
  if (config) files.push(`${config}/vastai/vast_api_key`);
  if (home) files.push(`${home}/.vast_api_key`);
  return files;
}

/** What to do when there is no key, or Vast.ai refuses it. */
export const CREDENTIALS_HELP =
  "set VAST_API_KEY, or run `vastai set api-key <key>` (it writes ~/.config/vastai/vast_api_key), " +
  "or pass sky.VastAI({ apiKey }); keys are at https://cloud.vast.ai/manage-keys/";

/**
 * Finds the API key: the option, `VAST_API_KEY`, then the CLI's key files.
 *
 * @param options The provider's options.
 * @returns The key.
 * @throws {ConfigError} Naming `VAST_API_KEY` and the key file when none is set.
 */
export async function vastApiKey(options: VastAIOptions): Promise<string> {
  if (options.apiKey) return options.apiKey;
  const fromEnv = envVar("VAST_API_KEY");
  if (fromEnv) return fromEnv;
  const files = vastKeyFiles();
  for (const file of files) {
    try {
      const text = (await Deno.readTextFile(file)).trim();
      if (text) return text;
    } catch {
      // Missing or unreadable: try the next.
    }
  }
  throw new ConfigError(
    `No Vast.ai API key found (looked at VAST_API_KEY and ${
      files.join(", ") || "no key file: HOME is not set"
    }): ${CREDENTIALS_HELP}`,
  );
}
