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
import {
  buildBundle,
  type Bundle,
  bundlePath,
  codeKey,
  type IncludedFile,
  includedFiles,
} from "./bundle.ts";
import { type LibrarySource, type NodeBundle, nodeCode } from "./deps.ts";
import { ProvisioningError } from "../errors.ts";
import { sha256Hex } from "../_hash.ts";
import { shellQuote } from "../_shell.ts";
import type { BootstrapPhaseName } from "../events.ts";
import type { ResolvedImage } from "../image.ts";
import type { Channel, Host } from "../transport/host.ts";
import { type TarEntry, tarStream } from "./tar.ts";

// ---------------------------------------------------------------------------
// Types

/** What to make ready on a host. */
export interface BootstrapPlan {
  /** The image: apt packages, environment, Deno source, includes and excludes. */
  image: ResolvedImage;
  /** The exact Deno version to run, e.g. `Deno.version.deno`. */
  denoVersion: string;
  /**
   * The cache directory on the host: absolute, or relative to the login
   * directory (`~/` and `$HOME/` prefixes are understood).
   *
   * @default {"$HOME/.cache/skyward"}
   */
  cacheDir?: string;
  /** The user's code bundle (see `buildBundle`). */
  code: Bundle;
  /**
   * The library's worker: its bundle (see {@linkcode libraryBundle}), or the
   * worker module's URL when the library was imported from a URL (it is then
   * vendored with the code).
   */
  lib: LibrarySource;
}

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
 * Everything the script is generated from; see {@linkcode bootstrapScript}.
 * Paths are relative to the cache directory or to the bundles' roots.
 */
export interface BootstrapScriptSpec {
  /** The cache directory, as in {@linkcode BootstrapPlan.cacheDir}. */
  cacheDir: string;
  /** The exact Deno version. */
  denoVersion: string;
  /** `"client"`: download when the host can, else upload; `"upload"`: always upload. */
  deno: "client" | "upload";
  /** Base URL of Deno releases. */
  denoDownloadUrl: string;
  /** Debian packages (`name`, `name=version` or `name:arch`). */
  apt: readonly string[];
  /** The image's environment. */
  env: Readonly<Record<string, string>>;
  /** Hash of `env`, naming its file. */
  envHash: string;
  /** Hash of the user's code bundle, written to `.skyward-hash`. */
  codeHash: string;
  /**
   * Name of the code's directory: the bundle's hash, or with `includes` a
   * hash of it and of the included files' paths, sizes and modification times.
   */
  codeKey: string;
  /** Hash of the library bundle. */
  libHash: string;
  /** What decides the npm package set (the two bundles), hashed. */
  depsKey: string;
  /** The configuration file: in the code or the library directory, and its path there. */
  config?: { in: "code" | "lib"; path: string };
  /** The worker entry, relative to the library directory. */
  workerEntry: string;
  /** The code's modules, relative to the code directory, checked to resolve offline. */
  codeModules: readonly string[];
  /** The URL to probe before the host fetches npm packages itself, or `false`: never. */
  npmRegistry: string | false;
  /** `NPM_CONFIG_REGISTRY` for Deno on the host, when the client sets one. */
  npmConfigRegistry?: string;
  /** Probe timeout in milliseconds. */
  probeTimeoutMs: number;
  /** dpkg lock wait in milliseconds. */
  aptLockTimeoutMs: number;
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

// ---------------------------------------------------------------------------
// The library bundle

const WORKER_MAIN = new URL("../../worker/main.ts", import.meta.url);

/**
 * The bundle of the library's worker: `worker/main.ts` and what it imports.
 *
 * @returns The bundle (cached while its files are unchanged).
 * @throws {ConfigError} When the library is not on the local file system.
 *
 * @example
 * ```ts
 * import { libraryBundle } from "./bootstrap.ts";
 *
 * const lib = await libraryBundle();
 * console.log(lib.files.some((f) => f.path.endsWith("worker/main.ts"))); // true
 * ```
 */
export function libraryBundle(): Promise<Bundle> {
  return buildBundle([WORKER_MAIN.href]);
}

/**
 * The library's worker as nodes get it: its bundle when the library is on
 * the local file system (imported by path), else the worker module's URL
 * (the library was imported from JSR or an `https:` URL), which is then
 * vendored with the code.
 *
 * @returns The bundle or the URL.
 *
 * @example
 * ```ts
 * import { librarySource } from "./bootstrap.ts";
 *
 * const lib = await librarySource();
 * console.log(typeof lib === "string" ? lib : lib.root);
 * ```
 */
export function librarySource(): Promise<LibrarySource> {
  return WORKER_MAIN.protocol === "file:"
    ? libraryBundle()
    : Promise.resolve(WORKER_MAIN.href);
}

// ---------------------------------------------------------------------------
// Preparing: hashes, includes

/** The script's inputs that come from the options, not the plan. */
type OptionSpec =
  | "denoDownloadUrl"
  | "npmRegistry"
  | "npmConfigRegistry"
  | "probeTimeoutMs"
  | "aptLockTimeoutMs";

interface Prepared {
  spec: Omit<BootstrapScriptSpec, OptionSpec>;
  includes: IncludedFile[];
  /** The code as the nodes run it (see `nodeCode`). */
  code: NodeBundle;
  /** The library's files (none when it is vendored with the code). */
  lib: Bundle;
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

function checkPlan(plan: BootstrapPlan): void {
  const fail = (message: string): never => {
    throw new TypeError(`Cannot bootstrap: ${message}`);
  };
  if (plan?.image?.kind !== "image") {
    fail("'image' must be made with sky.Image(...)");
  }
  if (!/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(plan.denoVersion)) {
    fail(
      `'denoVersion' must be an exact version such as "2.9.6", got ${
        JSON.stringify(plan.denoVersion)
      }`,
    );
  }
  const cacheDir = plan.cacheDir;
  if (
    cacheDir !== undefined &&
    (typeof cacheDir !== "string" || !cacheDir ||
      [...cacheDir].some((c) => c < " " || c === "\x7f") ||
      /["\\]/.test(cacheDir))
  ) {
    fail(
      `'cacheDir' must be a path without quotes, backslashes or control characters, got ${
        JSON.stringify(cacheDir)
      }`,
    );
  }
  for (const name of ["code", "lib"] as const) {
    const bundle = plan[name];
    if (name === "lib" && typeof bundle === "string") {
      if (!/^(?:https?|file):\/\/[^\s'"\\]+$/.test(bundle)) {
        fail(
          `'lib' must be a bundle or the worker's URL, got ${
            JSON.stringify(bundle)
          }`,
        );
      }
      continue;
    }
    if (
      typeof bundle === "string" ||
      !bundle || typeof bundle.hash !== "string" || !Array.isArray(bundle.files)
    ) {
      fail(`'${name}' must be a bundle made with buildBundle()`);
    }
  }
}

const prepared = new WeakMap<BootstrapPlan, Promise<Prepared>>();

async function prepare(plan: BootstrapPlan): Promise<Prepared> {
  const { image } = plan;
  const code = await nodeCode(plan.code, plan.lib, image.imports);
  const lib: Bundle = typeof plan.lib === "string"
    ? {
      root: "",
      rootUrl: plan.lib,
      hash: (await sha256Hex([encoder.encode(`url\0${plan.lib}`)])).slice(
        0,
        32,
      ),
      files: [],
    }
    : plan.lib;
  const includes = await includedFiles(code, image.includes, image.excludes);
  const key = await codeKey(code, includes);
  const envEntries = Object.entries(image.env).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0
  );
  const envHash = (await sha256Hex([
    encoder.encode(JSON.stringify(envEntries)),
  ])).slice(0, 32);
  const workerEntry = typeof plan.lib === "string"
    ? plan.lib
    : bundlePath(lib, WORKER_MAIN.href) ??
      lib.files.find((f) => f.path.endsWith("worker/main.ts"))?.path;
  if (!workerEntry) {
    throw new TypeError(
      `Cannot bootstrap: the library bundle (root ${lib.root}) holds no worker/main.ts`,
    );
  }
  const config = { in: "code" as const, path: code.node.config };
  return {
    includes,
    code,
    lib,
    spec: {
      cacheDir: plan.cacheDir ?? "$HOME/.cache/skyward",
      denoVersion: plan.denoVersion,
      deno: image.deno,
      apt: image.apt,
      env: image.env,
      envHash,
      codeHash: code.hash,
      codeKey: key,
      libHash: lib.hash,
      // The package set follows from the graphs, configuration and lockfile:
      // from the bundles, whose hashes cover them all.
      depsKey: (await sha256Hex([
        encoder.encode(`deps\0${code.hash}\0${lib.hash}`),
      ])).slice(0, 32),
      config,
      workerEntry,
      codeModules: code.node.entries,
    },
  };
}

// ---------------------------------------------------------------------------
// The script

function cacheExpression(cacheDir: string): string {
  const home = cacheDir.match(/^(?:~|\$HOME|\$\{HOME\})(?:\/(.*))?$/);
  if (home) return home[1] ? `"$HOME"/${shellQuote([home[1]])}` : `"$HOME"`;
  if (cacheDir.startsWith("/")) return shellQuote([cacheDir]);
  return `"$HOME"/${shellQuote([cacheDir])}`;
}

// The static part of the script. It is written with `\${` for the shell's
// `${`, which a template literal would take for its own.
const SCRIPT_BODY = String.raw`
LOG=/dev/null
P=
T0=0
say() { printf '%s\n' "$1"; }
now() {
  _t=$(date +%s%N 2>/dev/null)
  case $_t in
    ''|*[!0-9]*) _t=$(( $(date +%s) * 1000 )) ;;
    *) _t=$(( _t / 1000000 )) ;;
  esac
}
begin() {
  P=$1
  LOG=/dev/null
  now
  T0=$_t
  say "{\"t\":\"phase\",\"phase\":\"$1\",\"status\":\"started\",\"elapsedMs\":0}"
}
work() {
  LOG="$CACHE/logs/$P.log"
  : >"$LOG" || LOG=/dev/null
}
end() {
  now
  say "{\"t\":\"phase\",\"phase\":\"$P\",\"status\":\"$1\",\"elapsedMs\":$((_t - T0))}"
}
fail() {
  printf '%s\n' "$*" >>"$LOG"
  end failed
  if [ "$LOG" = /dev/null ]; then printf '%s\n' "$*" >&2; else tail -n 40 "$LOG" >&2; fi
  exit 1
}
# Whether a URL answers: its first byte (a GET, as signed download links
# may refuse HEAD), within PROBE_S seconds to connect.
probe() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL -r 0-0 --connect-timeout "$PROBE_S" -m "$((PROBE_S * 2))" -o /dev/null "$1" >>"$LOG" 2>&1
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O /dev/null --header='Range: bytes=0-0' -T "$PROBE_S" -t 1 "$1" >>"$LOG" 2>&1
  else
    echo "Neither curl nor wget is installed: cannot reach $1" >>"$LOG"
    return 1
  fi
}
fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --connect-timeout 10 --retry 2 -o "$2" "$1" >>"$LOG" 2>&1
  else
    wget -q -T 30 -t 3 -O "$2" "$1" >>"$LOG" 2>&1
  fi
}
need() {
  _tar=false
  command -v tar >/dev/null 2>&1 && _tar=true
  say "{\"t\":\"need\",\"what\":\"$1\",\"dir\":\"$2\",\"tar\":$_tar\${3:+,$3}}"
  IFS= read -r _r || fail "The client stopped answering while sending $1"
  [ "$_r" = ok ] || fail "Sending $1 failed: $_r"
}
has_hash() {
  _h=
  [ -f "$1/.skyward-hash" ] || return 1
  { IFS= read -r _h || :; } <"$1/.skyward-hash"
  [ "$_h" = "$2" ]
}
deno_ok() {
  [ -x "$1" ] || return 1
  _v=$("$1" --version 2>/dev/null) || return 1
  case $_v in "deno $VER "*) return 0 ;; esac
  return 1
}

# --- env: the cache directory, its lock, the image's environment
begin env
case $CACHE in
  /*) ;;
  *) fail "The cache directory '$CACHE' is not absolute (is HOME set?)" ;;
esac
[ -d "$CACHE/logs" ] || mkdir -p "$CACHE/logs" || fail "Cannot create the cache directory $CACHE"
[ -d "$CACHE/tmp" ] || mkdir -p "$CACHE/tmp" || fail "Cannot create $CACHE/tmp"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock" || fail "Cannot open $CACHE/.lock"
  flock -w 600 9 || fail "Another bootstrap has held $CACHE/.lock for 10 minutes"
  # Holding the lock, nothing else uses tmp: clear what a killed run left.
  for _f in "$CACHE"/tmp/*; do
    [ -e "$_f" ] && rm -rf "$CACHE"/tmp/*
    break
  done
fi
say "{\"t\":\"hello\",\"cache\":\"$CACHE\"}"
E="$CACHE/env/$ENV_HASH.sh"
if [ -f "$E" ]; then
  end skipped
else
  work
  { mkdir -p "$CACHE/env" && write_env >"$E.tmp" && mv -f "$E.tmp" "$E"; } 2>>"$LOG" || fail "Cannot write $E"
  end completed
fi

# --- apt: the image's Debian packages
begin apt
if [ -z "$APT" ]; then
  end skipped
else
  command -v dpkg-query >/dev/null 2>&1 || fail "This host has no dpkg: cannot install apt packages ($APT)"
  _inst=$(dpkg-query -W -f='\${Package} \${db:Status-Abbrev}\n' $APT_NAMES 2>/dev/null)
  _missing=
  for _p in $APT; do
    _n=\${_p%%=*}
    _n=\${_n%%:*}
    case "
$_inst
" in
      *"
$_n ii"*) ;;
      *) _missing="$_missing $_p" ;;
    esac
  done
  if [ -z "$_missing" ]; then
    end skipped
  else
    work
    echo "Installing:$_missing" >>"$LOG"
    if [ "$(id -u)" = 0 ]; then
      SUDO=
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
      SUDO="sudo -n"
    else
      fail "Cannot install apt packages ($_missing ): user $(id -un) is not root and has no passwordless sudo"
    fi
    command -v apt-get >/dev/null 2>&1 || fail "This host has no apt-get: cannot install$_missing"
    if command -v fuser >/dev/null 2>&1; then
      _waited=0
      while $SUDO fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock >/dev/null 2>&1; do
        [ "$_waited" -ge "$LOCK_S" ] && fail "The dpkg lock is still held after $LOCK_S s (another apt-get, or unattended-upgrades)"
        [ "$_waited" = 0 ] && echo "Waiting for the dpkg lock" >>"$LOG"
        sleep 1
        _waited=$((_waited + 1))
      done
    fi
    aptget() {
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout="$LOCK_S" "$@" </dev/null >>"$LOG" 2>&1 9>&-
    }
    _updated=
    _lists=
    for _f in /var/lib/apt/lists/*_Packages*; do
      [ -e "$_f" ] && _lists=1
      break
    done
    if [ -z "$_lists" ]; then
      aptget update
      _updated=1
    fi
    if ! aptget install $_missing; then
      [ -z "$_updated" ] || fail "apt-get install$_missing failed"
      echo "Retrying after apt-get update" >>"$LOG"
      aptget update
      aptget install $_missing || fail "apt-get install$_missing failed"
    fi
    end completed
  fi
fi

# --- deno: the exact version, downloaded or uploaded
begin deno
DENO="$CACHE/deno/$VER/deno"
if deno_ok "$DENO"; then
  end skipped
else
  work
  _s="tmp/$$-deno"
  rm -rf "\${CACHE:?}/$_s"
  _got=
  if [ "$DENO_MODE" = client ]; then
    _os=$(uname -s)
    _arch=$(uname -m)
    case "$_os/$_arch" in
      Linux/x86_64|Linux/amd64) _target=x86_64-unknown-linux-gnu ;;
      Linux/aarch64|Linux/arm64) _target=aarch64-unknown-linux-gnu ;;
      Darwin/x86_64) _target=x86_64-apple-darwin ;;
      Darwin/arm64|Darwin/aarch64) _target=aarch64-apple-darwin ;;
      *) _target= ;;
    esac
    _url="$DL_URL/release/v$VER/deno-$_target.zip"
    if [ -z "$_target" ]; then
      echo "There is no Deno release for $_os/$_arch" >>"$LOG"
    elif ! command -v unzip >/dev/null 2>&1; then
      echo "unzip is not installed: cannot unpack $_url" >>"$LOG"
    elif probe "$_url"; then
      echo "Downloading $_url" >>"$LOG"
      mkdir -p "$CACHE/$_s" && fetch "$_url" "$CACHE/$_s/deno.zip" &&
        unzip -o -q "$CACHE/$_s/deno.zip" -d "$CACHE/$_s" >>"$LOG" 2>&1 && _got=1
      [ -n "$_got" ] || { echo "The download failed" >>"$LOG"; rm -rf "\${CACHE:?}/$_s"; }
    else
      echo "Cannot reach $_url" >>"$LOG"
    fi
    [ -n "$_got" ] || echo "Uploading the client's Deno instead" >>"$LOG"
  fi
  [ -n "$_got" ] || need deno "$_s" "\"os\":\"$(uname -s)\",\"arch\":\"$(uname -m)\""
  chmod 755 "$CACHE/$_s/deno" 2>>"$LOG" || fail "No Deno binary arrived in $CACHE/$_s"
  deno_ok "$CACHE/$_s/deno" || fail "The Deno binary does not run here or is not version $VER: $("$CACHE/$_s/deno" --version 2>&1 | head -n 1)"
  { mkdir -p "$CACHE/deno/$VER" && mv -f "$CACHE/$_s/deno" "$DENO"; } 2>>"$LOG" || fail "Cannot move Deno to $DENO"
  rm -rf "\${CACHE:?}/$_s"
  end completed
fi

# --- code: the user's bundle and the library's, content-addressed
begin code
CODE="$CACHE/code/$CODE_KEY"
LIB="$CACHE/lib/$LIB_HASH"
_nc=false
_nl=false
has_hash "$CODE" "$CODE_HASH" || _nc=true
has_hash "$LIB" "$LIB_HASH" || _nl=true
if [ $_nc = false ] && [ $_nl = false ]; then
  end skipped
else
  work
  _s="tmp/$$-code"
  rm -rf "\${CACHE:?}/$_s"
  need code "$_s" "\"code\":$_nc,\"lib\":$_nl"
  if [ $_nc = true ]; then
    { mkdir -p "$CACHE/code" && rm -rf "$CODE" && mv "$CACHE/$_s/code" "$CODE"; } 2>>"$LOG" || fail "Cannot move the code to $CODE"
  fi
  if [ $_nl = true ]; then
    { mkdir -p "$CACHE/lib" && rm -rf "$LIB" && mv "$CACHE/$_s/lib" "$LIB"; } 2>>"$LOG" || fail "Cannot move the library to $LIB"
  fi
  rm -rf "\${CACHE:?}/$_s"
  has_hash "$CODE" "$CODE_HASH" && has_hash "$LIB" "$LIB_HASH" || fail "The code arrived incomplete"
  end completed
fi

# --- deps: npm packages, fetched here or shipped from the client
begin deps
DD="$CACHE/deno_dir"
M="$CACHE/markers/deps-$DEPS_KEY-$VER"
if [ -f "$M" ]; then
  end skipped
else
  work
  mkdir -p "$DD/npm" "$CACHE/markers" 2>>"$LOG" || fail "Cannot create $DD"
  _fetched=
  if [ -n "$REGISTRY" ]; then
    if probe "$REGISTRY"; then
      echo "Fetching npm packages from $REGISTRY" >>"$LOG"
      deno_install && _fetched=1 || echo "Fetching failed: shipping them from the client" >>"$LOG"
    else
      echo "Cannot reach $REGISTRY: shipping npm packages from the client" >>"$LOG"
    fi
  fi
  if [ -z "$_fetched" ]; then
    say '{"t":"need","what":"deps-list"}'
    _missing=
    _json=
    while :; do
      IFS= read -r _p || fail "The client stopped answering while listing npm packages"
      [ -n "$_p" ] || break
      [ -d "$DD/npm/$_p" ] || { _missing="$_missing $_p"; _json="$_json\${_json:+,}\"$_p\""; }
    done
    if [ -n "$_missing" ]; then
      _s="tmp/$$-deps"
      rm -rf "\${CACHE:?}/$_s"
      need deps "$_s" "\"packages\":[$_json]"
      for _p in $_missing; do
        _n=\${_p%/*}
        { mkdir -p "$DD/npm/$_n" && mv "$CACHE/$_s/npm/$_p" "$DD/npm/$_p"; } 2>>"$LOG" || fail "Cannot move npm package $_p to $DD/npm"
        if [ -f "$CACHE/$_s/npm/$_n/registry.json" ]; then
          mv -f "$CACHE/$_s/npm/$_n/registry.json" "$DD/npm/$_n/registry.json" 2>>"$LOG"
        fi
      done
      rm -rf "\${CACHE:?}/$_s"
      echo "Shipped:$_missing" >>"$LOG"
    fi
  fi
  deno_install --cached-only || fail "The code's imports do not resolve offline with DENO_DIR=$DD"
  : >"$M" || fail "Cannot write $M"
  end completed
fi

say '{"t":"done"}'
`.replaceAll("\\${", "${");

/**
 * Generates the bootstrap script: POSIX `sh`, no bashisms, run as
 * `sh -c <script>` on the host. It prints JSON lines (`hello`, `phase`,
 * `need`, `done`) and reads the client's answers to `need` on its input; see
 * the module documentation for the phases.
 *
 * @param spec What to make ready.
 * @returns The script.
 *
 * @example
 * ```ts
 * import { bootstrapScript } from "./bootstrap.ts";
 *
 * const script = bootstrapScript({
 *   cacheDir: "$HOME/.cache/skyward", denoVersion: "2.9.6", deno: "client",
 *   denoDownloadUrl: "https://dl.deno.land", apt: ["ffmpeg"], env: { MODE: "prod" },
 *   envHash: "e0", codeHash: "c0", codeKey: "c0", libHash: "l0", depsKey: "d0",
 *   config: { in: "code", path: "deno.json" }, workerEntry: "worker/main.ts",
 *   codeModules: ["main.ts"], npmRegistry: "https://registry.npmjs.org/",
 *   probeTimeoutMs: 3000, aptLockTimeoutMs: 300000,
 * });
 * console.log(script.startsWith("#!/bin/sh")); // true
 * ```
 */
export function bootstrapScript(spec: BootstrapScriptSpec): string {
  const q = (value: string) => shellQuote([value]);
  const hex = (name: string, value: string) => {
    if (!/^[0-9a-zA-Z]+$/.test(value)) {
      throw new TypeError(
        `Cannot generate the bootstrap script: '${name}' must be alphanumeric, got ${
          JSON.stringify(value)
        }`,
      );
    }
    return value;
  };
  for (const name of Object.keys(spec.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new TypeError(
        `Cannot generate the bootstrap script: environment variable names must be shell identifiers, got '${name}'`,
      );
    }
  }
  for (const pkg of spec.apt) {
    if (!/^[a-z0-9][a-z0-9+.:=~-]*$/.test(pkg)) {
      throw new TypeError(
        `Cannot generate the bootstrap script: '${pkg}' is not a Debian package name`,
      );
    }
  }
  const names = spec.apt.map((p) => p.replace(/=.*$/, "").replace(/:.*$/, ""));
  const envLines = Object.entries(spec.env).map(([k, v]) =>
    `export ${k}=${q(v)}`
  );
  const delimiter = `SKYWARD_ENV_${hex("envHash", spec.envHash)}`;
  const dir = (where: "code" | "lib") =>
    where === "code" ? '"$CODE"' : '"$LIB"';
  const config = spec.config
    ? `--config ${dir(spec.config.in)}/${q(spec.config.path)} `
    : "";
  const entries = [
    /^[a-z]+:\/\//.test(spec.workerEntry)
      ? q(spec.workerEntry)
      : `"$LIB"/${q(spec.workerEntry)}`,
    ...spec.codeModules.map((m) => `"$CODE"/${q(m)}`),
  ].join(" \\\n    ");
  const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
  return [
    "#!/bin/sh",
    "# Skyward bootstrap: phases env, apt, deno, code, deps (see src/bootstrap/bootstrap.ts).",
    "set -u",
    "umask 022",
    "LC_ALL=C",
    "export LC_ALL",
    `CACHE=${cacheExpression(spec.cacheDir)}`,
    `VER=${q(spec.denoVersion)}`,
    `DENO_MODE=${q(spec.deno)}`,
    `DL_URL=${q(spec.denoDownloadUrl)}`,
    `APT=${q(spec.apt.join(" "))}`,
    `APT_NAMES=${q(names.join(" "))}`,
    `ENV_HASH=${hex("envHash", spec.envHash)}`,
    `CODE_HASH=${hex("codeHash", spec.codeHash)}`,
    `CODE_KEY=${hex("codeKey", spec.codeKey)}`,
    `LIB_HASH=${hex("libHash", spec.libHash)}`,
    `DEPS_KEY=${hex("depsKey", spec.depsKey)}`,
    `REGISTRY=${q(spec.npmRegistry || "")}`,
    `NPM_REG=${q(spec.npmConfigRegistry ?? "")}`,
    `PROBE_S=${seconds(spec.probeTimeoutMs)}`,
    `LOCK_S=${seconds(spec.aptLockTimeoutMs)}`,
    "write_env() {",
    `  cat <<'${delimiter}'`,
    ...envLines,
    delimiter,
    "}",
    "deno_install() {",
    "  (",
    '    cd "$CODE" || exit 1',
    '    DENO_DIR="$DD"',
    "    DENO_NO_UPDATE_CHECK=1",
    "    export DENO_DIR DENO_NO_UPDATE_CHECK",
    '    if [ -n "$NPM_REG" ]; then NPM_CONFIG_REGISTRY=$NPM_REG; export NPM_CONFIG_REGISTRY; fi',
    `    exec "$DENO" install --entrypoint --quiet --frozen --allow-import "$@" ${config}\\`,
    `    ${entries}`,
    '  ) </dev/null >>"$LOG" 2>&1 9>&-',
    "}",
    SCRIPT_BODY,
  ].join("\n");
}

// ---------------------------------------------------------------------------
// Running it

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
 * import { bootstrap, libraryBundle } from "./bootstrap.ts";
 * import { buildBundle } from "./bundle.ts";
 * import { Image } from "../image.ts";
 * import { LocalHost } from "../transport/host.ts";
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
  let preparing = prepared.get(plan);
  if (!preparing) {
    preparing = prepare(plan);
    prepared.set(plan, preparing);
    preparing.catch(() => prepared.delete(plan));
  }
  const ready = await preparing;
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
      // The code goes as the nodes run it, lockfile pruned (see deps.ts).
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
