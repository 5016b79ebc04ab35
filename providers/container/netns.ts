/**
 * Networks for Podman nodes without Podman's own networks (which add rules
 * to the host's firewall): a Linux bridge per cluster with a private /24,
 * and per container a network namespace joined to it by a veth pair, which
 * the container enters with `podman run --network ns:/run/netns/<name>`.
 * Root only; needs `ip` (iproute2).
 *
 * Names: the bridge is `skw<8 hex>`, the namespaces `skw<8 hex>-<n>`, the
 * host ends of the veths `skw<8 hex>v<n>`. The bridge's alias carries the
 * cluster and owner labels (`skyward.cluster=<id> skyward.owner=<owner>`),
 * so that a sweep finds what a crashed client left.
 *
 * @module
 */
import { runCommand } from "./command.ts";

/** A cluster's bridge. */
export interface Bridge {
  /** The bridge's name, also the prefix of its namespaces and veths. */
  name: string;
  /** The first three octets of its /24, e.g. `10.231.7`. */
  prefix: string;
}

async function ip(args: string[], allowFail = false): Promise<string> {
  const out = await runCommand("ip", args);
  if (out.code === 127) {
    throw new Error(
      `Cannot set up the nodes' network: 'ip' is missing (apt-get install -y iproute2): ${out.stderr}`,
    );
  }
  if (out.code !== 0 && !allowFail) {
    throw new Error(
      `Cannot set up the nodes' network: 'ip ${
        args.join(" ")
      }' failed: ${out.stderr.trim()}`,
    );
  }
  return out.stdout;
}

function toInt(address: string): number {
  return address.split(".").reduce((n, o) => n * 256 + Number(o), 0) >>> 0;
}

/** The IPv4 prefixes in use on this machine, as [network, mask] pairs. */
async function usedPrefixes(): Promise<[number, number][]> {
  const text = (await ip(["-4", "-o", "route", "show", "table", "all"], true)) +
    (await ip(["-4", "-o", "addr", "show"], true));
  const used: [number, number][] = [];
  for (const match of text.matchAll(/(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?/g)) {
    const bits = match[2] === undefined ? 32 : Number(match[2]);
    if (bits === 0) continue;
    const mask = bits === 32 ? 0xffffffff : (~((1 << (32 - bits)) - 1)) >>> 0;
    used.push([(toInt(match[1]) & mask) >>> 0, mask]);
  }
  return used;
}

/**
 * Makes a bridge with a free private /24 (in 10.200.0.0 to 10.254.255.0),
 * labelled with the cluster and its owner.
 *
 * @param labels The labels, written to the bridge's alias.
 * @returns The bridge.
 */
export async function createBridge(
  labels: Record<string, string>,
): Promise<Bridge> {
  const used = await usedPrefixes();
  const random = new Uint32Array(1);
  for (let attempt = 0; attempt < 64; attempt++) {
    crypto.getRandomValues(random);
    const prefix = `10.${200 + (random[0] % 55)}.${(random[0] >>> 8) % 256}`;
    const net = toInt(`${prefix}.0`);
    const clash = used.some(([other, mask]) =>
      ((net & mask) >>> 0) === other || ((other & 0xffffff00) >>> 0) === net
    );
    if (clash) continue;
    const name = `skw${
      [...crypto.getRandomValues(new Uint8Array(4))]
        .map((b) => b.toString(16).padStart(2, "0")).join("")
    }`;
    await ip(["link", "add", name, "type", "bridge"]);
    try {
      const alias = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(
        " ",
      );
      await ip(["link", "set", "dev", name, "alias", alias]);
      await ip(["addr", "add", `${prefix}.1/24`, "dev", name]);
      await ip(["link", "set", name, "up"]);
    } catch (error) {
      await ip(["link", "del", name], true);
      throw error;
    }
    return { name, prefix };
  }
  throw new Error(
    "Cannot set up the nodes' network: no free /24 in 10.200.0.0/8",
  );
}

/**
 * Makes node `index`'s namespace on the bridge, with address
 * `<prefix>.<10 + index>`.
 *
 * @returns The namespace's path (for `--network ns:<path>`) and the address.
 */
export async function addNamespace(
  bridge: Bridge,
  index: number,
): Promise<{ path: string; address: string }> {
  if (!Number.isInteger(index) || index < 0 || index > 240) {
    throw new RangeError(
      `Cannot add node ${index} to ${bridge.name}: nodes are 0 to 240`,
    );
  }
  const ns = `${bridge.name}-${index}`;
  const veth = `${bridge.name}v${index}`;
  const address = `${bridge.prefix}.${10 + index}`;
  await ip(["netns", "add", ns]);
  try {
    await ip([
      "link",
      "add",
      veth,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      ns,
    ]);
    await ip(["link", "set", veth, "master", bridge.name, "up"]);
    await ip(["-n", ns, "addr", "add", `${address}/24`, "dev", "eth0"]);
    await ip(["-n", ns, "link", "set", "eth0", "up"]);
    await ip(["-n", ns, "link", "set", "lo", "up"]);
  } catch (error) {
    await ip(["netns", "del", ns], true);
    throw error;
  }
  return { path: `/run/netns/${ns}`, address };
}

/** Removes node `index`'s namespace (its veth goes with it). Gone already is fine. */
export async function removeNamespace(
  bridge: string,
  index: number,
): Promise<void> {
  await ip(["netns", "del", `${bridge}-${index}`], true);
}

/** Removes the bridge and every namespace of it. Gone already is fine. */
export async function removeBridge(bridge: string): Promise<void> {
  const names = (await ip(["netns", "list"], true)).split("\n").map((l) =>
    l.split(" ")[0]
  );
  for (const ns of names.filter((n) => n.startsWith(`${bridge}-`))) {
    await ip(["netns", "del", ns], true);
  }
  await ip(["link", "del", bridge], true);
}

/** The bridges this module made, with their labels. */
export async function listBridges(): Promise<
  Map<string, Record<string, string>>
> {
  const found = new Map<string, Record<string, string>>();
  const text = await ip(["-o", "link", "show", "type", "bridge"], true);
  for (const line of text.split("\n")) {
    const name = line.match(/^\d+:\s+(skw[0-9a-f]{8})[:@]/)?.[1];
    const alias = line.match(/\balias (.*)$/)?.[1];
    if (!name || !alias) continue;
    found.set(
      name,
      Object.fromEntries(
        alias.trim().split(/\s+/).map((kv) =>
          kv.split("=", 2) as [string, string]
        ),
      ),
    );
  }
  return found;
}
