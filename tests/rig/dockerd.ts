/**
 * A private Docker daemon for the container tests: its own data root, exec
 * root and socket, so it never meets a system Docker, and configured the way
 * this environment needs (no default bridge, no iptables, no IP forwarding
 * or masquerading, explicit ulimits). User-defined bridge networks still
 * work: the daemon makes a bridge per network with the gateway address on
 * this machine, so the client reaches every container at its own address,
 * and the containers reach each other, but nothing outside.
 *
 * ```sh
 * deno task docker:up     # starts it (idempotent) and prints the DOCKER_HOST to use
 * deno task docker:down   # removes what carries a skyward label, then stops it
 * ```
 *
 * Root only; needs `dockerd` (`apt-get install -y docker.io`). Everything
 * lives under `/run/skyward-docker` (socket `docker.sock`, exec root, pid
 * file, log) and `/var/lib/skyward-docker` (the data root, which keeps the
 * base image between runs); override them with `SKYWARD_DOCKER_RUN` and
 * `SKYWARD_DOCKER_DATA`.
 *
 * Tests call {@linkcode requireDocker}.
 *
 * @module
 */
import { DEFAULT_IMAGE } from "../../providers/container/image.ts";

/** The directory holding the socket, exec root, pid file and log. */
export const RUN_DIR: string = Deno.env.get("SKYWARD_DOCKER_RUN") ??
  "/run/skyward-docker";
/** The daemon's data root: images, containers, networks. */
export const DATA_DIR: string = Deno.env.get("SKYWARD_DOCKER_DATA") ??
  "/var/lib/skyward-docker";
/** The socket of the private daemon, as a `DOCKER_HOST` value. */
export const DOCKER_HOST = `unix://${RUN_DIR}/docker.sock`;

const PID_FILE = `${RUN_DIR}/dockerd.pid`;
const LOG_FILE = `${RUN_DIR}/dockerd.log`;
const PATH = `${
  Deno.env.get("PATH") ?? ""
}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

/** The daemon's command line; see the module doc. */
export function dockerdArgs(): string[] {
  return [
    `--data-root=${DATA_DIR}`,
    `--exec-root=${RUN_DIR}/exec`,
    `-H`,
    DOCKER_HOST,
    `--pidfile=${PID_FILE}`,
    "--bridge=none",
    "--iptables=false",
    "--ip-forward=false",
    "--ip-masq=false",
    "--userland-proxy=false",
    "--default-ulimit",
    "nofile=4096:4096",
    "--default-ulimit",
    "nproc=4096:4096",
    "--log-level=warn",
  ];
}

async function run(
  program: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const out = await new Deno.Command(program, {
      args,
      env: { PATH, ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    return {
      code: out.code,
      stdout: text.decode(out.stdout),
      stderr: text.decode(out.stderr),
    };
  } catch (error) {
    return { code: 127, stdout: "", stderr: String(error) };
  }
}

function docker(args: string[]) {
  return run("docker", args, { DOCKER_HOST });
}

/** Whether the private daemon answers on its socket. */
export async function dockerdRunning(): Promise<boolean> {
  return (await docker(["version", "--format", "{{.Server.Version}}"]))
    .code === 0;
}

async function daemonPid(): Promise<number | null> {
  const text = await Deno.readTextFile(PID_FILE).catch(() => "");
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() =>
    ""
  );
  return cmdline.includes(DATA_DIR) ? pid : null;
}

/** Why the private daemon cannot run here, or `null` when it can. */
export async function dockerdUnavailableReason(): Promise<string | null> {
  if (Deno.build.os !== "linux") {
    return `dockerd needs Linux, this is ${Deno.build.os}`;
  }
  if (Deno.uid() !== 0) return `dockerd needs root (uid is ${Deno.uid()})`;
  for (const tool of ["dockerd", "docker"]) {
    if ((await run("sh", ["-c", `command -v ${tool}`])).code !== 0) {
      return `'${tool}' is missing: apt-get install -y docker.io`;
    }
  }
  return null;
}

/**
 * Starts the private daemon unless it is running, and waits until it
 * answers.
 *
 * @param timeoutMs How long it may take to answer.
 * @returns The `DOCKER_HOST` to use.
 * @throws {Error} When it cannot run here or does not come up (the log's tail is in the message).
 */
export async function dockerdUp(timeoutMs = 60_000): Promise<string> {
  if (await dockerdRunning()) return DOCKER_HOST;
  const reason = await dockerdUnavailableReason();
  if (reason) throw new Error(`Cannot start dockerd: ${reason}`);
  await Deno.mkdir(RUN_DIR, { recursive: true });
  await Deno.mkdir(DATA_DIR, { recursive: true });
  const stale = await daemonPid();
  if (stale !== null) await stop(stale);
  // setsid: the daemon outlives this script and is no part of its process group.
  const quoted = dockerdArgs().map((a) => `'${a}'`).join(" ");
  await run("sh", [
    "-c",
    `setsid dockerd ${quoted} >>'${LOG_FILE}' 2>&1 </dev/null &`,
  ]);
  const deadline = Date.now() + timeoutMs;
  while (!(await dockerdRunning())) {
    if (Date.now() > deadline) {
      const log = await Deno.readTextFile(LOG_FILE).catch(() => "");
      throw new Error(
        `dockerd did not answer on ${DOCKER_HOST} within ${timeoutMs} ms:\n${
          log.split("\n").slice(-20).join("\n")
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return DOCKER_HOST;
}

async function alive(pid: number): Promise<boolean> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => null);
  if (stat === null) return false;
  const state = stat.slice(
    stat.lastIndexOf(")") + 2,
    stat.lastIndexOf(")") + 3,
  );
  return state !== "Z" && state !== "X";
}

async function stop(pid: number): Promise<void> {
  const signal = (s: Deno.Signal) => {
    try {
      Deno.kill(pid, s);
    } catch { /* gone */ }
  };
  signal("SIGTERM");
  const deadline = Date.now() + 20_000;
  while (await alive(pid)) {
    if (Date.now() > deadline) {
      signal("SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Removes every container and network carrying a skyward label, then stops
 * the private daemon (its containerd and shims go with it). The data root
 * stays, so the base image is reused next time. Does nothing when it is not
 * running.
 *
 * @returns What was removed, to print.
 */
export async function dockerdDown(): Promise<string[]> {
  const removed: string[] = [];
  if (await dockerdRunning()) {
    const ids =
      (await docker(["ps", "-aq", "--filter", "label=skyward.cluster"]))
        .stdout.split("\n").filter(Boolean);
    if (ids.length > 0) {
      await docker(["rm", "-f", ...ids]);
      removed.push(`${ids.length} container(s)`);
    }
    const nets = (await docker([
      "network",
      "ls",
      "-q",
      "--filter",
      "label=skyward.cluster",
    ])).stdout.split("\n").filter(Boolean);
    if (nets.length > 0) {
      await docker(["network", "rm", ...nets]);
      removed.push(`${nets.length} network(s)`);
    }
  }
  const pid = await daemonPid();
  if (pid !== null) {
    await stop(pid);
    removed.push(`dockerd (pid ${pid})`);
  }
  return removed;
}

/** What {@linkcode requireDocker} found: a daemon and the image, or why not. */
export type DockerRequirement =
  | { host: string; image: string; reason: null }
  | { host: null; image: null; reason: string };

/**
 * Gives a test file a Docker daemon with the base image: the one `DOCKER_HOST`
 * names, else the private daemon of `deno task docker:up`. It starts no
 * daemon and builds no image (the image takes a minute): when either is
 * missing it returns `{ host: null, reason }` so that tests are ignored with
 * the reason printed — except under `CI=true`, where that throws.
 *
 * @param image The image the tests need.
 * @returns The daemon's `DOCKER_HOST` and the image, or the reason there is none.
 * @throws {Error} Under `CI=true`, when the daemon or the image is missing.
 */
export async function requireDocker(
  image: string = DEFAULT_IMAGE,
): Promise<DockerRequirement> {
  const host = Deno.env.get("DOCKER_HOST") || DOCKER_HOST;
  const env = { DOCKER_HOST: host };
  let reason: string | null = null;
  const version = await run("docker", [
    "version",
    "--format",
    "{{.Server.Version}}",
  ], env);
  if (version.code !== 0) {
    reason =
      `no Docker daemon answers at ${host} (start one with \`deno task docker:up\`): ${
        version.stderr.trim().split("\n").at(-1)
      }`;
  } else if (
    (await run("docker", ["image", "inspect", image], env)).code !== 0
  ) {
    reason =
      `the image ${image} is missing (build it with \`deno task image:build\`)`;
  }
  if (reason) {
    if (Deno.env.get("CI") === "true") {
      throw new Error(`The container tests cannot run under CI: ${reason}`);
    }
    return { host: null, image: null, reason };
  }
  return { host, image, reason: null };
}

/**
 * Like {@linkcode requireDocker}, for Podman: the `podman` CLI, root (the
 * provider makes the nodes' network with `ip`) and the image in Podman's
 * store (`deno task image:build --binary podman` copies Docker's).
 *
 * @param image The image the tests need.
 * @returns `{ host: "", image }` when Podman can run the tests (it has no daemon), or the reason it cannot.
 * @throws {Error} Under `CI=true`, when Podman, root or the image is missing.
 */
export async function requirePodman(
  image: string = DEFAULT_IMAGE,
): Promise<DockerRequirement> {
  let reason: string | null = null;
  if ((await run("sh", ["-c", "command -v podman"])).code !== 0) {
    reason = "podman is missing (apt-get install -y podman)";
  } else if (Deno.uid() !== 0) {
    reason =
      `sky.Container({ binary: "podman" }) needs root (uid is ${Deno.uid()})`;
  } else if ((await run("podman", ["image", "inspect", image])).code !== 0) {
    reason = `the image ${image} is missing from Podman's store ` +
      "(copy or build it with `deno task image:build --binary podman`)";
  }
  if (reason) {
    if (Deno.env.get("CI") === "true") {
      throw new Error(`The Podman tests cannot run under CI: ${reason}`);
    }
    return { host: null, image: null, reason };
  }
  return { host: "", image, reason: null };
}

if (import.meta.main) {
  const [command] = Deno.args;
  try {
    switch (command) {
      case "up": {
        const host = await dockerdUp();
        console.log(`dockerd up: export DOCKER_HOST=${host}`);
        break;
      }
      case "down": {
        const removed = await dockerdDown();
        console.log(
          `dockerd down${
            removed.length ? `: removed ${removed.join(", ")}` : ""
          }`,
        );
        break;
      }
      case "host":
        console.log(DOCKER_HOST);
        break;
      default:
        console.error("usage: dockerd.ts up | down | host");
        Deno.exit(2);
    }
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
