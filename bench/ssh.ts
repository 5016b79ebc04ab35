// Benchmarks over SSH to the rig's hosts (tests/rig/rig.ts): round trip,
// bulk echo beside OpenSSH's `ssh host cat`, and pool start times.
import * as sky from "../mod.ts";
import { RIG_DIR, type RigHost, rigHosts } from "../tests/rig/rig.ts";
import { echo, noop } from "./computes.ts";
import { ms, percentile, row, timeEach } from "./_util.ts";
import { SshConnection } from "../src/transport/ssh/connection.ts";
import { PART_BYTES } from "../src/wire/frames.ts";
import {
  medians,
  provider,
  type StartBreakdown,
  timedStart,
} from "./_ssh_start.ts";

const BULK = 256 * 1024 * 1024;

/**
 * Writes `bytes` to `writable` in chunks of `chunk` bytes while reading
 * `readable` to its end; the number of bytes read.
 */
async function pushThrough(
  writable: WritableStream<Uint8Array>,
  readable: ReadableStream<Uint8Array>,
  bytes: number,
  chunk: number,
): Promise<number> {
  const data = new Uint8Array(chunk);
  const writing = (async () => {
    const writer = writable.getWriter();
    for (let sent = 0; sent < bytes; sent += data.length) {
      await writer.write(data);
    }
    await writer.close();
  })();
  let got = 0;
  for await (const part of readable) got += part.length;
  await writing;
  return got;
}

/** Seconds for OpenSSH's client to push `bytes` through `cat` on the host and read them back. */
async function opensshEcho(host: RigHost, bytes: number): Promise<number> {
  const t0 = performance.now();
  const child = new Deno.Command("ssh", {
    args: [
      "-i",
      host.keyPath,
      "-o",
      `UserKnownHostsFile=${RIG_DIR}/known_hosts`,
      "-o",
      "BatchMode=yes",
      "-p",
      String(host.port),
      `${host.user}@${host.address}`,
      "cat",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const got = await pushThrough(child.stdin, child.stdout, bytes, 1 << 20);
  await child.status;
  if (got !== bytes) {
    throw new Error(`ssh cat returned ${got} of ${bytes} bytes`);
  }
  return (performance.now() - t0) / 1000;
}

/** Seconds for this library's SSH transport (no pool) to push `bytes` through `cat` on the host and read them back. */
async function transportEcho(host: RigHost, bytes: number): Promise<number> {
  await using ssh = await SshConnection.connect({
    host: host.address,
    port: host.port,
    user: host.user,
    privateKey: await Deno.readTextFile(host.keyPath),
    knownHostsPath: `${RIG_DIR}/known_hosts`,
  });
  const t0 = performance.now();
  const cat = await ssh.exec("cat");
  const got = await pushThrough(cat.writable, cat.readable, bytes, PART_BYTES);
  await cat.exited;
  if (got !== bytes) {
    throw new Error(`cat over our SSH returned ${got} of ${bytes} bytes`);
  }
  return (performance.now() - t0) / 1000;
}

/** Leaves Deno on the hosts but removes the shipped code, dependencies and markers. */
async function clearCode(hosts: RigHost[]): Promise<void> {
  for (const host of hosts) {
    await new Deno.Command("ssh", {
      args: [
        "-i",
        host.keyPath,
        "-o",
        `UserKnownHostsFile=${RIG_DIR}/known_hosts`,
        "-o",
        "BatchMode=yes",
        `${host.user}@${host.address}`,
        "cd ~/.cache/skyward && rm -rf code lib deno_dir markers env",
      ],
    }).output();
  }
}

/** Runs a command on each host at once with OpenSSH's client; milliseconds until all are done. */
async function opensshAll(hosts: RigHost[], command: string): Promise<number> {
  const t0 = performance.now();
  await Promise.all(hosts.map((host) =>
    new Deno.Command("ssh", {
      args: [
        "-i",
        host.keyPath,
        "-o",
        `UserKnownHostsFile=${RIG_DIR}/known_hosts`,
        "-o",
        "BatchMode=yes",
        `${host.user}@${host.address}`,
        command,
      ],
    }).output()
  ));
  return performance.now() - t0;
}

/** Milliseconds to open a TCP connection to the host's sshd (no SSH). */
async function tcpConnect(host: RigHost): Promise<number> {
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: host.address, port: host.port });
  const took = performance.now() - t0;
  conn.close();
  return took;
}

/** Removes the marker that lets a ready host be found ready without a child process (the bootstrap writes it again). */
async function forgetQuickLook(hosts: RigHost[]): Promise<void> {
  await opensshAll(hosts, "rm -f ~/.cache/skyward/markers/deno-*");
}

/** One pool start in a fresh process (`ssh_start.ts`), as a program's first. */
async function startInFreshProcess(): Promise<StartBreakdown> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./ssh_start.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `ssh_start.ts failed: ${new TextDecoder().decode(stderr).slice(-2_000)}`,
    );
  }
  const lines = new TextDecoder().decode(stdout).trim().split("\n");
  return JSON.parse(lines.at(-1)!);
}

/** Runs the SSH benchmarks when the rig is up; says why not otherwise. */
export async function sshBenchmarks(): Promise<void> {
  const hosts = await rigHosts().catch(() => null);
  if (!hosts || hosts.length < 3) {
    console.error(
      "SSH benchmarks skipped: the rig is not up (deno task rig:up, as root)",
    );
    return;
  }
  {
    await using pool = await sky.ComputePool.start({
      provider: provider(hosts.slice(0, 1)),
      console: "silent",
    });
    const rt = await timeEach(2_000, 300, () => pool.run(noop()));
    const local = await (async () => {
      await using lp = await sky.ComputePool.start({
        provider: sky.Local(),
        console: "silent",
      });
      return await timeEach(2_000, 300, () => lp.run(noop()));
    })();
    row(
      "no-op round trip over SSH to a rig host",
      `p50 ${ms(percentile(rt, 0.5))}, p99 ${ms(percentile(rt, 0.99))}`,
      `local pool p50 ${ms(percentile(local, 0.5))}`,
      `${(percentile(rt, 0.5) / percentile(local, 0.5)).toFixed(2)}x (p50)`,
    );
    const data = new Uint8Array(BULK);
    for (let i = 0; i < data.length; i += 4096) data[i] = i & 0xff;
    // Three rounds, each ours beside OpenSSH's right after it: the machine's
    // load changes by the second, so the ratio is taken within a round.
    const mb = (2 * BULK) / 1e6;
    const rounds: { ours: number; transport: number; theirs: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const back = await pool.run(echo(data));
      const ours = (performance.now() - t0) / 1000;
      if (back.length !== BULK) {
        throw new Error("echo returned a different size");
      }
      const theirs = await opensshEcho(hosts[0], BULK);
      const transport = await transportEcho(hosts[0], BULK);
      rounds.push({ ours, transport, theirs });
    }
    const rates = (k: "ours" | "transport" | "theirs") =>
      rounds.map((r) => (mb / r[k]).toFixed(0)).join(", ");
    const ratios = (k: "ours" | "transport") => {
      const all = rounds.map((r) => r.theirs / r[k]).sort((a, b) => a - b);
      return `${all[1].toFixed(2)}x (${all[0].toFixed(2)}-${
        all[2].toFixed(2)
      })`;
    };
    row(
      "256 MiB Uint8Array echo over SSH (both directions), 3 rounds",
      `${rates("ours")} MB/s`,
      `OpenSSH \`ssh host cat\`: ${rates("theirs")} MB/s`,
      ratios("ours"),
    );
    row(
      "  256 MiB through `cat` on the SSH transport alone (no pool, no codec)",
      `${rates("transport")} MB/s`,
      `OpenSSH \`ssh host cat\`: ${rates("theirs")} MB/s`,
      ratios("transport"),
    );
  }
  {
    await clearCode(hosts);
    const t0 = performance.now();
    await using pool = await sky.ComputePool.start({
      provider: provider(hosts),
      nodes: 3,
      console: "silent",
    });
    await pool.run(noop());
    const fresh = performance.now() - t0;
    await pool.close();
    // Hosts already bootstrapped: the same start, repeated; and, in the same
    // run, each start with the bootstrap's quick look turned off (its
    // marker removed), as the bootstrap ran before it had one.
    const quick: StartBreakdown[] = [];
    const full: StartBreakdown[] = [];
    for (let i = 0; i < 5; i++) {
      await forgetQuickLook(hosts);
      full.push(await timedStart(hosts));
      quick.push(await timedStart(hosts));
    }
    // A program's first pool, in a process of its own (its code shipped by
    // a first run), which also loads the SSH client on the way.
    await startInFreshProcess();
    const firsts: StartBreakdown[] = [];
    for (let i = 0; i < 3; i++) firsts.push(await startInFreshProcess());
    const first = medians(firsts);
    const q = medians(quick);
    const f = medians(full);
    const login = percentile(
      await timeEach(5, 1, () => opensshAll(hosts, "true")),
      0.5,
    );
    const tcp = percentile(
      await timeEach(5, 1, () => tcpConnect(hosts[0])),
      0.5,
    );
    row(
      "3-node SSH pool start to first result, hosts with Deno (code and deps shipped)",
      ms(fresh),
      "-",
      "-",
    );
    row(
      "3-node SSH pool start to first result, hosts already bootstrapped",
      `median ${ms(q.total)} (${
        quick.map((r) => r.total.toFixed(0)).join(", ")
      })`,
      `OpenSSH \`ssh host true\` to the 3 hosts at once: ${ms(login)}`,
      `${(q.total / login).toFixed(2)}x`,
    );
    row(
      "3-node SSH pool start to first result, bootstrapped hosts, a program's first pool (fresh process)",
      `median ${ms(first.total)} (${
        firsts.map((r) => r.total.toFixed(0)).join(", ")
      })`,
      `OpenSSH \`ssh host true\` to the 3 hosts at once: ${ms(login)}`,
      `${(first.total / login).toFixed(2)}x`,
    );
    const parts = (b: StartBreakdown) =>
      `dial ${b.dial.toFixed(0)} (TCP ${
        tcp.toFixed(1)
      }, SSH handshake and login ${
        (b.dial - tcp).toFixed(0)
      }), bootstrap check ${b.check.toFixed(0)} (staging ${
        b.staging.toFixed(0)
      }), worker start ${b.worker.toFixed(0)}, first task ${
        b.task.toFixed(0)
      } ms`;
    row(
      "  where it goes (median, slowest node per step)",
      parts(q),
      `without the bootstrap's quick look: ${parts(f)}`,
      `check ${(q.check / Math.max(f.check, 1)).toFixed(2)}x`,
    );
  }
}
