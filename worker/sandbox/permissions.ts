/**
 * The permissions of sandboxes: the sets a sandbox starts with, relative
 * paths resolved against the code directory, the extra access a sandbox
 * host is given only to load modules (and which the sandbox drops before
 * its first task), and whether this process may grant permissions at all.
 *
 * @module
 */
import type { SandboxSpec } from "../../src/wire/messages.ts";

/** The Deno permissions of a sandbox, every name present. */
export type Permissions = Extract<SandboxSpec, { kind: "deno" }>["permissions"];

/** Nothing granted: a WASM sandbox, and a compute that was never defined. */
export const NO_PERMISSIONS: Permissions = {
  read: false,
  write: false,
  net: false,
  env: false,
  run: false,
  ffi: false,
  sys: false,
  import: false,
};

/**
 * What a compute that sets no permission runs with (the client's
 * `DEFAULT_PERMISSIONS`): the warm spare sandbox holds these.
 */
export const DEFAULT_PERMISSIONS: Permissions = {
  ...NO_PERMISSIONS,
  sys: ["hostname"],
};

/** Hosts Deno imports remote modules from by default; granted for loading only. */
const DEFAULT_IMPORT_HOSTS = [
  "deno.land:443",
  "jsr.io:443",
  "esm.sh:443",
  "cdn.jsdelivr.net:443",
  "raw.githubusercontent.com:443",
  "gist.githubusercontent.com:443",
  // Those of the remote modules shipped (vendored) with the code.
  ...(envOf("SKYWARD_IMPORT_HOSTS") ?? "").split(",").filter(Boolean),
];

function envOf(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * The path of a `file:` URL, decoded.
 *
 * @example
 * ```ts
 * import { filePath } from "./permissions.ts";
 *
 * console.log(filePath(new URL("file:///srv/my%20code/"))); // "/srv/my code/"
 * ```
 */
export function filePath(url: URL): string {
  return decodeURIComponent(url.pathname);
}

/**
 * The permissions with their relative paths (`read`, `write`, `ffi`)
 * resolved against the code directory.
 *
 * @example
 * ```ts
 * import { NO_PERMISSIONS, resolvePaths } from "./permissions.ts";
 *
 * const resolved = resolvePaths({ ...NO_PERMISSIONS, read: ["data", "/tmp"] }, "file:///srv/code/");
 * console.log(resolved.read); // ["/srv/code/data", "/tmp"]
 * ```
 */
export function resolvePaths(
  permissions: Permissions,
  codeUrl: string,
): Permissions {
  const out = { ...permissions };
  for (const name of ["read", "write", "ffi"] as const) {
    const grant = out[name];
    if (Array.isArray(grant)) {
      out[name] = grant.map((p) =>
        p.startsWith("/") ? p : filePath(new URL(p, codeUrl))
      );
    }
  }
  return out;
}

function covers(grant: boolean | string[], path: string): boolean {
  if (grant === true) return true;
  if (grant === false) return false;
  return grant.some((p) =>
    path === p || path.startsWith(p.endsWith("/") ? p : `${p}/`)
  );
}

/**
 * The permissions of a sandbox host: the sandbox's own, plus read access to
 * the modules it loads and the hosts Deno imports remote modules from by
 * default, where the sandbox's own do not already give them. Those extras
 * are dropped by the sandbox before its first task (`revoke`).
 *
 * @example
 * ```ts
 * import { loadPermissions, NO_PERMISSIONS } from "./permissions.ts";
 *
 * const { options, revoke } = loadPermissions(NO_PERMISSIONS, ["/srv/code"], false);
 * console.log(options.read, revoke); // ["/srv/code"] [{ name: "read", path: "/srv/code" }]
 * ```
 */
export function loadPermissions(
  permissions: Permissions,
  paths: string[],
  remote: boolean,
): {
  options: Deno.PermissionOptionsObject;
  revoke: Deno.PermissionDescriptor[];
} {
  const revoke: Deno.PermissionDescriptor[] = [];
  const read = permissions.read;
  const extraPaths = paths.filter((p) => !covers(read, p));
  for (const path of extraPaths) revoke.push({ name: "read", path });
  const imports = permissions.import;
  const extraHosts = remote && imports !== true
    ? DEFAULT_IMPORT_HOSTS.filter((h) =>
      !(imports || []).some((g) => g === h || `${g}:443` === h)
    )
    : [];
  for (const host of extraHosts) revoke.push({ name: "import", host });
  return {
    options: {
      ...permissions,
      read: extraPaths.length === 0
        ? read
        : [...(Array.isArray(read) ? read : []), ...extraPaths],
      import: extraHosts.length === 0
        ? imports
        : [...(Array.isArray(imports) ? imports : []), ...extraHosts],
    } as Deno.PermissionOptionsObject,
    revoke,
  };
}

let enabled: boolean | undefined;

/**
 * Whether this process may give Web Workers permissions
 * (`--unstable-worker-options`, on the command line or in its config).
 *
 * @example
 * ```ts ignore
 * import { workerOptions } from "./permissions.ts";
 *
 * if (!workerOptions()) throw new Error("start the worker with --unstable-worker-options");
 * ```
 */
export function workerOptions(): boolean {
  if (enabled !== undefined) return enabled;
  let argv: string[];
  try {
    argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0");
  } catch {
    return enabled = true; // Not Linux: assume so; Deno says otherwise.
  }
  if (
    argv.some((a) => a === "--unstable-worker-options" || a === "--unstable")
  ) {
    return enabled = true;
  }
  const at = argv.findIndex((a) => a === "--config" || a === "-c");
  const config = at >= 0
    ? argv[at + 1]
    : argv.find((a) => a.startsWith("--config="))?.slice(9);
  try {
    const unstable = config
      ? JSON.parse(Deno.readTextFileSync(config)).unstable
      : undefined;
    return enabled = Array.isArray(unstable) &&
      unstable.includes("worker-options");
  } catch {
    return enabled = false;
  }
}
