/**
 * Builds the container provider's base image: Debian with `openssh-server`
 * and a login user `sky` (shell `/bin/sh`, uid 1000). It holds no Deno: the
 * pool uploads the client's own binary, as to any host that cannot
 * download it. Two routes make the same image:
 *
 * - **Dockerfile** (`--dockerfile`): `docker build` (or `podman build`) of a
 *   generated Dockerfile `FROM debian:bookworm-slim`. Needs no root and no
 *   clone of this repository, only a daemon that reaches a registry (or
 *   has the base image already).
 * - **debootstrap** (`--debootstrap`): a minimal root file system made by
 *   `debootstrap` from a Debian mirror, imported with `docker import`. For
 *   machines without a registry; needs root and `debootstrap`.
 *
 * Without either flag the Dockerfile route is taken when the base image is
 * in the daemon's store or its registry answers, else debootstrap; an
 * automatic Dockerfile build that fails falls back to debootstrap when it
 * can run.
 *
 * ```sh
 * deno run -A jsr:@skyward/skyward/cli image build              # either route, as above
 * deno run -A jsr:@skyward/skyward/cli image build --dockerfile --base registry.example/debian:bookworm-slim
 * deno run -A jsr:@skyward/skyward/cli image build --debootstrap --mirror http://deb.debian.org/debian
 * deno run -A jsr:@skyward/skyward/cli image build --dry-run    # says which route, builds nothing
 * deno run -A jsr:@skyward/skyward/cli image dockerfile > Dockerfile
 * deno task image:build                                          # from a clone: the debootstrap route
 * ```
 *
 * Any image can serve instead (`sky.Container({ image })`) if it has
 * `/bin/sh`, `/usr/sbin/sshd`, `tar`, coreutils and either a user `sky` or
 * `useradd`.
 *
 * @module
 */
import { COMMAND_PATH, runCommand } from "./command.ts";

/** The image {@linkcode buildImage} makes and `sky.Container()` runs by default. */
export const DEFAULT_IMAGE = "skyward-base:bookworm-v1";

/** The login user the image has, and that the provider logs in as. */
export const IMAGE_USER = "sky";

/** Options of {@linkcode buildImage}. */
/** The two ways to build the base image; see the module documentation. */
export type ImageRoute = "dockerfile" | "debootstrap";

/** The Dockerfile route's base image by default. */
export const DEFAULT_BASE = "debian:bookworm-slim";

/** Options of {@linkcode buildImage}. */
export interface BuildImageOptions {
  /**
   * The container CLI that builds (or imports) the image.
   * @default "docker"
   */
  binary?: "docker" | "podman";
  /**
   * The image's name and tag.
   * @default DEFAULT_IMAGE
   */
  tag?: string;
  /**
   * How to build it: `"dockerfile"`, `"debootstrap"`, or `"auto"`: the
   * Dockerfile when its base image is in the store or its registry answers
   * (falling back to debootstrap if that build fails), else debootstrap.
   * @default "auto"
   */
  route?: ImageRoute | "auto";
  /**
   * The Dockerfile route's base image: any Debian-based image; what it
   * lacks of `openssh-server` and the user `sky` is added.
   * @default "debian:<suite>-slim" ("debian:bookworm-slim")
   */
  base?: string;
  /**
   * The Dockerfile route's build network (`docker build --network`), e.g.
   * `"host"` where the daemon has no bridge network.
   * @default the builder's own default
   */
  network?: string;
  /**
   * The debootstrap route's Debian mirror.
   * @default the first `deb.debian.org`-style URI of this machine's apt sources, else "http://deb.debian.org/debian"
   */
  mirror?: string;
  /**
   * The Debian release: debootstrap's suite, and the default base's tag.
   * @default "bookworm"
   */
  suite?: string;
  /**
   * Builds even when the image is present.
   * @default false
   */
  force?: boolean;
  /**
   * How long the base image's registry may take to answer, in milliseconds.
   * @default 3000
   */
  probeTimeout?: number;
  /** Called with each step, for progress output. */
  onStep?: (message: string) => void;
}

/** What {@linkcode buildImage} did. */
export interface BuildImageResult {
  /** The image's name and tag. */
  tag: string;
  /** Whether it was already present, or copied from the other CLI's store (and nothing was built). */
  reused: boolean;
  /** The CLI whose copy was loaded, when it was copied. */
  copiedFrom?: "docker" | "podman";
  /** The route that built it, when it was built. */
  route?: ImageRoute;
  /** Time spent, in milliseconds, by step (0 for a step not taken). */
  timings: {
    debootstrapMs: number;
    importMs: number;
    buildMs: number;
    totalMs: number;
  };
}

/** Which route a build takes, and why; see {@linkcode planImageBuild}. */
export interface ImageBuildPlan {
  /** The route. */
  route: ImageRoute;
  /** Why, in a sentence. */
  reason: string;
  /** When the route is the Dockerfile, whether debootstrap can take over if it fails. */
  fallback: boolean;
}
const run = runCommand;

async function must(program: string, args: string[]): Promise<string> {
  const out = await run(program, args);
  if (out.code !== 0) {
    throw new Error(
      `Cannot build the base image: '${program} ${
        args.join(" ")
      }' failed (exit ${out.code}): ${
        (out.stderr || out.stdout).trim().split("\n").slice(-15).join("\n")
      }`,
    );
  }
  return out.stdout;
}

async function defaultMirror(): Promise<string> {
  const files = ["/etc/apt/sources.list"];
  try {
    for await (const entry of Deno.readDir("/etc/apt/sources.list.d")) {
      files.push(`/etc/apt/sources.list.d/${entry.name}`);
    }
  } catch { /* none */ }
  for (const file of files) {
    const text = await Deno.readTextFile(file).catch(() => "");
    const uri = text.match(/^URIs:\s*(\S+\/debian)\/?\s*$/m)?.[1] ??
      text.match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+/m)?.[1];
    if (uri) return uri;
  }
  return "http://deb.debian.org/debian";
}

/** Runs `from | to`, and throws with their error output when either fails. */
async function pipe(from: string[], to: string[]): Promise<void> {
  const spawn = (argv: string[], stdin: "null" | "piped") =>
    new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: { PATH: COMMAND_PATH },
      stdin,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  const source = spawn(from, "null");
  const sink = spawn(to, "piped");
  await source.stdout.pipeTo(sink.stdin).catch(() => {});
  const [a, b] = await Promise.all([source.output(), sink.output()]);
  if (!a.success || !b.success) {
    const text = new TextDecoder();
    throw new Error(
      `Cannot build the base image: '${from.join(" ")} | ${
        to.join(" ")
      }' failed: ${(text.decode(a.stderr) + text.decode(b.stderr)).trim()}`,
    );
  }
}

/** Whether the image is present in the daemon's store. */
export async function imagePresent(
  tag: string = DEFAULT_IMAGE,
  binary: "docker" | "podman" = "docker",
): Promise<boolean> {
  return (await run(binary, ["image", "inspect", tag])).code === 0;
}

/**
 * The Dockerfile of the base image: from a Debian-based image, installs
 * `openssh-server` unless present, adds the login user `sky` (shell
 * `/bin/sh`, uid 1000, unlocked for sshd without PAM) unless present, and
 * removes the host keys (the provider makes one per container).
 *
 * @param options The base image and the tag written to `/etc/skyward-image`.
 * @returns The Dockerfile's text.
 *
 * @example
 * ```ts
 * import { dockerfile } from "./image.ts";
 *
 * console.log(dockerfile().split("\n").find((l) => l.startsWith("FROM")));
 * // FROM debian:bookworm-slim
 * ```
 */
export function dockerfile(
  options: { base?: string; tag?: string } = {},
): string {
  const base = options.base ?? DEFAULT_BASE;
  const tag = options.tag ?? DEFAULT_IMAGE;
  for (const [name, value] of [["base", base], ["tag", tag]]) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/.test(value)) {
      throw new TypeError(
        `Cannot write the Dockerfile: '${name}' must be an image reference, got ${
          JSON.stringify(value)
        }`,
      );
    }
  }
  return [
    `# The base image of Skyward's container provider (${tag}).`,
    "# Build: docker build -t " + tag + " -f Dockerfile .",
    `FROM ${base}`,
    "RUN set -eu; \\",
    "    if [ ! -x /usr/sbin/sshd ]; then \\",
    "      apt-get update; \\",
    "      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server; \\",
    "      rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb; \\",
    "    fi; \\",
    `    id ${IMAGE_USER} >/dev/null 2>&1 || useradd -m -u 1000 -s /bin/sh ${IMAGE_USER}; \\`,
    `    usermod -p '*' ${IMAGE_USER}; \\`,
    "    rm -f /etc/ssh/ssh_host_*; \\",
    "    mkdir -p /run/sshd; \\",
    `    printf '%s\\n' '${tag}' >/etc/skyward-image`,
    'CMD ["/bin/sh"]',
    "",
  ].join("\n");
}

/**
 * The URL that tells whether an image's registry answers: its `/v2/` API
 * root (Docker Hub's for an image without a registry host).
 *
 * @param image An image reference, e.g. `debian:bookworm-slim`.
 * @returns The URL to probe.
 *
 * @example
 * ```ts
 * import { registryProbeUrl } from "./image.ts";
 *
 * console.log(registryProbeUrl("debian:bookworm-slim")); // https://registry-1.docker.io/v2/
 * console.log(registryProbeUrl("127.0.0.1:5000/debian:bookworm-slim")); // http://127.0.0.1:5000/v2/
 * ```
 */
export function registryProbeUrl(image: string): string {
  const first = image.split("/")[0];
  const explicit = image.includes("/") &&
    (first.includes(".") || first.includes(":") || first === "localhost");
  const host = explicit ? first : "registry-1.docker.io";
  const loopback = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(host);
  // Docker talks plain HTTP to registries on loopback, TLS elsewhere.
  return `${loopback ? "http" : "https"}://${host}/v2/`;
}

/** Whether a registry answers at all (a 401 is an answer) within `ms`. */
async function registryAnswers(url: string, ms: number): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(ms) });
    await response.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

/** Why the debootstrap route cannot run here, or `undefined` when it can. */
async function debootstrapMissing(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "debootstrap runs on Linux only";
  if (Deno.uid() !== 0) return `debootstrap needs root (uid is ${Deno.uid()})`;
  if ((await run("sh", ["-c", "command -v debootstrap"])).code !== 0) {
    return "debootstrap is not installed (apt-get install -y debootstrap)";
  }
  return undefined;
}

function checkRouteOptions(options: BuildImageOptions): void {
  const route = options.route ?? "auto";
  if (!["auto", "dockerfile", "debootstrap"].includes(route)) {
    throw new TypeError(
      `Cannot build the base image: 'route' must be "auto", "dockerfile" or "debootstrap", got ${
        JSON.stringify(route)
      }`,
    );
  }
  if (route === "dockerfile" && options.mirror !== undefined) {
    throw new TypeError(
      "Cannot build the base image: 'mirror' is for the debootstrap route; the Dockerfile " +
        "route installs from the base image's own apt sources (choose another 'base')",
    );
  }
  if (route === "debootstrap") {
    for (const name of ["base", "network"] as const) {
      if (options[name] !== undefined) {
        throw new TypeError(
          `Cannot build the base image: '${name}' is for the Dockerfile route, not debootstrap`,
        );
      }
    }
  }
}

/**
 * Decides how {@linkcode buildImage} would build: the route asked for, or
 * for `"auto"` the Dockerfile when the base image is in the store or its
 * registry answers (and no `mirror` was given), else debootstrap when it
 * can run here.
 *
 * @param options As for {@linkcode buildImage}.
 * @returns The route, the reason, and whether debootstrap could take over.
 * @throws {Error} When neither route can run here; the message says what each needs.
 *
 * @example
 * ```ts ignore
 * import { planImageBuild } from "./image.ts";
 *
 * const plan = await planImageBuild();
 * console.log(plan.route, plan.reason);
 * ```
 */
export async function planImageBuild(
  options: BuildImageOptions = {},
): Promise<ImageBuildPlan> {
  checkRouteOptions(options);
  const route = options.route ?? "auto";
  const binary = options.binary ?? "docker";
  const base = options.base ?? `debian:${options.suite ?? "bookworm"}-slim`;
  if (route === "dockerfile") {
    return { route, reason: "asked for (--dockerfile)", fallback: false };
  }
  const missing = await debootstrapMissing();
  if (route === "debootstrap") {
    if (missing) throw new Error(`Cannot build the base image: ${missing}`);
    return { route, reason: "asked for (--debootstrap)", fallback: false };
  }
  if (options.mirror !== undefined) {
    if (missing) throw new Error(`Cannot build the base image: ${missing}`);
    return {
      route: "debootstrap",
      reason: `a Debian mirror was given (${options.mirror})`,
      fallback: false,
    };
  }
  if (await imagePresent(base, binary)) {
    return {
      route: "dockerfile",
      reason: `the base image ${base} is in ${binary}'s store`,
      fallback: !missing,
    };
  }
  const probe = registryProbeUrl(base);
  if (await registryAnswers(probe, options.probeTimeout ?? 3_000)) {
    return {
      route: "dockerfile",
      reason: `the registry of ${base} answers (${probe})`,
      fallback: !missing,
    };
  }
  if (missing) {
    throw new Error(
      `Cannot build the base image: the Dockerfile route needs ${base}, which is not in ` +
        `${binary}'s store and whose registry does not answer (${probe}); the debootstrap ` +
        `route cannot run either: ${missing}. Pull or load ${base} (or pass --base with an ` +
        `image you have), or run as root with debootstrap installed`,
    );
  }
  return {
    route: "debootstrap",
    reason:
      `${base} is not in ${binary}'s store and its registry does not answer (${probe})`,
    fallback: false,
  };
}

/** The Dockerfile route: `<binary> build` in a directory holding only the Dockerfile. */
async function buildFromDockerfile(
  options: BuildImageOptions,
  tag: string,
): Promise<number> {
  const binary = options.binary ?? "docker";
  const base = options.base ?? `debian:${options.suite ?? "bookworm"}-slim`;
  const dir = await Deno.makeTempDir({ prefix: "skyward-image-" });
  try {
    await Deno.writeTextFile(`${dir}/Dockerfile`, dockerfile({ base, tag }));
    const t0 = Date.now();
    await must(binary, [
      "build",
      ...(options.network ? ["--network", options.network] : []),
      "-t",
      tag,
      "-f",
      `${dir}/Dockerfile`,
      dir,
    ]);
    return Date.now() - t0;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The debootstrap route; returns the time of each step. */
async function buildWithDebootstrap(
  options: BuildImageOptions,
  tag: string,
): Promise<{ debootstrapMs: number; importMs: number }> {
  const binary = options.binary ?? "docker";
  const step = options.onStep ?? (() => {});
  const mirror = options.mirror ?? await defaultMirror();
  const suite = options.suite ?? "bookworm";
  const dir = await Deno.makeTempDir({
    dir: "/var/tmp",
    prefix: "skyward-rootfs-",
  });
  try {
    step(`debootstrap --variant=minbase ${suite} from ${mirror}`);
    const t0 = Date.now();
    await must("debootstrap", [
      "--variant=minbase",
      "--include=openssh-server",
      suite,
      dir,
      mirror,
    ]);
    const debootstrapMs = Date.now() - t0;
    step(`debootstrap done in ${(debootstrapMs / 1000).toFixed(1)} s`);
    // The login user: sh as its shell (fast to start), unlocked for sshd
    // without PAM. Host keys are made per container by the provider.
    await must("chroot", [
      dir,
      "useradd",
      "-m",
      "-u",
      "1000",
      "-s",
      "/bin/sh",
      IMAGE_USER,
    ]);
    await must("chroot", [dir, "usermod", "-p", "*", IMAGE_USER]);
    await must("sh", [
      "-c",
      `rm -f '${dir}'/etc/ssh/ssh_host_* && rm -rf '${dir}'/var/lib/apt/lists/* ` +
      `'${dir}'/var/cache/apt/*.bin '${dir}'/var/cache/apt/archives/*.deb && ` +
      `mkdir -p '${dir}/run/sshd' && printf '%s\\n' '${tag}' >'${dir}/etc/skyward-image'`,
    ]);
    step(`${binary} import ${tag}`);
    const t1 = Date.now();
    await pipe(
      ["tar", "--numeric-owner", "-C", dir, "-c", "."],
      [binary, "import", "--change", 'CMD ["/bin/sh"]', "-", tag],
    );
    const importMs = Date.now() - t1;
    step(`imported in ${(importMs / 1000).toFixed(1)} s`);
    return { debootstrapMs, importMs };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Builds the base image, or reuses it when present (in this CLI's store,
 * or copied from the other CLI's).
 *
 * @param options The CLI, tag, route and the route's options.
 * @returns The tag, whether it was reused, the route, and the time spent.
 * @throws {Error} When neither route can run, or when a step fails (its output's tail is in the message).
 *
 * @example
 * ```ts ignore
 * import { buildImage } from "./image.ts";
 *
 * const { tag, reused, route, timings } = await buildImage();
 * console.log(tag, reused ? "reused" : `built by ${route} in ${timings.totalMs} ms`);
 * ```
 */
export async function buildImage(
  options: BuildImageOptions = {},
): Promise<BuildImageResult> {
  const started = Date.now();
  checkRouteOptions(options);
  const binary = options.binary ?? "docker";
  const tag = options.tag ?? DEFAULT_IMAGE;
  const step = options.onStep ?? (() => {});
  const timings = { debootstrapMs: 0, importMs: 0, buildMs: 0, totalMs: 0 };
  const done = (result: Omit<BuildImageResult, "timings">) => ({
    ...result,
    timings: { ...timings, totalMs: Date.now() - started },
  });
  if (!options.force && await imagePresent(tag, binary)) {
    step(`${tag} is present: reused`);
    return done({ tag, reused: true });
  }
  const other = binary === "docker" ? "podman" : "docker";
  if (!options.force && await imagePresent(tag, other)) {
    step(`${other} has ${tag}: copying it (${other} save | ${binary} load)`);
    const t0 = Date.now();
    await pipe([other, "save", tag], [binary, "load", "-q"]);
    timings.importMs = Date.now() - t0;
    step(`copied in ${(timings.importMs / 1000).toFixed(1)} s`);
    return done({ tag, reused: true, copiedFrom: other });
  }
  const plan = await planImageBuild(options);
  step(`${plan.route} route: ${plan.reason}`);
  if (plan.route === "dockerfile") {
    try {
      timings.buildMs = await buildFromDockerfile(options, tag);
      step(`built in ${(timings.buildMs / 1000).toFixed(1)} s`);
      return done({ tag, reused: false, route: "dockerfile" });
    } catch (error) {
      if (!plan.fallback) throw error;
      step(
        `the Dockerfile build failed, trying debootstrap: ${
          (error as Error).message.split("\n").at(-1)
        }`,
      );
    }
  }
  Object.assign(timings, await buildWithDebootstrap(options, tag));
  return done({ tag, reused: false, route: "debootstrap" });
}

const IMAGE_USAGE = `Usage: skyward image <command> [options]

Commands:
  build       Build the container provider's base image (${DEFAULT_IMAGE})
              unless it is present
  dockerfile  Print the Dockerfile the build uses

Options of build:
  --dockerfile       Build from a Dockerfile FROM ${DEFAULT_BASE}
                     (no root; needs a registry or the base image)
  --debootstrap      Build with debootstrap from a Debian mirror
                     (offline machines; needs root and debootstrap)
                     Neither: the Dockerfile when its base image is in the
                     store or its registry answers, else debootstrap
  --base IMAGE       The Dockerfile's base image (default ${DEFAULT_BASE})
  --network NAME     The Dockerfile build's network, e.g. host
  --mirror URL       debootstrap's Debian mirror
  --suite NAME       The Debian release (default bookworm)
  --binary NAME      docker or podman (default docker)
  --tag TAG          The image's name (default ${DEFAULT_IMAGE})
  --force            Build even when the image is present
  --dry-run          Say which route would build it; build nothing

Options of dockerfile:
  --base IMAGE, --suite NAME, --tag TAG as above

The daemon is the one DOCKER_HOST (Podman: CONTAINER_HOST) names.
`;

/**
 * The `skyward image` command: `build` and `dockerfile`.
 *
 * @param args The arguments after `image`.
 * @returns The exit code: 0 done, 1 failed, 2 bad usage.
 *
 * @example
 * ```ts
 * import { imageCommand } from "./image.ts";
 *
 * await imageCommand(["dockerfile"]); // prints the Dockerfile
 * ```
 */
export async function imageCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    const { parseArgs } = await import("node:util");
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        dockerfile: { type: "boolean", default: false },
        debootstrap: { type: "boolean", default: false },
        base: { type: "string" },
        network: { type: "string" },
        mirror: { type: "string" },
        suite: { type: "string" },
        binary: { type: "string", default: "docker" },
        tag: { type: "string", default: DEFAULT_IMAGE },
        force: { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${IMAGE_USAGE}`);
    return 2;
  }
  const [command, ...rest] = parsed.positionals;
  const values = parsed.values;
  if (values.help || command === "help") {
    console.log(IMAGE_USAGE);
    return 0;
  }
  const usage = (message: string) => {
    console.error(`${message}\n\n${IMAGE_USAGE}`);
    return 2;
  };
  if (command !== "build" && command !== "dockerfile") {
    return usage(
      command ? `Unknown image command '${command}'` : "Missing image command",
    );
  }
  if (rest.length > 0) return usage(`Unexpected argument '${rest[0]}'`);
  if (values.binary !== "docker" && values.binary !== "podman") {
    return usage(`--binary must be docker or podman, got '${values.binary}'`);
  }
  if (values.dockerfile && values.debootstrap) {
    return usage("Choose one of --dockerfile and --debootstrap");
  }
  const base = values.base ??
    (values.suite ? `debian:${values.suite}-slim` : undefined);
  try {
    if (command === "dockerfile") {
      for (
        const flag of ["dockerfile", "debootstrap", "force", "dry-run"] as const
      ) {
        if (values[flag]) return usage(`--${flag} is an option of image build`);
      }
      for (const flag of ["network", "mirror"] as const) {
        if (values[flag] !== undefined) {
          return usage(`--${flag} is an option of image build`);
        }
      }
      console.log(dockerfile({ base, tag: values.tag }));
      return 0;
    }
    const options: BuildImageOptions = {
      binary: values.binary,
      tag: values.tag,
      route: values.dockerfile
        ? "dockerfile"
        : values.debootstrap
        ? "debootstrap"
        : "auto",
      ...(values.base !== undefined ? { base: values.base } : {}),
      ...(values.network !== undefined ? { network: values.network } : {}),
      ...(values.mirror !== undefined ? { mirror: values.mirror } : {}),
      ...(values.suite !== undefined ? { suite: values.suite } : {}),
      force: values.force,
      onStep: (m) => console.error(`image: ${m}`),
    };
    if (values["dry-run"]) {
      checkRouteOptions(options);
      if (!values.force && await imagePresent(values.tag, values.binary)) {
        console.log(`${values.tag} is present: nothing to build`);
        return 0;
      }
      const plan = await planImageBuild(options);
      console.log(
        `Would build ${values.tag} by the ${plan.route} route: ${plan.reason}` +
          (plan.fallback ? " (debootstrap if that build fails)" : ""),
      );
      return 0;
    }
    const result = await buildImage(options);
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(
      result.copiedFrom
        ? `${result.tag}: copied from ${result.copiedFrom} in ${
          s(result.timings.totalMs)
        }`
        : result.reused
        ? `${result.tag}: present, reused`
        : result.route === "dockerfile"
        ? `${result.tag}: built from the Dockerfile in ${
          s(result.timings.totalMs)
        }`
        : `${result.tag}: built by debootstrap in ${
          s(result.timings.totalMs)
        } ` +
          `(debootstrap ${s(result.timings.debootstrapMs)}, import ${
            s(result.timings.importMs)
          })`,
    );
    return 0;
  } catch (error) {
    console.error((error as Error).message);
    return error instanceof TypeError ? 2 : 1;
  }
}

if (import.meta.main) {
  // `deno task image:build [--force] [--binary podman] ...`: as `skyward image build`.
  Deno.exit(await imageCommand(["build", ...Deno.args]));
}
