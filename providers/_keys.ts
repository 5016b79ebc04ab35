/**
 * A per-pool Ed25519 SSH key pair, made locally with WebCrypto and written
 * in OpenSSH's formats: the public line for `ImportKeyPair`, the private key
 * for the pool's SSH client. The private key never leaves this process.
 *
 * @module
 */

/** An SSH key pair in OpenSSH formats. */
export interface SshKeyPair {
  /** `ssh-ed25519 AAAA… comment`. */
  publicKey: string;
  /** `-----BEGIN OPENSSH PRIVATE KEY-----…`, unencrypted. */
  privateKey: string;
}

const encoder = new TextEncoder();

function u32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** An SSH wire `string`: a length, then the bytes. */
function sshString(data: Uint8Array | string): Uint8Array {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return concat(u32(bytes.length), bytes);
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/**
 * Makes a new Ed25519 key pair.
 *
 * @param comment The comment of both keys, e.g. the cluster id.
 * @returns The public line and the private key, in OpenSSH formats.
 *
 * @example
 * ```ts
 * import { generateSshKeyPair } from "./_keys.ts";
 *
 * const { publicKey } = await generateSshKeyPair("sky-test");
 * console.log(publicKey.startsWith("ssh-ed25519 ")); // true
 * ```
 */
export async function generateSshKeyPair(comment: string): Promise<SshKeyPair> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const pub = new Uint8Array(
    await crypto.subtle.exportKey("raw", pair.publicKey),
  );
  // PKCS #8 of Ed25519 ends with the 32-byte seed.
  const pkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", pair.privateKey),
  );
  const seed = pkcs8.slice(pkcs8.length - 32);
  const publicBlob = concat(sshString("ssh-ed25519"), sshString(pub));
  const check = crypto.getRandomValues(new Uint8Array(4));
  let secret = concat(
    check,
    check,
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(concat(seed, pub)),
    sshString(comment),
  );
  const padding = (8 - (secret.length % 8)) % 8;
  secret = concat(
    secret,
    Uint8Array.from({ length: padding }, (_, i) => i + 1),
  );
  const body = concat(
    encoder.encode("openssh-key-v1\0"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    u32(1),
    sshString(publicBlob),
    sshString(secret),
  );
  const lines = base64(body).match(/.{1,70}/g) ?? [];
  return {
    publicKey: `ssh-ed25519 ${base64(publicBlob)} ${comment}`,
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${
      lines.join("\n")
    }\n-----END OPENSSH PRIVATE KEY-----\n`,
  };
}

/**
 * A cluster record with its SSH private key as a property that is not
 * enumerable, so that printing or logging the record never shows the key.
 *
 * @param record The record, without the key.
 * @param privateKey The private key.
 * @returns The same object, with `privateKey`.
 *
 * @example
 * ```ts
 * import { withPrivateKey } from "./_keys.ts";
 *
 * const cluster = withPrivateKey<{ id: string; privateKey: string }>(
 *   { id: "sky-1" },
 *   "-----BEGIN OPENSSH PRIVATE KEY-----…",
 * );
 * console.log(JSON.stringify(cluster)); // {"id":"sky-1"}
 * ```
 */
export function withPrivateKey<T extends { readonly privateKey: string }>(
  record: Omit<T, "privateKey">,
  privateKey: string,
): T {
  Object.defineProperty(record, "privateKey", {
    value: privateKey,
    enumerable: false,
  });
  return record as T;
}
