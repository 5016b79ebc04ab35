/**
 * `redis-server` on the head node, for `sky.Redis({ on: "head" })`: the head
 * node's worker starts it (installed by the bootstrap's `apt` phase), bound
 * to the node's private address and to loopback, asking for the pool's
 * generated password, saving nothing to disk. A watchdog shell stops it when
 * the worker process is gone, however it ends, and removes its directory;
 * the backend also shuts it down when it closes.
 *
 * Loaded with the Redis backend, by the worker only.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";

/** Where the head's server listens. */
export interface HeadServer {
  /** The node's private address (and loopback). */
  bind: string;
  /** The port. */
  port: number;
  /** The password it asks for. */
  password: string;
}

/**
 * The watchdog: starts `redis-server` with config `$1`, waits while worker
 * `$2` and the server live, then stops the server and, once the worker is
 * gone, removes `$3` (else the worker reads the log and removes it).
 */
const WATCHDOG = 'redis-server "$1" & r=$!; ' +
  'while kill -0 "$2" 2>/dev/null && kill -0 "$r" 2>/dev/null; do sleep 0.2; done; ' +
  'kill "$r" 2>/dev/null; wait "$r" 2>/dev/null; kill -0 "$2" 2>/dev/null || rm -rf "$3"';

/**
 * Starts the head's server (it then runs until the worker process ends).
 *
 * @param server Where it listens, and its password.
 * @returns When it has been started, and a promise of its end (it ending
 *   early says it could not run, e.g. the port is taken).
 * @throws {ConfigError} When `redis-server` is not installed on this node.
 *
 * @example
 * ```ts ignore
 * import { startHeadServer } from "./redis_head.ts";
 *
 * const { ended } = await startHeadServer({ bind: "10.0.0.5", port: 6390, password: "s3cret" });
 * ```
 */
export async function startHeadServer(
  server: HeadServer,
): Promise<{ ended: Promise<string> }> {
  const which = await new Deno.Command("sh", {
    args: ["-c", "command -v redis-server"],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!which.success) {
    throw new ConfigError(
      `Cannot serve the collections from the head node ${Deno.hostname()}: redis-server is not installed ` +
        "(the bootstrap installs it with apt: the node must be able to install Debian packages)",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "skyward-redis-" });
  const binds = server.bind && server.bind !== "127.0.0.1"
    ? `${server.bind} 127.0.0.1`
    : "127.0.0.1";
  const conf = `${dir}/redis.conf`;
  // The password in a file only this user reads, not on a command line.
  await Deno.writeTextFile(
    conf,
    [
      `bind ${binds}`,
      `port ${server.port}`,
      `requirepass "${server.password}"`,
      `dir ${dir}`,
      `save ""`,
      `appendonly no`,
      `daemonize no`,
      `logfile ${dir}/redis.log`,
    ].join("\n") + "\n",
    { mode: 0o600 },
  );
  const child = new Deno.Command("sh", {
    args: ["-c", WATCHDOG, "sh", conf, String(Deno.pid), dir],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  const ended = child.status.then(async () => {
    try {
      const log = await Deno.readTextFile(`${dir}/redis.log`);
      return log.trim().split("\n").slice(-3).join(" / ");
    } catch {
      return "redis-server exited";
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
  return { ended };
}
