/**
 * Sandboxes, seen from the client: checking a compute's sandbox options at
 * definition time, merging the image's default permissions with a
 * compute's, and building the spec that tells a worker where the compute's
 * tasks run.
 *
 * ## The merge rule
 *
 * A sandbox's permissions are decided name by name (`read`, `write`, `net`,
 * `env`, `run`, `ffi`, `sys`, `import`):
 *
 * 1. the compute's own value for that name, when it sets one (so a compute
 *    narrows a default with `false` or a shorter list, and extends it with
 *    `true` or a longer list);
 * 2. else the image's (`sky.Image({ permissions })`);
 * 3. else the library's default, {@linkcode DEFAULT_PERMISSIONS}: reading
 *    the host name (`sys: ["hostname"]`), and nothing else;
 * 4. else denied.
 *
 * The image's variables (`sky.Image({ env })`) are part of the image's
 * default `env` grant: a task sees them, and no other variable of the node,
 * unless its compute sets `env` itself (then it sees what that grants; list
 * the image's variables too to keep them). An image whose `permissions.env`
 * is `false` keeps its variables for the worker process only.
 *
 * @module
 */
import type { SandboxSpec } from "./wire/messages.ts";
import { show } from "./_names.ts";

/** Deno permissions of a task's sandbox, as in `Deno.PermissionOptionsObject`. */
export interface Permissions {
  /** Files and directories it may read (relative paths are relative to the code directory on the node). */
  read?: boolean | string[];
  /** Files and directories it may write. */
  write?: boolean | string[];
  /** Hosts (`host` or `host:port`) it may connect to, or listen on. */
  net?: boolean | string[];
  /** Environment variables it may read and set. */
  env?: boolean | string[];
  /** Programs it may run. A grant escapes the sandbox: see the README's Security section. */
  run?: boolean | string[];
  /** Dynamic libraries it may load. A grant escapes the sandbox: see the README's Security section. */
  ffi?: boolean | string[];
  /** System information it may read, e.g. `["hostname"]`. */
  sys?: boolean | string[];
  /** Remote hosts it may import modules from, e.g. `["example.com:443"]`. */
  import?: boolean | string[];
}

/** The names of the Deno permissions, in the order Deno lists them. */
export const PERMISSION_NAMES = [
  "read",
  "write",
  "net",
  "env",
  "run",
  "ffi",
  "sys",
  "import",
] as const;

/**
 * What a Deno sandbox may do when neither its compute nor the image sets
 * that permission: read the host name (`Deno.hostname()`,
 * `os.hostname()`), which tells a task nothing it cannot learn from
 * `sky.instanceInfo().hostname`. A compute or image that sets `sys`
 * replaces it (`sys: false` denies it).
 *
 * @example
 * ```ts
 * import { DEFAULT_PERMISSIONS, mergePermissions } from "./sandbox.ts";
 *
 * console.log(DEFAULT_PERMISSIONS.sys); // [ "hostname" ]
 * console.log(mergePermissions(undefined, { sys: false }).sys); // false
 * ```
 */
export const DEFAULT_PERMISSIONS: Readonly<Permissions> = Object.freeze({
  sys: Object.freeze(["hostname"]) as unknown as string[],
});

/** Every permission set to a grant; what a worker receives. */
export type ResolvedPermissions = Record<
  (typeof PERMISSION_NAMES)[number],
  boolean | string[]
>;

/** The sandbox options of a compute that this module checks and reads. */
export interface SandboxOptions {
  permissions?: Permissions;
  sandbox?: "deno" | "wasm";
  isolation?: "shared" | "task";
  memoryLimit?: number;
  timeout?: number;
}

/**
 * Checks a permissions object: only known names, each `true`, `false` or an
 * array of non-empty strings.
 *
 * @param action What is being done, for the message ("Cannot create a compute").
 * @param value The permissions.
 * @throws {TypeError} When it is not such an object; the message names the permission.
 */
export function checkPermissions(action: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(
      `${action}: 'permissions' must be an object such as { net: ["example.com"] }, got ${
        show(value)
      }`,
    );
  }
  for (const [name, grant] of Object.entries(value)) {
    if (!(PERMISSION_NAMES as readonly string[]).includes(name)) {
      throw new TypeError(
        `${action}: unknown permission '${name}'; the permissions are ${
          PERMISSION_NAMES.join(", ")
        }`,
      );
    }
    if (grant === undefined || typeof grant === "boolean") continue;
    if (
      !Array.isArray(grant) ||
      !grant.every((g) => typeof g === "string" && g !== "")
    ) {
      throw new TypeError(
        `${action}: permission '${name}' must be true, false or a list of non-empty strings, got ${
          show(grant)
        }`,
      );
    }
    const wildcard = grant.find((g) => g.trim() === "*");
    if (wildcard !== undefined) {
      throw new TypeError(
        `${action}: permission '${name}' lists "*", which Deno does not read as "any": ` +
          `grant every ${WHAT[name]} with { ${name}: true }, or list each one` +
          (name === "net"
            ? ` (such as "example.com" or "example.com:443")`
            : ""),
      );
    }
    if (name === "net" || name === "import") {
      const url = grant.find((g) => /^[a-z][a-z0-9+.-]*:\/\/|\//i.test(g));
      if (url !== undefined) {
        throw new TypeError(
          `${action}: permission '${name}' lists ${
            JSON.stringify(url)
          }, which is not a host: list hosts such as "example.com" or "example.com:443", ` +
            `without a scheme or a path`,
        );
      }
    }
  }
}

/** What each permission grants, for messages. */
const WHAT: Record<string, string> = {
  read: "file",
  write: "file",
  net: "host",
  env: "variable",
  run: "program",
  ffi: "library",
  sys: "system information",
  import: "host to import from",
};

/**
 * The least `memoryLimit` of a Deno sandbox: with less, it cannot load its
 * module. A sandbox's heap holds the library's modules (about 20 MiB) besides
 * the compute's module and what its tasks allocate.
 *
 * @example
 * ```ts
 * import { MIN_DENO_MEMORY } from "./sandbox.ts";
 *
 * console.log(MIN_DENO_MEMORY / 2 ** 20); // 32 (MiB)
 * ```
 */
export const MIN_DENO_MEMORY = 32 * 2 ** 20;
/**
 * The least `memoryLimit` of a WASM (QuickJS) task: with less, QuickJS
 * cannot start.
 *
 * @example
 * ```ts
 * import { MIN_WASM_MEMORY } from "./sandbox.ts";
 *
 * console.log(MIN_WASM_MEMORY / 2 ** 10); // 64 (KiB)
 * ```
 */
export const MIN_WASM_MEMORY = 64 * 2 ** 10;

/** Refuses a value that is neither left out nor one of `choices`. */
function checkChoice(
  action: string,
  name: string,
  value: unknown,
  choices: readonly string[],
): void {
  if (value === undefined || choices.includes(value as string)) return;
  throw new TypeError(
    `${action}: '${name}' must be ${
      choices.map((c) => `"${c}"`).join(" or ")
    }, got ${show(value)}`,
  );
}

/**
 * Checks a compute's sandbox options at definition time.
 *
 * @param fn The compute's function.
 * @param options Its options.
 * @throws {TypeError} When an option has the wrong type, or a `wasm`
 *   compute's function cannot run there (not a plain function expression,
 *   a generator, or given permissions it could not use).
 * @throws {RangeError} When `memoryLimit` is not a positive integer.
 */
export function checkSandboxOptions(
  fn: (...args: any[]) => unknown,
  options: SandboxOptions,
): void {
  const action = "Cannot create a compute";
  checkPermissions(action, options.permissions);
  checkChoice(action, "sandbox", options.sandbox, ["deno", "wasm"]);
  checkChoice(action, "isolation", options.isolation, ["shared", "task"]);
  if (
    options.memoryLimit !== undefined &&
    (!Number.isSafeInteger(options.memoryLimit) || options.memoryLimit <= 0)
  ) {
    throw new RangeError(
      `${action}: 'memoryLimit' must be a positive number of bytes, got ${
        show(options.memoryLimit)
      }`,
    );
  }
  const least = options.sandbox === "wasm" ? MIN_WASM_MEMORY : MIN_DENO_MEMORY;
  if (options.memoryLimit !== undefined && options.memoryLimit < least) {
    throw new RangeError(
      `${action}: 'memoryLimit' is in bytes, and ${options.memoryLimit} bytes is less than a ${
        options.sandbox === "wasm" ? "WASM" : "Deno"
      } sandbox needs (at least ${least}, ${
        least >= 2 ** 20 ? `${least / 2 ** 20} MiB` : `${least / 2 ** 10} KiB`
      }); for 512 MiB write 512 * 2 ** 20`,
    );
  }
  if (options.sandbox === "wasm") {
    if (options.permissions !== undefined) {
      throw new TypeError(
        `${action}: a compute with sandbox "wasm" has no host API, so 'permissions' cannot apply; ` +
          `use sandbox "deno" (the default) for a function that needs them`,
      );
    }
    checkWasmFunction(fn);
  }
}

/**
 * Checks that a function can be shipped as source text to the WASM sandbox:
 * a function or arrow expression, not a class, a method, a bound or native
 * function, or a generator. Whether it is self-contained (no imports, no
 * free variables) is checked on the worker, before its first task runs.
 *
 * @param fn The function.
 * @returns Its source text.
 * @throws {TypeError} When it cannot be shipped; the message says why.
 */
export function checkWasmFunction(fn: (...args: any[]) => unknown): string {
  const source = Function.prototype.toString.call(fn);
  const why = /\{\s*\[native code\]\s*\}\s*$/.test(source)
    ? "it is a native or bound function, which has no source text"
    : /^class\b/.test(source)
    ? "it is a class"
    : /^(async\s*)?function\s*\*/.test(source)
    ? "it is a generator; the WASM sandbox returns one value per call"
    : /^(async\s+)?(function\b|\(|[A-Za-z_$][\w$]*\s*=>)/.test(source)
    ? undefined
    : "it is a method; write it as `(args) => ...` or `function (args) { ... }`";
  if (why) {
    throw new TypeError(
      `Cannot create a compute with sandbox "wasm": ${why}. A WASM compute ships its ` +
        `function's source text, which must be a self-contained function expression.`,
    );
  }
  return source;
}

/**
 * Merges the image's default permissions with a compute's, name by name: the
 * compute's value when it sets one, else the image's, else denied. The
 * image's environment variables are the image's default `env` grant.
 *
 * @param image The image's `permissions` and `env`, if the pool has an image.
 * @param compute The compute's `permissions`.
 * @returns Every permission set.
 *
 * @example
 * ```ts
 * import { mergePermissions } from "./sandbox.ts";
 *
 * const merged = mergePermissions(
 *   { permissions: { net: ["api.example.com"] }, env: { MODE: "prod" } },
 *   { net: false, sys: ["hostname"] },
 * );
 * console.log(merged.net, merged.env, merged.sys); // false [ "MODE" ] [ "hostname" ]
 * ```
 */
export function mergePermissions(
  image:
    | { permissions?: Permissions; env?: Record<string, string> }
    | undefined,
  compute: Permissions | undefined,
): ResolvedPermissions {
  const defaults: Permissions = { ...image?.permissions };
  const names = Object.keys(image?.env ?? {});
  if (names.length > 0 && defaults.env !== true && defaults.env !== false) {
    defaults.env = [...new Set([...(defaults.env ?? []), ...names])];
  }
  const out = {} as ResolvedPermissions;
  for (const name of PERMISSION_NAMES) {
    const grant = compute?.[name] ?? defaults[name] ??
      DEFAULT_PERMISSIONS[name] ?? false;
    out[name] = Array.isArray(grant) ? [...grant] : grant;
  }
  return out;
}

const DENIED =
  /^Requires (read|write|net|env|run|ffi|sys|import) access(?: to "([^"]*)")?/;

/**
 * Advice for a task refused a permission, in place of Deno's "run again
 * with the --allow-… flag" (wrong inside a pool, whose worker runs with
 * every permission): which compute needs which permission, and the option
 * that grants it.
 *
 * @param message Deno's message: `Requires sys access to "hostname", run again with the --allow-sys flag`.
 * @param compute The compute's name.
 * @param granted What its sandbox holds, to extend a list it already has.
 * @returns The advice, or `undefined` when the message is not a refusal.
 *
 * @example
 * ```ts
 * import { explainDenied } from "./sandbox.ts";
 *
 * console.log(explainDenied('Requires sys access to "uid", run again with the --allow-sys flag', "whoami"));
 * // compute 'whoami' needs sys access to "uid", which its sandbox does not grant. Grant it where
 * // the compute is defined: sky.compute(fn, { permissions: { sys: ["uid"] } }) ...
 * ```
 */
export function explainDenied(
  message: string,
  compute: string,
  granted?: Partial<ResolvedPermissions>,
): string | undefined {
  const match = DENIED.exec(message);
  if (!match) return undefined;
  const [, name, what] = match as unknown as [
    string,
    (typeof PERMISSION_NAMES)[number],
    string | undefined,
  ];
  const held = granted?.[name];
  const list = [...(Array.isArray(held) ? held : []), what]
    .filter((v): v is string => v !== undefined);
  const grant = what === undefined
    ? "true"
    : `[${[...new Set(list)].map((v) => JSON.stringify(v)).join(", ")}]`;
  return `compute '${compute}' needs ${name} access${
    what === undefined ? "" : ` to "${what}"`
  }, which its sandbox does not grant. Grant it where the compute is defined: ` +
    `sky.compute(fn, { permissions: { ${name}: ${grant} } })` +
    `, or for every compute of the pool in sky.Image({ permissions: { ${name}: ${grant} } }). ` +
    `See the README's Security section for what each grant allows`;
}

const WASM_MODULE = Symbol.for("skyward.wasmModule");

/** The raw WebAssembly part of a compute made by `sky.wasm`. */
export type WasmModuleSpec = Omit<
  Extract<SandboxSpec, { kind: "wasm" }>,
  "kind"
>;

/** Marks a compute as running an export of a raw WebAssembly module (`sky.wasm`). */
export function setWasmModule(target: object, spec: WasmModuleSpec): void {
  Object.defineProperty(target, WASM_MODULE, { value: spec });
}

const specs = new WeakMap<object, WeakMap<object, SandboxSpec>>();
const NO_IMAGE = {};

/**
 * The spec of a compute's sandbox in a pool with this image: built once and
 * kept.
 *
 * @param compute The compute (its function and options).
 * @param image The pool's image, if any.
 * @returns What the worker needs to run its tasks.
 */
export function sandboxSpecOf(
  compute: { fn: (...args: any[]) => unknown; options: SandboxOptions },
  image?: { permissions?: Permissions; env?: Record<string, string> },
): SandboxSpec {
  let byCompute = specs.get(image ?? NO_IMAGE);
  if (!byCompute) specs.set(image ?? NO_IMAGE, byCompute = new WeakMap());
  let spec = byCompute.get(compute);
  if (spec) return spec;
  const options = compute.options;
  const wasm = (compute as Record<symbol, unknown>)[WASM_MODULE] as
    | WasmModuleSpec
    | undefined;
  if (wasm) spec = { kind: "wasm", ...wasm };
  else if (options.sandbox === "wasm") {
    spec = {
      kind: "js",
      source: checkWasmFunction(compute.fn),
      memoryLimit: options.memoryLimit,
      timeout: options.timeout,
    };
  } else {
    spec = {
      kind: "deno",
      permissions: mergePermissions(image, options.permissions),
      isolation: options.isolation ?? "shared",
      memoryLimit: options.memoryLimit,
    };
  }
  spec = compact(spec);
  byCompute.set(compute, spec);
  return spec;
}

/** Drops `undefined` fields, which MessagePack would send as `null`. */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(
    Object.entries(value).filter(([, v]) => v !== undefined),
  ) as T;
}
