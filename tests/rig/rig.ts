/**
 * The SSH test rig: N "machines" on this one, each a network namespace with
 * its own address, its own `sshd`, its own login user and home directory,
 * its own hostname and its own `/tmp`, all joined by a bridge in the root
 * namespace so that the client reaches every host and the hosts reach each
 * other.
 *
 * ```sh
 * deno run -A tests/rig/rig.ts up [N]        # default 3 hosts; idempotent
 * deno run -A tests/rig/rig.ts down          # removes everything, also a half-built rig
 * deno run -A tests/rig/rig.ts stop-sshd I   # kills host I's sshd and its sessions
 * deno run -A tests/rig/rig.ts start-sshd I
 * deno run -A tests/rig/rig.ts hosts         # prints hosts.json
 * ```
 *
 * Root only; needs `sshd`, `ssh-keygen`, `ip`, `unshare` and the `useradd`
 * family (`apt-get install -y openssh-server iproute2`). Everything it makes
 * is named `skyrig*`: namespaces `skyrig0..`, bridge `skyrigbr0`, veths
 * `skyrigv0..`, users `skyrig0..` with homes `/home/skyrig0..`, and the state
 * directory `/run/skyrig` (override with `SKYRIG_DIR`), which holds the
 * client key, each host's keys, config, log and `/tmp`, and `hosts.json`.
 *
 * Tests call {@linkcode requireRig}, which reuses a running rig and brings
 * one up only when there is none (and then tears down only what it made).
 *
 * @module
 */

/** One host of the rig, as written to `hosts.json`. */
export interface RigHost {
  /** The host's name, which is also its hostname, login user and namespace. */
  name: string;
  /** Its address on the rig's bridge, e.g. `10.213.0.10`. */
  address: string;
  /** The port its `sshd` listens on. */
  port: number;
  /** The login user (shell `/bin/sh`, home `/home/<user>`). */
  user: string;
  /** The host's public key as an OpenSSH line: `ssh-ed25519 AAAA… skyrig0`. */
  hostKey: string;
  /** Path of the client's private key, authorised on every host. */
  keyPath: string;
  /** The network namespace the host lives in. */
  namespace: string;
  /** The host's index, 0 to N-1. */
  index: number;
}

/** Options of {@linkcode rigUp}. */
export interface RigUpOptions {
  /**
   * How many hosts. Hosts beyond this number left by an earlier `up` are
   * removed.
   *
   * @default {3}
   */
  hosts?: number;
}

/** Options of {@linkcode stopSshd}. */
export interface StopSshdOptions {
  /**
   * Keep the sessions already open (the per-connection `sshd` processes and
   * what runs under them): only the listener goes, so new connections are
   * refused while open ones go on. By default every session dies too, as when
   * a machine's `sshd` crashes, so clients see their connection drop.
   *
   * @default {false}
   */
  keepSessions?: boolean;
}

const PREFIX = "skyrig";
const BRIDGE = `${PREFIX}br0`;
const SUBNET = "10.213.0";
const BRIDGE_ADDRESS = `${SUBNET}.1`;
const SSHD = "/usr/sbin/sshd";
const MAX_HOSTS = 200;
const PATH = `${
  Deno.env.get("PATH") ?? ""
}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

/** The rig's state directory. */
export const RIG_DIR: string = Deno.env.get("SKYRIG_DIR") ?? "/run/skyrig";
const HOSTS_JSON = `${RIG_DIR}/hosts.json`;
const CLIENT_KEY = `${RIG_DIR}/client_ed25519`;
const LOCK = `${RIG_DIR}.lock`;

const names = (i: number) => ({
  name: `${PREFIX}${i}`,
  veth: `${PREFIX}v${i}`,
  address: `${SUBNET}.${10 + i}`,
  dir: `${RIG_DIR}/host${i}`,
  home: `/home/${PREFIX}${i}`,
});

// ---------------------------------------------------------------------------
// Commands

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function cmd(
  program: string,
  args: string[],
  options: { allowFail?: boolean } = {},
): Promise<Output> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(program, {
      args,
      env: { PATH },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (options.allowFail) {
      return { code: 127, stdout: "", stderr: String(error) };
    }
    throw new Error(`rig: cannot run '${program}': ${error}`, { cause: error });
  }
  const decoder = new TextDecoder();
  const result = {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
  if (result.code !== 0 && !options.allowFail) {
    throw new Error(
      `rig: '${program} ${
        args.join(" ")
      }' failed (exit ${result.code}): ${result.stderr.trim()}`,
    );
  }
  return result;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const file = await Deno.open(LOCK, { create: true, write: true });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close();
  }
}

/** Why the rig cannot run on this machine, or `null` when it can. */
export async function rigUnavailableReason(): Promise<string | null> {
  if (Deno.build.os !== "linux") {
    return `the SSH rig needs Linux, this is ${Deno.build.os}`;
  }
  if (Deno.uid() !== 0) return `the SSH rig needs root (uid is ${Deno.uid()})`;
  if (!(await exists(SSHD))) {
    return `${SSHD} is missing: apt-get install -y openssh-server iproute2`;
  }
  for (
    const tool of [
      "ip",
      "ssh-keygen",
      "unshare",
      "useradd",
      "usermod",
      "userdel",
    ]
  ) {
    const { code } = await cmd("sh", ["-c", `command -v ${tool}`], {
      allowFail: true,
    });
    if (code !== 0) {
      return `'${tool}' is missing: apt-get install -y openssh-server iproute2`;
    }
  }
  return null;
}

async function assertAvailable(): Promise<void> {
  const reason = await rigUnavailableReason();
  if (reason) throw new Error(`Cannot set up the SSH rig: ${reason}`);
}

// ---------------------------------------------------------------------------
// Processes

async function readProc(pid: number, file: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(`/proc/${pid}/${file}`);
  } catch {
    return null;
  }
}

async function alive(pid: number): Promise<boolean> {
  const stat = await readProc(pid, "stat");
  if (stat === null) return false;
  // The state follows the parenthesised command name; Z is a zombie.
  const state = stat.slice(
    stat.lastIndexOf(")") + 2,
    stat.lastIndexOf(")") + 3,
  );
  return state !== "Z" && state !== "X";
}

async function allPids(): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (/^\d+$/.test(entry.name)) pids.push(Number(entry.name));
  }
  return pids;
}

/** The process and all its descendants, parents first. */
async function processTree(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const pid of await allPids()) {
    const stat = await readProc(pid, "stat");
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** Processes running as one of the given uids. */
async function pidsOfUids(uids: Set<number>): Promise<number[]> {
  const pids: number[] = [];
  for (const pid of await allPids()) {
    const status = await readProc(pid, "status");
    const uid = status?.match(/^Uid:\s+(\d+)/m)?.[1];
    if (uid !== undefined && uids.has(Number(uid))) pids.push(pid);
  }
  return pids;
}

function kill(pid: number, signal: Deno.Signal = "SIGKILL"): void {
  try {
    Deno.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

async function waitGone(pids: number[], timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const pid of pids) {
    while (await alive(pid)) {
      if (Date.now() > deadline) {
        throw new Error(`rig: process ${pid} did not exit`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

async function sshdPid(i: number): Promise<number | null> {
  const { dir } = names(i);
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/sshd.pid`);
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0 || !(await alive(pid))) return null;
  // Make sure the pid was not reused by something else (sshd rewrites its
  // command line into one string, hence no split on NUL).
  const cmdline = (await readProc(pid, "cmdline")) ?? "";
  return cmdline.includes(`-f ${dir}/sshd_config`) ? pid : null;
}

async function canConnect(
  address: string,
  port: number,
  timeoutMs = 1_000,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) =>
    timer = setTimeout(() => resolve(null), timeoutMs)
  );
  const attempt = Deno.connect({ hostname: address, port }).catch(() => null);
  const conn = await Promise.race([attempt, timeout]);
  clearTimeout(timer);
  if (conn) {
    conn.close();
    return true;
  }
  // A connection that completes after the timeout is closed as well.
  attempt.then((late) => late?.close());
  return false;
}

// ---------------------------------------------------------------------------
// Set-up

async function linkExists(name: string, namespace?: string): Promise<boolean> {
  const args = namespace
    ? ["-n", namespace, "link", "show", name]
    : ["link", "show", name];
  return (await cmd("ip", args, { allowFail: true })).code === 0;
}

async function namespaces(): Promise<string[]> {
  const { stdout } = await cmd("ip", ["netns", "list"], { allowFail: true });
  return stdout.split("\n").map((line) => line.split(" ")[0]).filter((name) =>
    new RegExp(`^${PREFIX}\\d+$`).test(name)
  );
}

async function rigUsers(): Promise<{ name: string; uid: number }[]> {
  const { stdout } = await cmd("getent", ["passwd"], { allowFail: true });
  return stdout.split("\n").map((line) => line.split(":")).filter((f) =>
    new RegExp(`^${PREFIX}\\d+$`).test(f[0])
  ).map((f) => ({ name: f[0], uid: Number(f[2]) }));
}

async function ensureKey(path: string, comment: string): Promise<string> {
  if (!(await exists(path)) || !(await exists(`${path}.pub`))) {
    await Deno.remove(path).catch(() => {});
    await Deno.remove(`${path}.pub`).catch(() => {});
    await cmd("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      comment,
      "-f",
      path,
    ]);
  }
  return (await Deno.readTextFile(`${path}.pub`)).trim();
}

/** Writes `path` when its content differs; says whether it did. */
async function writeIfChanged(
  path: string,
  text: string,
  mode = 0o644,
): Promise<boolean> {
  const old = await Deno.readTextFile(path).catch(() => null);
  if (old === text) return false;
  await Deno.writeTextFile(path, text, { mode });
  await Deno.chmod(path, mode);
  return true;
}

async function setUpNetwork(): Promise<void> {
  if (!(await linkExists(BRIDGE))) {
    await cmd("ip", ["link", "add", BRIDGE, "type", "bridge"]);
  }
  await cmd("ip", ["addr", "replace", `${BRIDGE_ADDRESS}/24`, "dev", BRIDGE]);
  await cmd("ip", ["link", "set", BRIDGE, "up"]);
}

async function setUpHost(i: number, clientKey: string): Promise<RigHost> {
  const { name, veth, address, dir, home } = names(i);

  // The machine: a namespace with one interface on the bridge.
  if (!(await namespaces()).includes(name)) {
    await cmd("ip", ["netns", "add", name]);
  }
  await cmd("ip", ["-n", name, "link", "set", "lo", "up"]);
  if (!(await linkExists("eth0", name))) {
    await cmd("ip", ["link", "del", veth], { allowFail: true });
    await cmd("ip", [
      "link",
      "add",
      veth,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      name,
    ]);
  }
  await cmd("ip", ["link", "set", veth, "master", BRIDGE]);
  await cmd("ip", ["link", "set", veth, "up"]);
  await cmd("ip", [
    "-n",
    name,
    "addr",
    "replace",
    `${address}/24`,
    "dev",
    "eth0",
  ]);
  await cmd("ip", ["-n", name, "link", "set", "eth0", "up"]);

  // Its login user, with a home of its own.
  if (!(await rigUsers()).some((user) => user.name === name)) {
    await cmd("useradd", ["-m", "-d", home, "-s", "/bin/sh", name]);
  }
  await Deno.mkdir(home, { recursive: true });
  const { stdout: uid } = await cmd("id", ["-u", name]);
  const { stdout: gid } = await cmd("id", ["-g", name]);
  await Deno.chown(home, Number(uid), Number(gid));
  // useradd locks the account, which sshd without PAM refuses.
  await cmd("usermod", ["-p", "*", name]);

  // Its sshd: fresh host key, the client's key authorised, its own /tmp.
  await Deno.mkdir(`${dir}/tmp`, { recursive: true });
  await Deno.chmod(`${dir}/tmp`, 0o1777);
  const hostKey = await ensureKey(`${dir}/ssh_host_ed25519_key`, name);
  await writeIfChanged(`${dir}/authorized_keys`, `${clientKey}\n`);
  const config = [
    `ListenAddress ${address}:22`,
    `HostKey ${dir}/ssh_host_ed25519_key`,
    `PidFile ${dir}/sshd.pid`,
    `AuthorizedKeysFile ${dir}/authorized_keys`,
    `AllowUsers ${name}`,
    "PermitRootLogin no",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "StrictModes no",
    "UseDNS no",
    "PrintMotd no",
    "PrintLastLog no",
    "X11Forwarding no",
    "MaxSessions 64",
    "MaxStartups 64:30:128",
    "LogLevel INFO",
    "Subsystem sftp internal-sftp",
    "",
  ].join("\n");
  const changed = await writeIfChanged(`${dir}/sshd_config`, config);
  await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  await cmd(SSHD, ["-t", "-f", `${dir}/sshd_config`]);
  const running = await sshdPid(i);
  if (running !== null && changed) await stopSshdUnlocked(i, {});
  if (running === null || changed) await startSshdUnlocked(i);

  return {
    name,
    address,
    port: 22,
    user: name,
    hostKey,
    keyPath: CLIENT_KEY,
    namespace: name,
    index: i,
  };
}

async function startSshdUnlocked(i: number): Promise<void> {
  const { name, address, dir } = names(i);
  if ((await sshdPid(i)) === null) {
    await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
    await Deno.remove(`${dir}/sshd.pid`).catch(() => {});
    // `ip netns exec` enters the namespace (and a mount namespace of its own),
    // `unshare --uts` gives the host its own hostname, the bind mount its own
    // /tmp; each step execs the next, so the recorded pid is sshd's.
    const inner = `hostname '${name}' && mount --bind '${dir}/tmp' /tmp && ` +
      `exec ${SSHD} -D -e -f '${dir}/sshd_config'`;
    const outer =
      `setsid ip netns exec '${name}' unshare --uts sh -c "${inner}" ` +
      `>>'${dir}/sshd.log' 2>&1 </dev/null & echo $!`;
    await cmd("sh", ["-c", outer]);
  }
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(address, 22, 500))) {
    if (Date.now() > deadline) {
      const log = await Deno.readTextFile(`${dir}/sshd.log`).catch(() => "");
      throw new Error(
        `rig: sshd of ${name} does not listen on ${address}:22; log:\n${
          log.slice(-2000)
        }`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if ((await sshdPid(i)) === null) {
    throw new Error(`rig: sshd of ${name} wrote no pid file`);
  }
}

async function stopSshdUnlocked(
  i: number,
  options: StopSshdOptions,
): Promise<void> {
  const pid = await sshdPid(i);
  if (pid === null) return;
  const pids = options.keepSessions ? [pid] : await processTree(pid);
  for (const p of pids) kill(p);
  await waitGone(pids);
}

async function removeHost(
  i: number,
  name: string,
  uid?: number,
): Promise<void> {
  const { veth, dir, home } = names(i);
  // Every process of the machine: those in its namespace, under its sshd,
  // and those of its user wherever they are.
  const pids = new Set<number>();
  const { stdout } = await cmd("ip", ["netns", "pids", name], {
    allowFail: true,
  });
  for (const line of stdout.split("\n")) {
    if (/^\d+$/.test(line.trim())) pids.add(Number(line));
  }
  const sshd = await sshdPid(i);
  if (sshd !== null) {
    for (const pid of await processTree(sshd)) {
      pids.add(pid);
    }
  }
  if (uid !== undefined) {
    for (const pid of await pidsOfUids(new Set([uid]))) pids.add(pid);
  }
  for (const pid of pids) kill(pid);
  await waitGone([...pids]);

  await cmd("ip", ["netns", "del", name], { allowFail: true });
  await cmd("ip", ["link", "del", veth], { allowFail: true });
  if (uid !== undefined) {
    await cmd("userdel", ["-r", "-f", name], { allowFail: true });
  }
  await Deno.remove(home, { recursive: true }).catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/**
 * Brings the rig up, or repairs it: running it again leaves the same rig
 * (same host keys, same client key), with any missing part re-made and any
 * host beyond `hosts` removed.
 *
 * @param options How many hosts.
 * @returns The hosts, as also written to `hosts.json` in {@linkcode RIG_DIR}.
 * @throws {Error} When not root, a tool is missing, or a step fails.
 */
export async function rigUp(options: RigUpOptions = {}): Promise<RigHost[]> {
  const count = options.hosts ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS) {
    throw new RangeError(
      `Cannot set up the SSH rig: 'hosts' must be an integer from 1 to ${MAX_HOSTS}, got ${count}`,
    );
  }
  await assertAvailable();
  await Deno.mkdir(RIG_DIR, { recursive: true, mode: 0o755 });
  return await withLock(async () => {
    await Deno.remove(HOSTS_JSON).catch(() => {});
    // Hosts beyond the count, from an earlier, larger rig.
    const users = new Map((await rigUsers()).map((u) => [u.name, u.uid]));
    const extra = new Set<number>();
    for (const name of [...await namespaces(), ...users.keys()]) {
      const i = Number(name.slice(PREFIX.length));
      if (i >= count) extra.add(i);
    }
    for (const i of extra) {
      await removeHost(i, names(i).name, users.get(names(i).name));
    }

    const clientKey = await ensureKey(CLIENT_KEY, "skyrig-client");
    await setUpNetwork();
    const hosts: RigHost[] = [];
    for (let i = 0; i < count; i++) hosts.push(await setUpHost(i, clientKey));

    const knownHosts = hosts.map((h) => `${h.address} ${h.hostKey}\n`).join("");
    await writeIfChanged(`${RIG_DIR}/known_hosts`, knownHosts);
    await Deno.writeTextFile(
      `${HOSTS_JSON}.tmp`,
      JSON.stringify(hosts, null, 2) + "\n",
    );
    await Deno.rename(`${HOSTS_JSON}.tmp`, HOSTS_JSON);
    return hosts;
  });
}

/**
 * Removes everything the rig made — processes, namespaces, veths, bridge,
 * users and their homes, the state directory — also when it is half set up.
 * Does nothing when there is no rig.
 *
 * @throws {Error} When something is still there afterwards, naming it.
 */
export async function rigDown(): Promise<void> {
  if (Deno.uid() !== 0) {
    throw new Error(`Cannot take the SSH rig down: needs root`);
  }
  await Deno.mkdir(RIG_DIR, { recursive: true, mode: 0o755 });
  await withLock(async () => {
    const users = new Map((await rigUsers()).map((u) => [u.name, u.uid]));
    const indices = new Set<number>();
    for (const name of [...await namespaces(), ...users.keys()]) {
      indices.add(Number(name.slice(PREFIX.length)));
    }
    for await (const entry of Deno.readDir(RIG_DIR)) {
      const match = entry.name.match(/^host(\d+)$/);
      if (match) indices.add(Number(match[1]));
    }
    const { stdout: links } = await cmd("ip", ["-o", "link", "show"], {
      allowFail: true,
    });
    for (
      const match of links.matchAll(
        new RegExp(`^\\d+: ${PREFIX}v(\\d+)[@:]`, "gm"),
      )
    ) {
      indices.add(Number(match[1]));
    }
    for (const i of indices) {
      await removeHost(i, names(i).name, users.get(names(i).name));
    }
    await cmd("ip", ["link", "del", BRIDGE], { allowFail: true });
    await Deno.remove(RIG_DIR, { recursive: true }).catch(() => {});

    const left: string[] = [];
    if ((await namespaces()).length) {
      left.push(`namespaces ${(await namespaces()).join(", ")}`);
    }
    if (await linkExists(BRIDGE)) left.push(`bridge ${BRIDGE}`);
    if ((await rigUsers()).length) {
      left.push(`users ${(await rigUsers()).map((u) => u.name).join(", ")}`);
    }
    if (await exists(RIG_DIR)) left.push(RIG_DIR);
    if (left.length) {
      throw new Error(
        `rig: tear-down left ${
          left.join("; ")
        }; run 'deno task rig:down' again`,
      );
    }
  });
  await Deno.remove(LOCK).catch(() => {});
}

/**
 * The hosts of the running rig, from `hosts.json`.
 *
 * @returns The hosts, or `null` when no rig is up.
 */
export async function rigHosts(): Promise<RigHost[] | null> {
  try {
    return JSON.parse(await Deno.readTextFile(HOSTS_JSON)) as RigHost[];
  } catch {
    return null;
  }
}

/**
 * Kills one host's `sshd` (and by default every session under it, so open
 * connections drop). Does nothing when it is not running.
 *
 * @param index The host's index.
 * @param options Whether open sessions survive.
 */
export async function stopSshd(
  index: number,
  options: StopSshdOptions = {},
): Promise<void> {
  await withLock(() => stopSshdUnlocked(checkIndex(index), options));
}

/**
 * Starts one host's `sshd` again and waits until it accepts connections.
 * Does nothing when it is running.
 *
 * @param index The host's index.
 */
export async function startSshd(index: number): Promise<void> {
  await withLock(() => startSshdUnlocked(checkIndex(index)));
}

/**
 * Gives one host a new host key (and restarts its `sshd`, dropping its
 * sessions), as when a machine is replaced at the same address. `hosts.json`
 * keeps the old key; `restore()` puts the old key back.
 *
 * @param index The host's index.
 * @returns The new key line, and `restore()`.
 */
export async function changeHostKey(
  index: number,
): Promise<{ hostKey: string; restore(): Promise<void> }> {
  const { dir, name } = names(checkIndex(index));
  const key = `${dir}/ssh_host_ed25519_key`;
  await withLock(async () => {
    await Deno.rename(key, `${key}.saved`);
    await Deno.rename(`${key}.pub`, `${key}.pub.saved`);
    await cmd("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      `${name}-new`,
      "-f",
      key,
    ]);
    await stopSshdUnlocked(index, {});
    await startSshdUnlocked(index);
  });
  return {
    hostKey: (await Deno.readTextFile(`${key}.pub`)).trim(),
    async restore() {
      await withLock(async () => {
        if (!(await exists(`${key}.saved`))) return;
        await Deno.rename(`${key}.saved`, key);
        await Deno.rename(`${key}.pub.saved`, `${key}.pub`);
        await stopSshdUnlocked(index, {});
        await startSshdUnlocked(index);
      });
    },
  };
}

/**
 * Runs a program inside one host's network namespace (as root), e.g.
 * `["ss", "-tnH", "state", "established"]`.
 *
 * @param index The host's index.
 * @param argv The program and its arguments.
 * @returns Its standard output.
 */
export async function rigExec(index: number, argv: string[]): Promise<string> {
  const { name } = names(checkIndex(index));
  return (await cmd("ip", ["netns", "exec", name, ...argv])).stdout;
}

function checkIndex(index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_HOSTS) {
    throw new RangeError(
      `rig: host index must be an integer from 0, got ${index}`,
    );
  }
  return index;
}

async function healthy(hosts: RigHost[], count: number): Promise<boolean> {
  if (hosts.length < count) return false;
  for (const host of hosts) {
    if ((await sshdPid(host.index)) === null) return false;
    if (!(await canConnect(host.address, host.port))) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// For tests

/** A rig a test file may use; see {@linkcode requireRig}. */
export interface RigLease {
  /** The hosts. */
  hosts: RigHost[];
  /** Whether this lease brought the rig up (and `release()` will take it down). */
  created: boolean;
  /** Takes the rig down if this lease brought it up; otherwise does nothing. */
  release(): Promise<void>;
}

/** What {@linkcode requireRig} found: a rig, or why there is none. */
export type RigRequirement =
  | { rig: RigLease; reason: null }
  | { rig: null; reason: string };

/**
 * Gives a test file the SSH rig: reuses the running one when it is healthy,
 * repairs a broken one, and brings one up when there is none — then (only
 * then) `release()` takes it down again, so call `release()` in the file's
 * last test. When the rig cannot run here (not root, no `sshd`), returns
 * `{ rig: null, reason }` so that tests are ignored with the reason printed —
 * except under `CI=true`, where that throws: in CI a rig that cannot start is
 * a failure, not a skip.
 *
 * Run `deno task rig:up` first when test files run in parallel.
 *
 * @param options How many hosts the tests need at least (default 3).
 * @returns The rig, or the reason there is none.
 * @throws {Error} Under `CI=true`, when the rig cannot run or come up.
 */
export async function requireRig(
  options: { hosts?: number } = {},
): Promise<RigRequirement> {
  const count = options.hosts ?? 3;
  const ci = Deno.env.get("CI") === "true";
  try {
    const existing = await rigHosts();
    if (existing && (await healthy(existing, count))) {
      return { rig: lease(existing.slice(0, count), false), reason: null };
    }
    const reason = await rigUnavailableReason();
    if (reason) {
      if (ci) throw new Error(`The SSH rig cannot run under CI: ${reason}`);
      return { rig: null, reason };
    }
    const created = existing === null && (await namespaces()).length === 0;
    const hosts = await rigUp({
      hosts: Math.max(count, existing?.length ?? 0),
    });
    return { rig: lease(hosts.slice(0, count), created), reason: null };
  } catch (error) {
    if (ci) throw error;
    return {
      rig: null,
      reason: `the SSH rig failed to come up: ${(error as Error).message}`,
    };
  }
}

function lease(hosts: RigHost[], created: boolean): RigLease {
  let released = false;
  return {
    hosts,
    created,
    async release() {
      if (released || !created) return;
      released = true;
      await rigDown();
    },
  };
}

// ---------------------------------------------------------------------------

if (import.meta.main) {
  const [command, arg] = Deno.args;
  const usage =
    "usage: rig.ts up [N] | down | stop-sshd I | start-sshd I | hosts";
  try {
    switch (command) {
      case "up": {
        const hosts = await rigUp({
          hosts: arg === undefined ? 3 : Number(arg),
        });
        for (const h of hosts) {
          console.log(`${h.name}  ${h.user}@${h.address}:${h.port}`);
        }
        console.log(`hosts: ${HOSTS_JSON}  key: ${CLIENT_KEY}`);
        break;
      }
      case "down":
        await rigDown();
        console.log("rig down");
        break;
      case "stop-sshd":
        await stopSshd(Number(arg));
        break;
      case "start-sshd":
        await startSshd(Number(arg));
        break;
      case "hosts":
        console.log(JSON.stringify(await rigHosts(), null, 2));
        break;
      default:
        console.error(usage);
        Deno.exit(2);
    }
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
