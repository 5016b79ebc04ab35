/**
 * The bootstrap: readies a host to run the worker, with one generated POSIX
 * `sh` script run over the host's transport.
 *
 * The script runs in phases, each reported as a JSON line on its standard
 * output (`{"t":"phase","phase":"apt","status":"completed","elapsedMs":812}`)
 * that {@linkcode bootstrap} turns into an `onPhase` call as it arrives:
 *
 * | phase  | does | skipped when |
 * | ------ | ---- | ------------ |
 * | `env`  | makes the cache directory, takes its lock, writes the image's environment to `env/<hash>.sh` | that file exists |
 * | `apt`  | `apt-get install -y` of the missing packages, as root or with `sudo -n`, after waiting for the dpkg lock | `dpkg-query` reports every package installed |
 * | `deno` | puts Deno at `deno/<version>/deno`: downloaded from the official release when the host can reach it (`deno: "client"`), else uploaded from the client | that binary's `--version` is the exact version |
 * | `code` | uploads the user's bundle to `code/<key>` (the key is the bundle's hash, or with `includes` a hash of it and of the included files' paths, sizes and times) and the library's to `lib/<hash>` | both hold a `.skyward-hash` with their bundle's hash |
 * | `deps` | fetches the npm packages on the host when it can reach the registry, else ships those missing there from the client's cache into `deno_dir/npm/`, then proves the graph resolves offline (`deno install --entrypoint --cached-only`) | the marker `markers/deps-<key>-<deno version>` exists (the key hashes the two bundles' hashes, which cover their graphs, configuration and lockfiles) |
 *
 * The pool emits the last phase, `worker`, when it starts the worker.
 *
 * When the script needs bytes from the client it says so on its output
 * (`{"t":"need","what":"deno","dir":"tmp/123-deno"}`) and waits for the
 * answer on its input; the client sends them in one tar stream through a
 * second command (`tar -x`), so a large file is streamed, never held whole
 * in memory, and many small files cost one round trip. On a host that is
 * already ready, the whole bootstrap is that one command, every phase
 * `skipped`.
 *
 * @module
 */
import { type TarEntry, tarStream } from "./tar.ts";
import { type BootstrapPlan, checkPlan, preparePlan } from "./plan.ts";
import {
  bootstrapScript,
  type BootstrapScriptSpec,
  quickStartScript,
} from "./script.ts";
import { ProvisioningError } from "../errors.ts";
import type { BootstrapPhaseName } from "../events.ts";
import type { Channel, Host } from "../transport/host.ts";

/** Where things are on a host once it is ready. */
export interface BootstrapResult {
  /** Absolute path of the Deno binary. */
  denoPath: string;
  /** The `DENO_DIR` to run the worker with; it holds the npm packages. */
  denoDir: string;
  /** The user's code (with the image's `includes`): `SKYWARD_CODE_DIR`. */
  codeDir: string;
  /**
   * The project's root in the code directory, where the image's `includes`
   * are (`codeDir` itself unless the code reaches outside the project): the
   * worker's working directory.
   */
  projectDir: string;
  /**
   * The hash in `codeDir/.skyward-hash`, which the worker checks against the
   * `code` of its `hello`: the hash of the code as shipped (see `nodeCode`). (The directory's name also
   * covers the image's `includes`, so it differs from this when there are
   * some.)
   */
  codeHash: string;
  /** The library's worker code. */
  libDir: string;
  /** The worker's entry module: `${libDir}/<path of worker/main.ts in the library bundle>`. */
  workerEntry: string;
  /** The configuration file to run the worker with (`--config`), when the code or the library has one. */
  configPath?: string;
  /** The environment to run the worker with: the image's `env`, `DENO_DIR`, `DENO_NO_UPDATE_CHECK` and `SKYWARD_CODE_DIR`. */
  env: Record<string, string>;
}

/** One phase's progress, as reported to `onPhase`. */
export interface BootstrapPhaseReport {
  /** The phase. */
  phase: BootstrapPhaseName;
  /** What happened to it. */
  status: "started" | "completed" | "skipped" | "failed";
  /** Time spent in the phase, in milliseconds (0 when it starts). */
  elapsedMs: number;
  /** The tail of the phase's output, when it failed. */
  output?: string;
}

/** Options of {@linkcode bootstrap}. */
export interface BootstrapOptions {
  /** Aborts the bootstrap: the script and any upload are killed. */
  signal?: AbortSignal;
  /**
   * Where Deno releases are downloaded from: the host fetches
   * `<url>/release/v<version>/deno-<target>.zip`.
   *
   * @default {"https://dl.deno.land"}
   */
  denoDownloadUrl?: string;
  /**
   * The URL the host probes to find out whether it can fetch npm packages
   * itself; `false` ships them from the client's cache without the host
   * trying. The host fetches from the registry the client uses (its
   * `NPM_CONFIG_REGISTRY`, else Deno's default), so that the packages sit
   * where the client's own cache has them.
   *
   * @default {the client's NPM_CONFIG_REGISTRY, else "https://registry.npmjs.org/"}
   */
  npmRegistry?: string | false;
  /**
   * How long the host may take to find out whether it reaches the download
   * site or the registry, in milliseconds (rounded up to whole seconds).
   *
   * @default {3000}
   */
  probeTimeout?: number;
  /**
   * How long to wait for another process (say `unattended-upgrades`) to
   * release the dpkg lock, in milliseconds.
   *
   * @default {300000}
   */
  aptLockTimeout?: number;
}

/**
 * A bootstrap failed: `phase` says which (`undefined` when the script could
 * not start), `output` holds the tail of what it printed.
 *
 * @example
 * ```ts
 * import { BootstrapError } from "./bootstrap.ts";
 *
 * const error = new BootstrapError("user@10.0.0.5:22", "apt", "E: Unable to locate package nope");
 * console.log(error.message); // Bootstrap phase 'apt' failed on user@10.0.0.5:22: E: Unable to locate package nope
 * ```
 */
export class BootstrapError extends ProvisioningError {
  /** The phase that failed. */
  readonly phase: BootstrapPhaseName | undefined;
  /** The host's label. */
  readonly host: string;
  /** The tail of the phase's output. */
  readonly output: string;
  /**
   * Makes the error.
   *
   * @param host The host's label.
   * @param phase The phase that failed, if one had started.
   * @param output The tail of its output.
   * @param options The cause.
   */
  constructor(
    host: string,
    phase: BootstrapPhaseName | undefined,
    output: string,
    options: { cause?: unknown } = {},
  ) {
    super(
      phase
        ? `Bootstrap phase '${phase}' failed on ${host}: ${output}`
        : `Bootstrap failed on ${host}: ${output}`,
      options,
    );
    this.name = "BootstrapError";
    this.phase = phase;
    this.host = host;
    this.output = output;
  }
}

const encoder = new TextEncoder();

/** The client's `NPM_CONFIG_REGISTRY`, when set and readable. */
function clientRegistry(): string | undefined {
  try {
    return Deno.env.get("NPM_CONFIG_REGISTRY") || undefined;
  } catch {
    return undefined;
  }
}

function checkOptions(options: BootstrapOptions) {
  const fail = (message: string): never => {
    throw new TypeError(`Cannot bootstrap: ${message}`);
  };
  const ms = (name: string, value: number | undefined, fallback: number) => {
    const v = value ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      fail(
        `'${name}' must be a positive number of milliseconds, got ${
          JSON.stringify(value)
        }`,
      );
    }
    return v;
  };
  const url = (name: string, value: string) => {
    if (!/^https?:\/\/[^\s'"\\]+$/.test(value)) {
      fail(`'${name}' must be an http(s) URL, got ${JSON.stringify(value)}`);
    }
    return value.replace(/\/+$/, "");
  };
  const npmConfigRegistry = clientRegistry();
  const registry = options.npmRegistry ?? npmConfigRegistry ??
    "https://registry.npmjs.org/";
  return {
    denoDownloadUrl: url(
      "denoDownloadUrl",
      options.denoDownloadUrl ?? "https://dl.deno.land",
    ),
    npmRegistry: registry === false
      ? false as const
      : `${url("npmRegistry", registry)}/`,
    npmConfigRegistry,
    probeTimeoutMs: ms("probeTimeout", options.probeTimeout, 3_000),
    aptLockTimeoutMs: ms("aptLockTimeout", options.aptLockTimeout, 300_000),
  };
}

interface ScriptMessage {
  t: "hello" | "phase" | "need" | "done";
  cache?: string;
  phase?: BootstrapPhaseName;
  status?: BootstrapPhaseReport["status"];
  elapsedMs?: number;
  what?: "deno" | "code" | "deps" | "deps-list";
  dir?: string;
  tar?: boolean;
  os?: string;
  arch?: string;
  code?: boolean;
  lib?: boolean;
  packages?: string[];
}

async function* lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    let at;
    while ((at = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
    }
  }
  if (buffer) yield buffer;
}

/** Reads a stream to its end, keeping the last `limit` characters. */
async function tail(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<string> {
  let kept = "";
  try {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      kept = (kept + text).slice(-limit);
    }
  } catch {
    // The channel failed; what came is what there is.
  }
  return kept;
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<void> {
  try {
    for await (const _ of stream) { /* discard */ }
  } catch {
    // The channel failed.
  }
}

async function packageEntries(
  localPath: string,
  prefix: string,
  out: TarEntry[],
): Promise<void> {
  for await (const entry of Deno.readDir(localPath)) {
    if (entry.name.startsWith(".scripts-warned")) continue;
    const full = `${localPath}/${entry.name}`;
    const path = `${prefix}/${entry.name}`;
    const info = entry.isSymlink ? await Deno.stat(full) : entry;
    if (info.isDirectory) {
      out.push({ path, type: "directory" });
      await packageEntries(full, path, out);
    } else if (info.isFile) {
      out.push({ path, file: full });
    }
  }
}

/**
 * Writes entries into `dir` on the host (which must not exist yet): as one
 * tar stream into `tar -x` when the host has `tar`, else with
 * `Host.writeTree` (files read into memory).
 */
async function sendTree(
  host: Host,
  dir: string,
  entries: TarEntry[],
  useTar: boolean,
  signal?: AbortSignal,
): Promise<void> {
  if (!useTar) {
    const files = await Promise.all(
      entries.filter((e) => e.type !== "directory").map(async (e) => ({
        path: e.path,
        data: e.data ?? await Deno.readFile(e.file!),
      })),
    );
    await host.writeTree(dir, files);
    return;
  }
  const channel: Channel = await host.exec([
    "sh",
    "-c",
    'mkdir -p "$1" && exec tar -x -o -f - -C "$1"',
    "skyward-upload",
    dir,
  ]);
  const onAbort = () => channel.kill();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const stderr = tail(channel.stderr, 4_000);
    const stdout = drain(channel.readable);
    let piped: unknown;
    await tarStream(entries).pipeTo(channel.writable).catch((error) => {
      piped = error;
    });
    const exit = await channel.exited;
    await stdout;
    signal?.throwIfAborted();
    if (exit.code !== 0 || piped) {
      const why = (await stderr).trim() ||
        (piped ? String((piped as Error)?.message ?? piped) : "") ||
        `exit ${exit.code ?? exit.signal}`;
      throw new ProvisioningError(
        `Cannot unpack files into ${dir} on ${host.label}: ${why}`,
        { cause: piped },
      );
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

function platformMatches(os: string, arch: string): boolean {
  const hostOs = os === "Linux" ? "linux" : os === "Darwin" ? "darwin" : os;
  const hostArch = arch === "amd64"
    ? "x86_64"
    : arch === "arm64"
    ? "aarch64"
    : arch;
  return hostOs === Deno.build.os && hostArch === Deno.build.arch;
}

/**
 * Readies a host to run the worker: runs {@linkcode bootstrapScript} there,
 * answers its requests for files, and reports each phase as it goes. On a
 * ready host this is a single command and every phase is `skipped`.
 *
 * @param host Where to run it.
 * @param plan The image, Deno version, bundles and cache directory.
 * @param onPhase Called with each phase's `started`, then `completed`,
 *   `skipped` or `failed` (with the tail of its output), as they happen.
 * @param options Abort signal, download and registry URLs, timeouts.
 * @returns Where Deno, the code and the dependencies are, and the worker's environment.
 * @throws {BootstrapError} When a phase fails: the message names the phase and the host and carries the tail of the output.
 * @throws {TypeError} When the plan or options are invalid.
 * @throws {ConfigError} When an include is missing or the npm packages cannot be found locally.
 *
 * @example
 * ```ts ignore
 * import { bootstrap } from "./bootstrap.ts";
 * import { libraryBundle } from "./worker.ts";
 * import { buildBundle } from "./bundle.ts";
 * import { Image } from "../image.ts";
 * import { LocalHost } from "../transport/local.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const ready = await bootstrap(new LocalHost(dir), {
 *   image: Image({ deno: "upload", env: { MODE: "prod" } }),
 *   denoVersion: Deno.version.deno,
 *   cacheDir: `${dir}/cache`,
 *   code: await buildBundle([import.meta.url]),
 *   lib: await libraryBundle(),
 * }, (e) => console.log(e.phase, e.status));
 * console.log(ready.env.MODE); // "prod"
 * ```
 */
export async function bootstrap(
  host: Host,
  plan: BootstrapPlan,
  onPhase: (report: BootstrapPhaseReport) => void,
  options: BootstrapOptions = {},
): Promise<BootstrapResult> {
  const signal = options.signal;
  signal?.throwIfAborted();
  checkPlan(plan);
  const resolved = checkOptions(options);
  const ready = await preparePlan(plan);
  const spec: BootstrapScriptSpec = { ...ready.spec, ...resolved };
  signal?.throwIfAborted();

  const channel = await host.exec([
    "sh",
    "-c",
    bootstrapScript(spec),
    "skyward-bootstrap",
  ]);
  const onAbort = () => channel.kill();
  signal?.addEventListener("abort", onAbort, { once: true });
  const stderr = tail(channel.stderr, 16_000);
  const writer = channel.writable.getWriter();
  const reply = (text: string) =>
    writer.write(encoder.encode(`${text}\n`)).catch(() => {});

  let cache: string | undefined;
  let current: BootstrapPhaseName | undefined;
  let currentSince = Date.now();
  let failed: ScriptMessage | undefined;
  let done = false;
  let cause: unknown;
  const noise: string[] = [];

  const answer = async (message: ScriptMessage): Promise<void> => {
    if (!cache) {
      throw new Error(
        "the script asked for files before saying where its cache is",
      );
    }
    if (message.what === "deps-list") {
      const packages = ready.code.node.packages;
      await reply(packages.map((p) => `${p.cachePath}\n`).join(""));
      return;
    }
    const dir = `${cache}/${message.dir}`;
    const entries: TarEntry[] = [];
    if (message.what === "deno") {
      if (plan.denoVersion !== Deno.version.deno) {
        throw new ProvisioningError(
          `the host cannot download Deno ${plan.denoVersion} and this client runs Deno ${Deno.version.deno}, so it cannot upload its own`,
        );
      }
      if (!platformMatches(message.os ?? "", message.arch ?? "")) {
        throw new ProvisioningError(
          `the host is ${message.os}/${message.arch} and cannot download Deno; this client's Deno (${Deno.build.target}) does not run there`,
        );
      }
      entries.push({ path: "deno", file: Deno.execPath(), mode: 0o755 });
    } else if (message.what === "code") {
      // The code goes as the nodes run it, lockfile pruned (see npm.ts).
      for (
        const [name, bundle, hash] of [
          ["code", ready.code, spec.codeHash],
          ["lib", ready.lib, spec.libHash],
        ] as const
      ) {
        if (!message[name]) continue;
        if (name === "lib") entries.push({ path: "lib", type: "directory" });
        for (const f of bundle.files) {
          entries.push({ path: `${name}/${f.path}`, data: f.data });
        }
        if (name === "code") {
          for (const f of ready.includes) {
            entries.push({ path: `code/${f.path}`, file: f.file });
          }
        }
        entries.push({
          path: `${name}/.skyward-hash`,
          data: encoder.encode(hash),
        });
      }
    } else if (message.what === "deps") {
      const packages = ready.code.node.packages;
      const byPath = new Map(packages.map((p) => [p.cachePath, p]));
      const registries = new Set<string>();
      for (const path of message.packages ?? []) {
        const pkg = byPath.get(path);
        if (!pkg) {
          throw new Error(`the host asked for an unknown package ${path}`);
        }
        await packageEntries(pkg.localPath, `npm/${path}`, entries);
        const nameDir = path.slice(0, path.lastIndexOf("/"));
        if (registries.has(nameDir)) continue;
        registries.add(nameDir);
        const registryJson = `${
          pkg.localPath.slice(0, pkg.localPath.lastIndexOf("/"))
        }/registry.json`;
        try {
          await Deno.stat(registryJson);
          entries.push({
            path: `npm/${nameDir}/registry.json`,
            file: registryJson,
          });
        } catch {
          // Not cached: the lockfile alone resolves it.
        }
      }
    } else {
      throw new Error(`the script asked for unknown files '${message.what}'`);
    }
    await sendTree(host, dir, entries, message.tar !== false, signal);
    await reply("ok");
  };

  try {
    for await (const line of lines(channel.readable)) {
      let message: ScriptMessage;
      try {
        message = JSON.parse(line);
        if (typeof message?.t !== "string") throw new Error();
      } catch {
        // A login banner or the like: kept for the error message.
        noise.push(line);
        continue;
      }
      if (message.t === "hello") {
        cache = message.cache;
      } else if (message.t === "phase" && message.phase && message.status) {
        current = message.phase;
        if (message.status === "started") currentSince = Date.now();
        if (message.status === "failed") {
          // Reported when the script has ended, with its output.
          failed = message;
        } else {
          onPhase({
            phase: message.phase,
            status: message.status,
            elapsedMs: message.elapsedMs ?? 0,
          });
        }
      } else if (message.t === "need") {
        try {
          await answer(message);
        } catch (error) {
          cause = error;
          await reply(
            `fail ${
              String((error as Error)?.message ?? error).replace(/\s+/g, " ")
            }`,
          );
        }
      } else if (message.t === "done") {
        done = true;
      }
    }
    await writer.close().catch(() => {});
    const exit = await channel.exited.catch((error) => {
      cause ??= error;
      return { code: null, signal: undefined };
    });
    signal?.throwIfAborted();
    // The script's last act is its `done` line: a channel that then closes
    // without an exit status (sshd has been seen to drop it when the
    // connection goes through a proxy) does not undo that.
    const statusLost = exit.code === null && exit.signal === undefined;
    if (!done || (exit.code !== 0 && !statusLost)) {
      const output = [(await stderr).trim(), ...noise.slice(-5)].filter(Boolean)
        .join("\n").slice(-4_000) ||
        `the script ended with ${
          exit.code === null
            ? `signal ${exit.signal ?? "?"}`
            : `exit ${exit.code}`
        } and no output`;
      const phase = failed?.phase ?? current;
      if (phase) {
        onPhase({
          phase,
          status: "failed",
          elapsedMs: failed?.elapsedMs ?? Date.now() - currentSince,
          output,
        });
      }
      throw new BootstrapError(host.label, phase, output, { cause });
    }
  } catch (error) {
    channel.kill();
    if (signal?.aborted) throw signal.reason;
    if (error instanceof BootstrapError) throw error;
    // The channel failed (say, the connection was lost) or a callback threw.
    const output = String((error as Error)?.message ?? error);
    if (current) {
      try {
        onPhase({
          phase: current,
          status: "failed",
          elapsedMs: Date.now() - currentSince,
          output,
        });
      } catch {
        // The error below says it.
      }
    }
    throw new BootstrapError(host.label, current, output, { cause: error });
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }

  const codeDir = `${cache}/code/${spec.codeKey}`;
  const project = ready.code.project;
  const libDir = `${cache}/lib/${spec.libHash}`;
  const denoDir = `${cache}/deno_dir`;
  return {
    denoPath: `${cache}/deno/${spec.denoVersion}/deno`,
    denoDir,
    codeDir,
    projectDir: project ? `${codeDir}/${project}` : codeDir,
    codeHash: spec.codeHash,
    libDir,
    workerEntry: /^[a-z]+:\/\//.test(spec.workerEntry)
      ? spec.workerEntry
      : `${libDir}/${spec.workerEntry}`,
    configPath: spec.config
      ? `${spec.config.in === "code" ? codeDir : libDir}/${spec.config.path}`
      : undefined,
    env: {
      ...plan.image.env,
      DENO_DIR: denoDir,
      DENO_NO_UPDATE_CHECK: "1",
      SKYWARD_CODE_DIR: codeDir,
      ...(ready.code.node.importHosts.length
        ? { SKYWARD_IMPORT_HOSTS: ready.code.node.importHosts.join(",") }
        : {}),
      ...(spec.npmConfigRegistry
        ? { NPM_CONFIG_REGISTRY: spec.npmConfigRegistry }
        : {}),
    },
  };
}

/** A worker started by {@linkcode quickStart}, and how to start it again. */
export interface QuickStart {
  /** The worker's channel (its standard error past the ready mark). */
  channel: Channel;
  /** The command that starts the worker again (it checks the host again). */
  argv: string[];
  /** The environment to start it with: the image's (the command sets the rest). */
  env: Record<string, string>;
}

/**
 * Starts the worker at once when the host holds everything the plan needs
 * (the bootstrap's quick look and the worker's start in one command: one
 * round trip to the host fewer), else starts nothing and returns
 * `undefined`, and the caller runs {@linkcode bootstrap}. Never for an
 * image with apt packages (their check needs the full script).
 *
 * @param host Where to start it.
 * @param plan The plan, as for {@linkcode bootstrap}.
 * @param env More environment for the worker (its instance, its dead-man switch).
 * @returns The worker, or `undefined` when the host is not ready.
 *
 * @example
 * ```ts ignore
 * const quick = await quickStart(host, plan, { SKYWARD_INSTANCE: "{}" });
 * if (!quick) await bootstrap(host, plan, () => {});
 * ```
 */
export async function quickStart(
  host: Host,
  plan: BootstrapPlan,
  env: Record<string, string>,
): Promise<QuickStart | undefined> {
  checkPlan(plan);
  if (plan.image.apt.length) return undefined;
  const ready = await preparePlan(plan);
  const spec: BootstrapScriptSpec = { ...ready.spec, ...checkOptions({}) };
  const argv = [
    "sh",
    "-c",
    quickStartScript(spec, {
      project: ready.code.project,
      importHosts: ready.code.node.importHosts.join(",") || undefined,
    }),
    "skyward-worker",
  ];
  const imageEnv = { ...plan.image.env };
  const channel = await host.exec(argv, {
    env: { ...imageEnv, ...env, SKYWARD_QUICK: "1" },
  });
  const reader = channel.stderr.getReader();
  let first: Uint8Array | undefined;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (value.length) {
        first = value;
        break;
      }
    }
  } catch {
    // The channel failed: not started.
  }
  if (first?.[0] !== 0x52 /* R */) {
    reader.releaseLock();
    channel.kill();
    await channel.exited.catch(() => {});
    return undefined;
  }
  let rest: Uint8Array | undefined = first.subarray(1);
  const stderr = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (rest?.length) {
        controller.enqueue(rest);
        rest = undefined;
        return;
      }
      rest = undefined;
      try {
        const { value, done } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { channel: { ...channel, stderr }, argv, env: imageEnv };
}
