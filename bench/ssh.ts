// Benchmarks over SSH to the rig's hosts (tests/rig/rig.ts): round trip,
// bulk echo beside OpenSSH's `ssh host cat`, and pool start times.
import * as sky from "../mod.ts";
import { RIG_DIR, type RigHost, rigHosts } from "../tests/rig/rig.ts";
import { echo, noop } from "./computes.ts";
import { ms, percentile, row, timeEach } from "./_util.ts";

const BULK = 256 * 1024 * 1024;

function provider(hosts: RigHost[]) {
  return sky.SSH({
    hosts: hosts.map((h) => `${h.user}@${h.address}:${h.port}`),
    key: hosts[0].keyPath,
    knownHosts: `${RIG_DIR}/known_hosts`,
  });
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
  const chunk = new Uint8Array(1 << 20);
  const writing = (async () => {
    const writer = child.stdin.getWriter();
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      await writer.write(chunk);
    }
    await writer.close();
  })();
  let got = 0;
  for await (const part of child.stdout) got += part.length;
  await writing;
  await child.status;
  if (got !== bytes) {
    throw new Error(`ssh cat returned ${got} of ${bytes} bytes`);
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
    const t0 = performance.now();
    const back = await pool.run(echo(data));
    const ours = (performance.now() - t0) / 1000;
    if (back.length !== BULK) throw new Error("echo returned a different size");
    const theirs = await opensshEcho(hosts[0], BULK);
    const mb = (2 * BULK) / 1e6;
    row(
      "256 MiB Uint8Array echo over SSH (both directions)",
      `${(mb / ours).toFixed(0)} MB/s`,
      `OpenSSH \`ssh host cat\`: ${(mb / theirs).toFixed(0)} MB/s`,
      `${((mb / ours) / (mb / theirs)).toFixed(2)}x`,
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
    const ready = await timeEach(3, 0, async () => {
      await using p = await sky.ComputePool.start({
        provider: provider(hosts),
        nodes: 3,
        console: "silent",
      });
      await p.run(noop());
    });
    row(
      "3-node SSH pool start to first result, hosts with Deno (code and deps shipped)",
      ms(fresh),
      "-",
      "-",
    );
    row(
      "3-node SSH pool start to first result, hosts already bootstrapped",
      `median ${ms(percentile(ready, 0.5))}`,
      "-",
      "-",
    );
  }
}
