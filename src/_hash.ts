/**
 * SHA-256 digests as hex, for content hashes of code and caches.
 *
 * @module
 */

/**
 * The SHA-256 digest of some bytes or text, in lowercase hex.
 *
 * @param data Bytes, text (hashed as UTF-8), or parts hashed one after the
 * other as if joined.
 * @returns 64 hex digits.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "./_hash.ts";
 *
 * console.log((await sha256Hex("abc")).slice(0, 8)); // ba7816bf
 * ```
 */
export async function sha256Hex(
  data: string | Uint8Array | readonly Uint8Array[],
): Promise<string> {
  let bytes: Uint8Array;
  if (typeof data === "string") bytes = new TextEncoder().encode(data);
  else if (data instanceof Uint8Array) bytes = data;
  else {
    bytes = new Uint8Array(data.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of data) {
      bytes.set(part, at);
      at += part.length;
    }
  }
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}
