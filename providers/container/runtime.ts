/**
 * The container runtime's command line (`docker` or `podman`): runs it with
 * a time limit against the chosen daemon, and reads its error output.
 *
 * @module
 */
import { ConfigError, ProvisioningError } from "../../src/errors.ts";

/** A finished command of the runtime. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The container runtime's command line (`docker` or `podman`), for one daemon. */
export class Cli {
  readonly #binary: string;
  readonly #env: Record<string, string>;
  constructor(options: { binary: "docker" | "podman"; host?: string }) {
    this.#binary = options.binary;
    this.#env = options.host
      ? {
        [options.binary === "docker" ? "DOCKER_HOST" : "CONTAINER_HOST"]:
          options.host,
      }
      : {};
  }

  get binary(): string {
    return this.#binary;
  }

  /** Runs the CLI; `env` adds variables (passed by name with `-e NAME`, so never on a command line). */
  async run(
    args: string[],
    options: { env?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<CliResult> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#binary, {
        args,
        env: { ...this.#env, ...options.env },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new ConfigError(
          `Cannot use sky.Container: the '${this.#binary}' command was not found ` +
            `(apt-get install -y ${
              this.#binary === "docker" ? "docker.io" : "podman"
            })`,
        );
      }
      throw error;
    }
    const stdout = new Response(child.stdout).text();
    const stderr = new Response(child.stderr).text();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      child.status,
      new Promise<null>((r) => timer = setTimeout(() => r(null), timeoutMs)),
    ]);
    clearTimeout(timer);
    if (status === null) {
      try {
        child.kill("SIGKILL");
      } catch {
        // It exited meanwhile.
      }
      // A process it left behind may hold the pipes open: do not wait for them.
      stdout.catch(() => {});
      stderr.catch(() => {});
      throw new ProvisioningError(
        `'${this.#binary} ${args[0]}' did not finish within ${timeoutMs} ms`,
      );
    }
    return { code: status.code, stdout: await stdout, stderr: await stderr };
  }

  /** Runs the CLI and returns its output, or throws with its error output. */
  async must(
    args: string[],
    options: { env?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<string> {
    const out = await this.run(args, options);
    if (out.code !== 0) {
      throw new ProvisioningError(
        `'${this.#binary} ${
          args.slice(0, 2).join(" ")
        }' failed (exit ${out.code}): ${errorText(out.stderr)}`,
      );
    }
    return out.stdout;
  }
}

/** The error lines of a CLI's output, less its warnings. */
export function errorText(stderr: string): string {
  return stderr.split("\n").map((l) => l.trim()).filter((l) =>
    l && !/^WARNING\b/.test(l)
  )
    .join("; ") || "(no output)";
}

/** The non-empty lines of an output, trimmed. */
export function lines(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}

/**
 * The arguments that inspect containers in a Go template `format`.
 *
 * @param format The template, e.g. `{{json .Name}}`.
 * @param names The containers.
 * @returns The CLI's arguments.
 */
export function inspectContainers(format: string, names: string[]): string[] {
  return ["inspect", "--type", "container", "--format", format, ...names];
}
