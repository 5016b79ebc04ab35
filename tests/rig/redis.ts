/**
 * A real `redis-server` (Debian's package) for the tests of the Redis
 * collections backend: on loopback, and on the SSH rig's bridge address when
 * the rig is up so that the rig's hosts reach it too. It asks for a password
 * (generated once, kept in its state directory), saves nothing to disk and
 * runs as a daemon until `down`.
 *
 * ```sh
 * deno task redis:up     # starts it (idempotent) and prints its URL
 * deno task redis:down   # stops it
 * ```
 *
 * Needs `redis-server` (`apt-get install -y redis-server`). Its state lives in
 * `/run/skyward-redis` (override with `SKYWARD_REDIS_DIR`): pid file, log,
 * password and `url` (the loopback URL, with the password); the port is
 * 6390 (override with `SKYWARD_REDIS_PORT`), off Redis's default so that a
 * system Redis is never touched.
 *
 * Tests call {@linkcode requireRedis}.
 *
 * @module
 */

/** The state directory: pid file, log, password, URL. */
export const REDIS_DIR: string = Deno.env.get("SKYWARD_REDIS_DIR") ??
  "/run/skyward-redis";
/** The port the test server listens on. */
export const REDIS_PORT: number = Number(
  Deno.env.get("SKYWARD_REDIS_PORT") ?? "6390",
);
/** The SSH rig's bridge address, where the rig's hosts reach this machine. */
export const RIG_BRIDGE_ADDRESS = "10.213.0.1";

const PID_FILE = `${REDIS_DIR}/redis.pid`;
const LOG_FILE = `${REDIS_DIR}/redis.log`;
const PASSWORD_FILE = `${REDIS_DIR}/password`;
const PATH = `${
  Deno.env.get("PATH") ?? ""
}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

/** The running test server: where to reach it. */
export interface RedisServer {
  /** `redis://:<password>@127.0.0.1:<port>`. */
  url: string;
  /** The same server from the SSH rig's hosts, when it listens on the rig's bridge. */
  rigUrl: string | null;
  /** The password it asks for. */
  password: string;
  /** Its port. */
  port: number;
}

async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ ok: boolean; out: string }> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
      env: { PATH, ...env },
    }).output();
    const dec = new TextDecoder();
    return {
      ok: out.success,
      out: (dec.decode(out.stdout) + dec.decode(out.stderr)).trim(),
    };
  } catch (error) {
    return { ok: false, out: (error as Error).message };
  }
}

async function readText(path: string): Promise<string | null> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch {
    return null;
  }
}

async function hasAddress(address: string): Promise<boolean> {
  const { ok, out } = await run("ip", ["-4", "-o", "addr", "show"]);
  return ok && out.split("\n").some((l) => l.includes(` ${address}/`));
}

async function ping(password: string, host = "127.0.0.1"): Promise<boolean> {
  // The password through the environment, not the command line.
  const { ok, out } = await run(
    "redis-cli",
    ["-h", host, "-p", String(REDIS_PORT), "PING"],
    { REDISCLI_AUTH: password },
  );
  return ok && out === "PONG";
}

async function pid(): Promise<number | null> {
  const text = await readText(PID_FILE);
  if (!text) return null;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) return null;
  try {
    Deno.kill(n, "SIGCONT");
    return n;
  } catch {
    return null;
  }
}

function server(password: string, rig: boolean): RedisServer {
  const auth = `:${encodeURIComponent(password)}@`;
  return {
    url: `redis://${auth}127.0.0.1:${REDIS_PORT}`,
    rigUrl: rig ? `redis://${auth}${RIG_BRIDGE_ADDRESS}:${REDIS_PORT}` : null,
    password,
    port: REDIS_PORT,
  };
}

/**
 * Why the test server cannot run here, or `null` when it can.
 *
 * @returns The reason, e.g. that `redis-server` is not installed.
 */
export async function redisUnavailableReason(): Promise<string | null> {
  const which = await run("sh", ["-c", "command -v redis-server"]);
  if (!which.ok) {
    return "redis-server is not installed (apt-get install -y redis-server)";
  }
  return null;
}

/**
 * Starts the test server, or reuses the one running. When the SSH rig's
 * bridge exists, it listens there too; a server started before the rig is
 * restarted to add it.
 *
 * @returns Where to reach it.
 * @throws {Error} When `redis-server` is missing or does not answer.
 */
export async function redisUp(): Promise<RedisServer> {
  const reason = await redisUnavailableReason();
  if (reason) throw new Error(`Cannot start the test Redis: ${reason}`);
  await Deno.mkdir(REDIS_DIR, { recursive: true, mode: 0o700 });
  let password = await readText(PASSWORD_FILE);
  if (!password) {
    const bytes = crypto.getRandomValues(new Uint8Array(18));
    password = Array.from(bytes, (b) => b.toString(16).padStart(2, "0"))
      .join("");
    await Deno.writeTextFile(PASSWORD_FILE, password + "\n", { mode: 0o600 });
  }
  const rig = await hasAddress(RIG_BRIDGE_ADDRESS);
  if ((await pid()) !== null && (await ping(password))) {
    if (!rig || (await ping(password, RIG_BRIDGE_ADDRESS))) {
      return server(password, rig);
    }
    await redisDown();
  }
  const binds = rig ? `127.0.0.1 ${RIG_BRIDGE_ADDRESS}` : "127.0.0.1";
  // The password reaches redis-server through its standard input (a config
  // read from "-"), never its command line, which every user can read.
  const config = [
    `bind ${binds}`,
    `port ${REDIS_PORT}`,
    `requirepass "${password}"`,
    `daemonize yes`,
    `pidfile ${PID_FILE}`,
    `logfile ${LOG_FILE}`,
    `dir ${REDIS_DIR}`,
    `save ""`,
    `appendonly no`,
  ].join("\n") + "\n";
  const child = new Deno.Command("redis-server", {
    args: ["-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { PATH },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(config));
  await writer.close();
  const out = await child.output();
  if (!out.success) {
    throw new Error(
      `redis-server did not start: ${
        new TextDecoder().decode(out.stderr).trim() ||
        new TextDecoder().decode(out.stdout).trim()
      }`,
    );
  }
  for (let i = 0; i < 100; i++) {
    if (await ping(password)) return server(password, rig);
    await new Promise((r) => setTimeout(r, 50));
  }
  const log = (await readText(LOG_FILE)) ?? "";
  throw new Error(
    `redis-server did not answer on 127.0.0.1:${REDIS_PORT}: ${
      log.split("\n").slice(-5).join("\n")
    }`,
  );
}

/** Stops the test server (when running) and waits until it is gone. */
export async function redisDown(): Promise<void> {
  const p = await pid();
  if (p === null) return;
  try {
    Deno.kill(p, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 100 && (await pid()) !== null; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A test server a test file may use; see {@linkcode requireRedis}. */
export interface RedisLease {
  /** The server. */
  server: RedisServer;
  /** Stops the server if this lease started it; otherwise does nothing. */
  release(): Promise<void>;
}

/**
 * Gives a test file the test server: reuses the running one, or starts one
 * and then (only then) stops it at `release()`. When `redis-server` is not
 * installed, returns the reason, so that tests are ignored with it printed —
 * except under `CI=true`, where that throws: in CI a server that cannot start
 * is a failure, not a skip.
 *
 * @returns The lease, or the reason there is none.
 * @throws {Error} Under `CI=true`, when the server cannot start.
 */
export async function requireRedis(): Promise<
  { redis: RedisLease; reason: null } | { redis: null; reason: string }
> {
  const ci = Deno.env.get("CI") === "true";
  try {
    const running = (await pid()) !== null;
    const s = await redisUp();
    let released = false;
    return {
      redis: {
        server: s,
        async release() {
          if (released || running) return;
          released = true;
          await redisDown();
        },
      },
      reason: null,
    };
  } catch (error) {
    if (ci) throw error;
    return { redis: null, reason: (error as Error).message };
  }
}

if (import.meta.main) {
  const [command] = Deno.args;
  try {
    switch (command) {
      case "up": {
        const s = await redisUp();
        console.log(
          `redis: 127.0.0.1:${s.port} (password in ${PASSWORD_FILE})`,
        );
        if (s.rigUrl) console.log(`rig hosts: ${RIG_BRIDGE_ADDRESS}:${s.port}`);
        break;
      }
      case "down":
        await redisDown();
        break;
      default:
        console.error("usage: redis.ts up | down");
        Deno.exit(2);
    }
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
