/**
 * {@linkcode LocalHost}: the {@linkcode Host} that is this machine, where
 * commands are child processes and files are written to the local disk.
 *
 * @module
 */
import { type Channel, type Host, stagingDir, type TreeFile } from "./host.ts";

/**
 * A host that is this machine: commands are child processes.
 *
 * @example
 * ```ts
 * import { LocalHost } from "./local.ts";
 *
 * const host = new LocalHost(Deno.cwd());
 * const child = await host.exec(["echo", "hi"]);
 * console.log(await new Response(child.readable).text()); // "hi\n"
 * await child.exited;
 * await new Response(child.stderr).text();
 * ```
 */
export class LocalHost implements Host {
  readonly label: string;

  /** @param dir The node's directory, for messages. */
  constructor(dir: string) {
    this.label = `local:${dir}`;
  }

  exec(
    argv: string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ): Promise<Channel> {
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: options.cwd,
      env: options.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return Promise.resolve({
      readable: child.stdout,
      writable: child.stdin,
      stderr: child.stderr,
      pid: child.pid,
      exited: child.status.then((s) => ({
        code: s.signal ? null : s.code,
        signal: s.signal ?? undefined,
      })),
      kill() {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      },
      unref() {
        child.unref();
      },
    });
  }

  async writeTree(dir: string, files: TreeFile[]): Promise<void> {
    const temp = await stagingDir(this, dir);
    if (!temp) return;
    try {
      for (const file of files) {
        const path = `${temp}/${file.path}`;
        await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), {
          recursive: true,
        });
        await Deno.writeFile(path, file.data);
      }
      await Deno.mkdir(dir.slice(0, dir.lastIndexOf("/")), { recursive: true });
      await Deno.rename(temp, dir);
    } catch (error) {
      await Deno.remove(temp, { recursive: true }).catch(() => {});
      // Another pool wrote the same tree first: its copy is as good as ours.
      if (!(await this.exists(dir))) throw error;
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await Deno.stat(path);
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
