/**
 * Builds the container provider's base image without a registry: a minimal
 * Debian root file system made by `debootstrap` from Debian's mirror, with
 * `openssh-server` and a login user `sky` (shell `/bin/sh`), imported with
 * `docker import` (or `podman import`). It holds no Deno: the pool uploads
 * the client's own binary, as to any host that cannot download it.
 *
 * ```sh
 * deno task image:build                      # builds skyward-base:bookworm-v1 unless present
 * deno task image:build --force              # builds it again
 * deno task image:build --binary podman    # copies Docker's image when Docker has it, else builds
 * deno task image:build --mirror http://deb.debian.org/debian --suite bookworm
 * ```
 *
 * Needs root and `debootstrap` (`apt-get install -y debootstrap`); about a
 * minute with a nearby mirror. The image talks to whatever daemon
 * `DOCKER_HOST` names.
 *
 * Any image can serve instead (`sky.Container({ image })`) if it has
 * `/bin/sh`, `/usr/sbin/sshd`, `tar`, coreutils and either a user `sky` or
 * `useradd`.
 *
 * @module
 */
import { COMMAND_PATH, runCommand } from "./_command.ts";

/** The image {@linkcode buildImage} makes and `sky.Container()` runs by default. */
export const DEFAULT_IMAGE = "skyward-base:bookworm-v1";

/** The login user the image has, and that the provider logs in as. */
export const IMAGE_USER = "sky";

/** Options of {@linkcode buildImage}. */
export interface BuildImageOptions {
  /**
   * The container CLI that imports the image.
   * @default "docker"
   */
  binary?: "docker" | "podman";
  /**
   * The image's name and tag.
   * @default DEFAULT_IMAGE
   */
  tag?: string;
  /**
   * The Debian mirror `debootstrap` downloads from.
   * @default the first `deb.debian.org`-style URI of this machine's apt sources, else "http://deb.debian.org/debian"
   */
  mirror?: string;
  /**
   * The Debian release.
   * @default "bookworm"
   */
  suite?: string;
  /**
   * Builds even when the image is present.
   * @default false
   */
  force?: boolean;
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
  /** Time spent, in milliseconds, by step. */
  timings: { debootstrapMs: number; importMs: number; totalMs: number };
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
 * Builds the base image, or reuses it when present.
 *
 * @param options The CLI, tag, mirror and suite.
 * @returns The tag, whether it was reused, and the time spent.
 * @throws {Error} When not root, when `debootstrap` is missing, or when a step fails (its output's tail is in the message).
 *
 * @example
 * ```ts ignore
 * import { buildImage } from "./image.ts";
 *
 * const { tag, reused, timings } = await buildImage();
 * console.log(tag, reused ? "reused" : `built in ${timings.totalMs} ms`);
 * ```
 */
export async function buildImage(
  options: BuildImageOptions = {},
): Promise<BuildImageResult> {
  const started = Date.now();
  const binary = options.binary ?? "docker";
  const tag = options.tag ?? DEFAULT_IMAGE;
  const step = options.onStep ?? (() => {});
  if (!options.force && await imagePresent(tag, binary)) {
    step(`${tag} is present: reused`);
    return {
      tag,
      reused: true,
      timings: { debootstrapMs: 0, importMs: 0, totalMs: Date.now() - started },
    };
  }
  const other = binary === "docker" ? "podman" : "docker";
  if (!options.force && await imagePresent(tag, other)) {
    step(`${other} has ${tag}: copying it (${other} save | ${binary} load)`);
    const t0 = Date.now();
    await pipe([other, "save", tag], [binary, "load", "-q"]);
    const importMs = Date.now() - t0;
    step(`copied in ${(importMs / 1000).toFixed(1)} s`);
    return {
      tag,
      reused: true,
      copiedFrom: other,
      timings: { debootstrapMs: 0, importMs, totalMs: Date.now() - started },
    };
  }
  if (Deno.uid() !== 0) {
    throw new Error(
      `Cannot build the base image: debootstrap needs root (uid is ${Deno.uid()})`,
    );
  }
  if ((await run("sh", ["-c", "command -v debootstrap"])).code !== 0) {
    throw new Error(
      "Cannot build the base image: apt-get install -y debootstrap",
    );
  }
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
    return {
      tag,
      reused: false,
      timings: { debootstrapMs, importMs, totalMs: Date.now() - started },
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      binary: { type: "string", default: "docker" },
      tag: { type: "string", default: DEFAULT_IMAGE },
      mirror: { type: "string" },
      suite: { type: "string", default: "bookworm" },
      force: { type: "boolean", default: false },
    },
  });
  if (values.binary !== "docker" && values.binary !== "podman") {
    console.error(`--binary must be docker or podman, got ${values.binary}`);
    Deno.exit(2);
  }
  try {
    const result = await buildImage({
      binary: values.binary,
      tag: values.tag,
      mirror: values.mirror,
      suite: values.suite,
      force: values.force,
      onStep: (m) => console.error(`image: ${m}`),
    });
    console.log(
      result.copiedFrom
        ? `${result.tag}: copied from ${result.copiedFrom} in ${
          (result.timings.totalMs / 1000).toFixed(1)
        } s`
        : result.reused
        ? `${result.tag}: present, reused`
        : `${result.tag}: built in ${
          (result.timings.totalMs / 1000).toFixed(1)
        } s ` +
          `(debootstrap ${
            (result.timings.debootstrapMs / 1000).toFixed(1)
          } s, ` +
          `import ${(result.timings.importMs / 1000).toFixed(1)} s)`,
    );
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
