/**
 * A streaming writer of POSIX tar archives (ustar, with pax headers for long
 * paths and large files), for shipping trees to a node in one stream that
 * `tar -x` unpacks there. Files on disk are read as the stream is pulled, so
 * a large file (the Deno binary) is never held in memory whole.
 *
 * @module
 */

/** One entry of an archive. */
export interface TarEntry {
  /** The path inside the archive: relative, `/`-separated, no `..`. */
  path: string;
  /**
   * A file or a directory.
   *
   * @default {"file"}
   */
  type?: "file" | "directory";
  /**
   * The permission bits.
   *
   * @default {0o644 for files, 0o755 for directories}
   */
  mode?: number;
  /** The content, for a file held in memory. */
  data?: Uint8Array;
  /** A local file to stream the content from, instead of `data`. */
  file?: string;
}

const BLOCK = 512;
const encoder = new TextEncoder();

function octal(value: number, width: number): string {
  // width - 1 digits and a NUL.
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function putString(block: Uint8Array, at: number, width: number, text: string) {
  const bytes = encoder.encode(text);
  block.set(bytes.subarray(0, width), at);
}

function header(
  name: string,
  size: number,
  mode: number,
  type: "0" | "5" | "x",
  mtime: number,
): Uint8Array {
  const block = new Uint8Array(BLOCK);
  putString(block, 0, 100, name);
  putString(block, 100, 8, octal(mode & 0o7777, 8));
  putString(block, 108, 8, octal(0, 8));
  putString(block, 116, 8, octal(0, 8));
  putString(block, 124, 12, octal(size, 12));
  putString(block, 136, 12, octal(mtime, 12));
  putString(block, 148, 8, "        ");
  putString(block, 156, 1, type);
  putString(block, 257, 6, "ustar\0");
  putString(block, 263, 2, "00");
  let sum = 0;
  for (const byte of block) sum += byte;
  putString(block, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return block;
}

/** A pax record `"<length> <key>=<value>\n"`, whose length counts itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLength = encoder.encode(body).length;
  const digits = String(bodyLength).length;
  let length = bodyLength + digits;
  if (String(length).length !== digits) {
    length = bodyLength + String(length).length;
  }
  return `${length}${body}`;
}

function padding(size: number): Uint8Array {
  const rest = size % BLOCK;
  return new Uint8Array(rest === 0 ? 0 : BLOCK - rest);
}

function headers(
  path: string,
  size: number,
  mode: number,
  type: "0" | "5",
  mtime: number,
): Uint8Array[] {
  const name = type === "5" ? `${path}/` : path;
  const records: string[] = [];
  if (encoder.encode(name).length > 100) records.push(paxRecord("path", name));
  if (size > 0o77777777777) records.push(paxRecord("size", String(size)));
  const out: Uint8Array[] = [];
  if (records.length) {
    const pax = encoder.encode(records.join(""));
    out.push(
      header("././@PaxHeader", pax.length, 0o644, "x", mtime),
      pax,
      padding(pax.length),
    );
  }
  // A name too long for the field is cut; the pax record above has it whole.
  const short = encoder.encode(name).length > 100
    ? new TextDecoder().decode(encoder.encode(name).subarray(0, 100))
      .replace(/\uFFFD+$/, "")
    : name;
  out.push(
    header(short, Math.min(size, 0o77777777777), mode, type, mtime),
  );
  return out;
}

function checkPath(path: string): void {
  if (
    !path || path.startsWith("/") ||
    path.split("/").some((s) => s === "" || s === "." || s === "..")
  ) {
    throw new TypeError(
      `Cannot archive '${path}': paths must be relative, without '.', '..' or empty segments`,
    );
  }
}

/** Chunks written at once: small entries are batched up to this size. */
const CHUNK = 256 * 1024;

async function readExactly(
  file: Deno.FsFile,
  buffer: Uint8Array,
): Promise<number> {
  let got = 0;
  while (got < buffer.length) {
    const n = await file.read(buffer.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got;
}

async function* chunks(
  entries: Iterable<TarEntry> | AsyncIterable<TarEntry>,
): AsyncGenerator<Uint8Array> {
  const mtime = Math.floor(Date.now() / 1000);
  // Many small files make many small pieces: batch them, so that the
  // transport sees a few large writes rather than thousands of tiny ones.
  let batch: Uint8Array[] = [];
  let batched = 0;
  const add = (piece: Uint8Array) => {
    if (piece.length === 0) return;
    batch.push(piece);
    batched += piece.length;
  };
  const take = (): Uint8Array => {
    const out = new Uint8Array(batched);
    let at = 0;
    for (const piece of batch) {
      out.set(piece, at);
      at += piece.length;
    }
    batch = [];
    batched = 0;
    return out;
  };
  for await (const entry of entries) {
    checkPath(entry.path);
    if (entry.type === "directory") {
      for (const h of headers(entry.path, 0, entry.mode ?? 0o755, "5", mtime)) {
        add(h);
      }
    } else if (entry.data) {
      const { data } = entry;
      for (
        const h of headers(
          entry.path,
          data.length,
          entry.mode ?? 0o644,
          "0",
          mtime,
        )
      ) add(h);
      if (data.length >= CHUNK) {
        yield take();
        yield data;
      } else {
        add(data);
      }
      add(padding(data.length));
    } else if (entry.file !== undefined) {
      using file = await Deno.open(entry.file);
      const size = (await file.stat()).size;
      for (
        const h of headers(entry.path, size, entry.mode ?? 0o644, "0", mtime)
      ) add(h);
      let sent = 0;
      if (size < CHUNK) {
        const data = new Uint8Array(size);
        sent = await readExactly(file, data);
        add(data);
      } else {
        yield take();
        while (sent < size) {
          // A fresh buffer each time: the consumer may still hold the last.
          const buffer = new Uint8Array(Math.min(CHUNK, size - sent));
          const n = await readExactly(file, buffer);
          if (n === 0) break;
          sent += n;
          yield n === buffer.length ? buffer : buffer.subarray(0, n);
        }
      }
      if (sent !== size) {
        throw new Error(
          `Cannot archive '${entry.file}': it changed size while being read (${size} bytes, then ${sent})`,
        );
      }
      add(padding(size));
    } else {
      throw new TypeError(
        `Cannot archive '${entry.path}': an entry needs 'data' or 'file'`,
      );
    }
    if (batched >= CHUNK) yield take();
  }
  // The end: two zero blocks.
  add(new Uint8Array(BLOCK * 2));
  yield take();
}

/**
 * Streams a tar archive of the entries, reading files from disk as the
 * stream is pulled.
 *
 * @param entries The entries, in the order to write them.
 * @returns The archive's bytes.
 * @throws {TypeError} (through the stream) When a path is absolute or has `..`.
 *
 * @example
 * ```ts
 * import { tarStream } from "./tar.ts";
 *
 * const bytes = await new Response(tarStream([
 *   { path: "hello.txt", data: new TextEncoder().encode("hi\n") },
 * ])).bytes();
 * console.log(bytes.length); // 2048
 * ```
 */
export function tarStream(
  entries: Iterable<TarEntry> | AsyncIterable<TarEntry>,
): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks(entries));
}
