/**
 * SSH host keys: parsing public key lines, fingerprints, and looking a host
 * up in an OpenSSH `known_hosts` file (plain, `[host]:port`, hashed `|1|`
 * entries, wildcards, negations and `@revoked` markers).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash, createHmac } from "node:crypto";

/** A server's public host key. */
export interface HostKey {
  /** The key type, e.g. `"ssh-ed25519"`. */
  type: string;
  /** The key in SSH wire format (what a public key line carries in base64). */
  data: Uint8Array;
  /** The key as an OpenSSH public key line without comment: `"ssh-ed25519 AAAA…"`. */
  line: string;
  /** The OpenSSH SHA-256 fingerprint: `"SHA256:…"`. */
  fingerprint: string;
}

/**
 * Reads a host key from SSH wire format.
 *
 * @param data The key blob, as a server sends it.
 * @returns The key, with its type, public key line and fingerprint.
 * @throws {TypeError} When the blob does not start with a key type.
 *
 * @example
 * ```ts
 * import { hostKeyFromData, parsePublicKey } from "./host_keys.ts";
 *
 * const key = parsePublicKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDjWnjpX+reFB7v4Ub6+x3Q80KOiPSw5jutRrdlqB+a3");
 * console.log(hostKeyFromData(key.data).type); // "ssh-ed25519"
 * ```
 */
export function hostKeyFromData(data: Uint8Array): HostKey {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const length = data.byteLength >= 4 ? view.getUint32(0) : -1;
  if (length <= 0 || 4 + length > data.byteLength) {
    throw new TypeError(
      "Cannot read host key: it does not start with a key type",
    );
  }
  const type = new TextDecoder().decode(data.subarray(4, 4 + length));
  const base64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    .toString("base64");
  return {
    type,
    data,
    line: `${type} ${base64}`,
    fingerprint: fingerprint(data),
  };
}

/**
 * Parses an OpenSSH public key line, `"<type> <base64> [comment]"`.
 *
 * @param line The key line.
 * @returns The key.
 * @throws {TypeError} When the line is not a public key, or its type field
 * disagrees with the key it carries.
 *
 * @example
 * ```ts
 * import { parsePublicKey } from "./host_keys.ts";
 *
 * const key = parsePublicKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDjWnjpX+reFB7v4Ub6+x3Q80KOiPSw5jutRrdlqB+a3 host");
 * console.log(key.fingerprint.startsWith("SHA256:")); // true
 * ```
 */
export function parsePublicKey(line: string): HostKey {
  const [type, base64] = line.trim().split(/\s+/);
  if (!type || !base64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
    throw new TypeError(
      `Cannot parse public key: expected '<type> <base64>', got '${line}'`,
    );
  }
  const bytes = Buffer.from(base64, "base64");
  const key = hostKeyFromData(
    new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  );
  if (key.type !== type) {
    throw new TypeError(
      `Cannot parse public key: it says '${type}' but holds '${key.type}'`,
    );
  }
  return key;
}

/**
 * The OpenSSH SHA-256 fingerprint of a key blob, as `ssh-keygen -l` prints it.
 *
 * @param data The key in SSH wire format.
 * @returns `"SHA256:"` and the unpadded base64 of the digest.
 */
export function fingerprint(data: Uint8Array): string {
  const digest = createHash("sha256").update(data).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

/** Whether two keys are the same key. */
export function sameKey(a: HostKey, b: HostKey): boolean {
  if (a.data.byteLength !== b.data.byteLength) return false;
  for (let i = 0; i < a.data.byteLength; i++) {
    if (a.data[i] !== b.data[i]) return false;
  }
  return true;
}

/** What a `known_hosts` file says about one host. */
export interface KnownHostKeys {
  /** Keys the host may present. */
  keys: HostKey[];
  /** Keys marked `@revoked`: never accepted. */
  revoked: HostKey[];
}

/**
 * The keys a `known_hosts` text lists for a host and port. Hosts on port 22
 * are looked up by name, others as `[host]:port`, as OpenSSH does.
 * `@cert-authority` lines are skipped (certificates are not supported), as
 * are lines that do not parse.
 *
 * @param text The file's content.
 * @param host The host name or address as the client dials it.
 * @param port The port.
 * @returns The host's keys and revoked keys; both empty for an unknown host.
 *
 * @example
 * ```ts
 * import { lookupKnownHosts } from "./host_keys.ts";
 *
 * const text = "[10.0.0.5]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDjWnjpX+reFB7v4Ub6+x3Q80KOiPSw5jutRrdlqB+a3\n";
 * console.log(lookupKnownHosts(text, "10.0.0.5", 2222).keys.length); // 1
 * console.log(lookupKnownHosts(text, "10.0.0.5", 22).keys.length); // 0
 * ```
 */
export function lookupKnownHosts(
  text: string,
  host: string,
  port: number,
): KnownHostKeys {
  const name = port === 22 ? host : `[${host}]:${port}`;
  const result: KnownHostKeys = { keys: [], revoked: [] };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    let fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0].startsWith("@")) {
      marker = fields[0];
      fields = fields.slice(1);
    }
    if (marker !== undefined && marker !== "@revoked") continue;
    if (fields.length < 3 || !hostsFieldMatches(fields[0], name)) continue;
    let key: HostKey;
    try {
      key = parsePublicKey(`${fields[1]} ${fields[2]}`);
    } catch {
      continue;
    }
    (marker === "@revoked" ? result.revoked : result.keys).push(key);
  }
  return result;
}

function hostsFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt, hash] = field.split("|");
    if (!salt || !hash) return false;
    const digest = createHmac("sha1", Buffer.from(salt, "base64")).update(name)
      .digest("base64");
    return digest === hash;
  }
  let matched = false;
  for (const pattern of field.split(",")) {
    const negated = pattern.startsWith("!");
    if (!globMatches(negated ? pattern.slice(1) : pattern, name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

function globMatches(pattern: string, name: string): boolean {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(
    /\*/g,
    ".*",
  ).replace(
    /\?/g,
    ".",
  );
  return new RegExp(`^${source}$`, "i").test(name);
}

const ALGORITHMS_BY_KEY_TYPE: Record<string, string[]> = {
  "ssh-ed25519": ["ssh-ed25519"],
  "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
  "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
  "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
  "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
  "ssh-dss": ["ssh-dss"],
};

/**
 * The host key algorithms to offer so that a server presents a key of one of
 * the given types (a server usually holds several host keys, and presents
 * the one of the first algorithm both sides support).
 *
 * @param keys The keys the client knows for the host.
 * @returns The algorithms, most preferred first; empty when none is known.
 */
export function hostKeyAlgorithms(keys: HostKey[]): string[] {
  const algorithms: string[] = [];
  for (const key of keys) {
    for (const algorithm of ALGORITHMS_BY_KEY_TYPE[key.type] ?? []) {
      if (!algorithms.includes(algorithm)) algorithms.push(algorithm);
    }
  }
  return algorithms;
}
