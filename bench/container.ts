// Benchmarks of container pools (providers/container/mod.ts): a 1-node pool's
// start to its first result, cold (an empty cache volume) and warm (the
// volume kept from the pool before), beside the same start without a cache
// volume, which ships Deno and the npm packages every time.
import * as sky from "../mod.ts";
import { DOCKER_HOST, requireDocker } from "../tests/rig/dockerd.ts";
import { noop } from "./computes.ts";
import { ms, percentile, printTable, row } from "./_util.ts";

/** The prefix of the benchmark's containers, networks and cache volumes. */
const PREFIX = "skybench";

async function docker(host: string, ...args: string[]): Promise<void> {
  await new Deno.Command("docker", {
    args,
    env: { DOCKER_HOST: host },
    stdout: "null",
    stderr: "null",
  }).output();
}

/** Milliseconds from `ComputePool.start` to the first result of a 1-node pool. */
async function startToResult(provider: sky.Provider<any>): Promise<number> {
  const t0 = performance.now();
  await using pool = await sky.ComputePool.start({
    provider,
    console: "silent",
    provisionTimeout: 180_000,
  });
  await pool.run(noop());
  // Closing the pool is not counted.
  return performance.now() - t0;
}

/** `n` sequential measures, sorted. */
async function repeat(n: number, fn: () => Promise<number>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(await fn());
  return times.sort((a, b) => a - b);
}

/** Runs the container benchmarks when a Docker daemon and the base image are there; says why not otherwise. */
export async function containerBenchmarks(): Promise<void> {
  const found = await requireDocker().catch((e) => ({
    host: null,
    reason: String(e),
  }));
  if (!found.host) {
    console.error(
      `Container benchmarks skipped: ${found.reason} (daemon ${DOCKER_HOST})`,
    );
    return;
  }
  const host = found.host;
  const volume = `${PREFIX}-cache-0`;
  const provider = (cache: boolean) =>
    sky.Container({ host, namePrefix: PREFIX, cache });
  await docker(host, "volume", "rm", "-f", volume);
  try {
    const shipped = await repeat(3, () => startToResult(provider(false)));
    const cold = await startToResult(provider(true));
    const warm = await repeat(5, () => startToResult(provider(true)));
    // The floor on this machine now: a local process node, code in place.
    const local = await repeat(5, () => startToResult(sky.Local()));
    const base = percentile(shipped, 0.5);
    row(
      "1-node container pool start to first result, cold cache volume",
      ms(cold),
      `no cache volume: median ${ms(base)}`,
      `${(cold / base).toFixed(2)}x`,
    );
    row(
      "1-node container pool start to first result, warm cache volume",
      `median ${ms(percentile(warm, 0.5))}, max ${ms(warm[warm.length - 1])}`,
      `no cache volume: median ${ms(base)}`,
      `${(percentile(warm, 0.5) / base).toFixed(2)}x`,
    );
    row(
      "1-node container pool start to first result, warm, beside a local pool",
      `median ${ms(percentile(warm, 0.5))}`,
      `sky.Local(): median ${ms(percentile(local, 0.5))}`,
      `${(percentile(warm, 0.5) / percentile(local, 0.5)).toFixed(2)}x`,
    );
  } finally {
    await docker(host, "volume", "rm", "-f", volume);
  }
}

if (import.meta.main) {
  await containerBenchmarks();
  printTable();
}
