/**
 * The bootstrap script: POSIX `sh` generated from a
 * {@linkcode BootstrapScriptSpec}, in phases (`env`, `apt`, `deno`, `code`,
 * `deps`), each reported as a JSON line; see `bootstrap.ts` for what each
 * phase does and when it is skipped, and for the client's side.
 *
 * @module
 */
import { shellQuote } from "../_shell.ts";

/**
 * Everything the script is generated from; see {@linkcode bootstrapScript}.
 * Paths are relative to the cache directory or to the bundles' roots.
 */
export interface BootstrapScriptSpec {
  /** The cache directory, as in `BootstrapPlan.cacheDir`. */
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
# Records that $DENO passed deno_ok, for the quick look at the top.
deno_mark() {
  [ -f "$CACHE/markers/deno-$VER" ] && return 0
  { mkdir -p "$CACHE/markers" && : >"$CACHE/markers/deno-$VER"; } 2>>"$LOG" || fail "Cannot write $CACHE/markers/deno-$VER"
}
deno_ok() {
  [ -x "$1" ] || return 1
  _v=$("$1" --version 2>/dev/null) || return 1
  case $_v in "deno $VER "*) return 0 ;; esac
  return 1
}

# --- a host that holds everything already: one look with the shell's own
# tests, no lock and no child process (no date, no flock, no deno --version:
# the marker deno-$VER says this binary passed that check).
DENO="$CACHE/deno/$VER/deno"
CODE="$CACHE/code/$CODE_KEY"
LIB="$CACHE/lib/$LIB_HASH"
M="$CACHE/markers/deps-$DEPS_KEY-$VER"
case $CACHE in
  /*)
    if [ -z "$APT" ] && [ -f "$CACHE/env/$ENV_HASH.sh" ] && [ -x "$DENO" ] &&
      [ -f "$CACHE/markers/deno-$VER" ] && [ -f "$M" ] &&
      has_hash "$CODE" "$CODE_HASH" && has_hash "$LIB" "$LIB_HASH"; then
      _out="{\"t\":\"hello\",\"cache\":\"$CACHE\"}"
      for _p in env apt deno code deps; do
        _out="$_out
{\"t\":\"phase\",\"phase\":\"$_p\",\"status\":\"started\",\"elapsedMs\":0}
{\"t\":\"phase\",\"phase\":\"$_p\",\"status\":\"skipped\",\"elapsedMs\":0}"
      done
      say "$_out
{\"t\":\"done\"}"
      exit 0
    fi
    ;;
esac

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
if deno_ok "$DENO"; then
  deno_mark
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
  deno_mark
  end completed
fi

# --- code: the user's bundle and the library's, content-addressed
begin code
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
 * import { bootstrapScript } from "./script.ts";
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
    "# Skyward bootstrap: phases env, apt, deno, code, deps (see src/bootstrap/script.ts).",
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

/**
 * What {@linkcode quickStartScript} needs beyond the bootstrap's spec: where
 * the project is in the code directory, and the environment the worker
 * gets from the cache's place.
 */
export interface QuickStartSpec {
  /** The project's directory in the code directory, if not the code directory itself. */
  project?: string;
  /** `SKYWARD_IMPORT_HOSTS`, when the code imports from hosts. */
  importHosts?: string;
}

/**
 * A POSIX `sh` script that starts the worker at once on a host that holds
 * everything already (the bootstrap's quick look: the same tests, the same
 * files), and otherwise exits with {@linkcode NOT_READY_EXIT} having
 * started nothing. With `SKYWARD_QUICK=1` in its environment it first
 * writes `R` to its standard error when it starts the worker, so that the
 * client knows which before any frame.
 *
 * It sets what the bootstrap's result would set (`DENO_DIR`,
 * `DENO_NO_UPDATE_CHECK`, `SKYWARD_CODE_DIR`, `SKYWARD_IMPORT_HOSTS`,
 * `NPM_CONFIG_REGISTRY`); the image's environment comes with the command.
 *
 * @param spec The bootstrap's spec (an image with apt packages never takes
 *   this path: their check needs `dpkg-query`).
 * @param quick Where the project is, and the import hosts.
 * @returns The script.
 *
 * @example
 * ```ts ignore
 * const script = quickStartScript(spec, { project: "app" });
 * await host.exec(["sh", "-c", script, "skyward-worker"], { env });
 * ```
 */
export function quickStartScript(
  spec: BootstrapScriptSpec,
  quick: QuickStartSpec = {},
): string {
  const q = (value: string) => shellQuote([value]);
  for (
    const [name, value] of [
      ["codeHash", spec.codeHash],
      ["codeKey", spec.codeKey],
      ["libHash", spec.libHash],
      ["depsKey", spec.depsKey],
      ["envHash", spec.envHash],
    ]
  ) {
    if (!/^[0-9a-zA-Z]+$/.test(value)) {
      throw new TypeError(
        `Cannot generate the worker's start: '${name}' must be alphanumeric, got ${
          JSON.stringify(value)
        }`,
      );
    }
  }
  const dir = (where: "code" | "lib") =>
    where === "code" ? '"$CODE"' : '"$LIB"';
  const entry = /^[a-z]+:\/\//.test(spec.workerEntry)
    ? q(spec.workerEntry)
    : `"$LIB"/${q(spec.workerEntry)}`;
  return [
    "set -u",
    `CACHE=${cacheExpression(spec.cacheDir)}`,
    `VER=${q(spec.denoVersion)}`,
    `DENO="$CACHE/deno/$VER/deno"`,
    `CODE="$CACHE/code/${spec.codeKey}"`,
    `LIB="$CACHE/lib/${spec.libHash}"`,
    "has_hash() {",
    "  _h=",
    '  [ -f "$1/.skyward-hash" ] || return 1',
    '  { IFS= read -r _h || :; } <"$1/.skyward-hash"',
    '  [ "$_h" = "$2" ]',
    "}",
    "case $CACHE in /*) ;; *) exit " + NOT_READY_EXIT + " ;; esac",
    `[ -f "$CACHE/env/${spec.envHash}.sh" ] && [ -x "$DENO" ] &&`,
    '  [ -f "$CACHE/markers/deno-$VER" ] &&',
    `  [ -f "$CACHE/markers/deps-${spec.depsKey}-$VER" ] &&`,
    `  has_hash "$CODE" ${q(spec.codeHash)} && has_hash "$LIB" ${
      q(spec.libHash)
    } &&`,
    `  cd "$CODE"${quick.project ? `/${q(quick.project)}` : ""} ||`,
    `  exit ${NOT_READY_EXIT}`,
    'DENO_DIR="$CACHE/deno_dir"',
    "DENO_NO_UPDATE_CHECK=1",
    'SKYWARD_CODE_DIR="$CODE"',
    "export DENO_DIR DENO_NO_UPDATE_CHECK SKYWARD_CODE_DIR",
    ...(quick.importHosts
      ? [
        `SKYWARD_IMPORT_HOSTS=${q(quick.importHosts)}`,
        "export SKYWARD_IMPORT_HOSTS",
      ]
      : []),
    ...(spec.npmConfigRegistry
      ? [
        `NPM_CONFIG_REGISTRY=${q(spec.npmConfigRegistry)}`,
        "export NPM_CONFIG_REGISTRY",
      ]
      : []),
    `[ "\${SKYWARD_QUICK:-}" = 1 ] && printf R >&2`,
    "unset SKYWARD_QUICK",
    `exec "$DENO" run --quiet --no-prompt -A --unstable-worker-options --cached-only --frozen ${
      spec.config
        ? `--config ${dir(spec.config.in)}/${q(spec.config.path)} `
        : ""
    }${entry}`,
  ].join("\n");
}

/**
 * The exit status of {@linkcode quickStartScript} on a host that is not
 * ready (it then started nothing).
 *
 * @example
 * ```ts
 * import { NOT_READY_EXIT } from "./script.ts";
 *
 * console.log(NOT_READY_EXIT); // 86
 * ```
 */
export const NOT_READY_EXIT = 86;
