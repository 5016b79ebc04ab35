/**
 * The seed's first accelerator job: one node with a GPU, a spot instance, and
 * an inference library that only the node needs — imported inside the
 * compute and declared in the image, never in the project (the counterpart
 * of Python's `Image(pip=["onnxruntime-gpu"])`). It answers with the device's
 * name and count, or "no GPU on this node" on a CPU node, so that it also
 * runs on `sky.Local()`.
 *
 * Run it locally (a CPU node):   `deno run -A examples/gpu.ts`
 * Run it on a cloud's T4 (spot): `deno run -A examples/gpu.ts aws`
 * (or `runpod`, `vastai`, `verda`; each needs its credentials, see the README).
 *
 * The client resolves the image's packages when the pool starts and ships
 * them to nodes that cannot reach the registry: `onnxruntime-node` is a
 * large package (about 115 MB to download once).
 *
 * @module
 */
import * as sky from "../mod.ts";

/** What the node found. */
export interface Devices {
  /** The GPU's name, or "no GPU on this node". */
  device: string;
  /** How many GPUs the node has. */
  count: number;
  /** The inference library's version, when it was loaded (on a GPU node). */
  onnxruntime?: string;
}

/** Lists the node's GPUs, and loads the inference library where there is one. */
export const devices = sky.compute(
  async (): Promise<Devices> => {
    let names: string[] = [];
    try {
      const out = await new Deno.Command("nvidia-smi", {
        args: ["--query-gpu=name", "--format=csv,noheader"],
        stdout: "piped",
        stderr: "null",
      }).output();
      if (out.success) {
        names = new TextDecoder().decode(out.stdout).split("\n")
          .map((line) => line.trim()).filter(Boolean);
      }
    } catch {
      // No driver: a CPU node.
    }
    if (names.length === 0) return { device: "no GPU on this node", count: 0 };
    // Declared in the image below, not in the project: only the node loads it.
    const ort = await import("onnxruntime-node");
    return {
      device: names[0],
      count: names.length,
      onnxruntime: ort.env?.versions?.node ?? "loaded",
    };
  },
  {
    // Running nvidia-smi, and what a native inference library needs.
    permissions: { run: ["nvidia-smi"], ffi: true, read: true, env: true },
  },
);

if (import.meta.main) {
  const where = Deno.args[0] ?? "local";
  const clouds: Record<string, () => sky.Provider<any>> = {
    aws: () => sky.AWS(),
    runpod: () => sky.RunPod(),
    vastai: () => sky.VastAI(),
    verda: () => sky.Verda(),
  };
  const cloud = Object.hasOwn(clouds, where) ? clouds[where]() : undefined;
  if (!cloud && where !== "local") {
    throw new Error(
      `Unknown provider '${where}': use local, ${
        Object.keys(clouds).join(", ")
      }`,
    );
  }
  await using pool = await sky.ComputePool.start({
    provider: cloud ?? sky.Local(),
    // Local nodes are processes on this machine: they have no accelerator to ask for.
    ...(cloud
      ? { accelerator: sky.accelerators.T4(), allocation: "spot" as const }
      : {}),
    image: sky.Image({
      imports: { "onnxruntime-node": "npm:onnxruntime-node@1.31.1" },
    }),
  });
  const found = await pool.run(devices());
  console.log(
    found.count > 0
      ? `${found.count} × ${found.device} (onnxruntime ${found.onnxruntime})`
      : found.device,
  );
}
