/**
 * Files over SFTP on an SSH connection: uploads written under a temporary
 * name and renamed into place (a file has its full content or is absent),
 * many files and many chunks of a file in flight at once, and `stat`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
// @ts-types="npm:@types/ssh2@1.15.6"
import type { SFTPWrapper } from "npm:ssh2@1.17.0";
import { settle } from "./callback.ts";
import { SshConnectionError } from "./errors.ts";

const UPLOAD_CHUNK = 64 * 1024;
const UPLOAD_WINDOW = 64;
const UPLOAD_FILES_IN_PARALLEL = 8;
const SFTP_NO_SUCH_FILE = 2;

/** A file to upload, see `SshConnection.upload`. */
export interface UploadFile {
  /** The path relative to the target directory, with `/` separators and no `..`. */
  path: string;
  /** The content. */
  data: Uint8Array;
  /**
   * The permission bits.
   *
   * @default {0o644}
   */
  mode?: number;
}

/**
 * The life of a connection: `"connecting"` only inside `connect`,

/** What the SFTP functions need of a connection. */
export interface SftpSite {
  /** `user@host:port`, for messages. */
  readonly label: string;
  /** Whether the connection is up (a failure while it is not says it was lost). */
  connected(): boolean;
  /** The connection's SFTP session, opened on first use. */
  sftp(): Promise<SFTPWrapper>;
}

/**
 * Uploads files over SFTP into a directory, creating it and any
 * subdirectory. Each file is written under a temporary name and renamed
 * into place, so a file either has its full content or is absent.
 *
 * @param site The connection.
 * @param files The files, with paths relative to `remoteDir`.
 * @param remoteDir The target directory; relative paths (or `~/…`) are relative to the login directory.
 * @throws {TypeError} When a path is absolute or has `..`.
 * @throws {SshConnectionError} When the connection is lost or closed.
 * @throws {Error} When the server refuses a write (e.g. permission denied), naming the path.
 *
 * @example
 * ```ts ignore
 * import { upload } from "./sftp.ts";
 *
 * await upload(site, [{ path: "a/b.txt", data: new TextEncoder().encode("hi") }], "~/x");
 * ```
 */
export async function upload(
  site: SftpSite,
  files: UploadFile[],
  remoteDir: string,
): Promise<void> {
  const root = remotePath(remoteDir).replace(/\/+$/, "") || "/";
  for (const file of files) {
    if (
      file.path.startsWith("/") ||
      file.path.split("/").some((s) => s === ".." || s === "")
    ) {
      throw new TypeError(
        `Cannot upload: file paths must be relative, without '..' or empty segments, got '${file.path}'`,
      );
    }
  }
  const sftp = await site.sftp();
  const made = new Set<string>();
  const directories = new Set([root]);
  for (const file of files) {
    const path = `${root}/${file.path}`;
    directories.add(path.slice(0, path.lastIndexOf("/")));
  }
  for (const dir of [...directories].sort()) {
    await mkdirp(site, sftp, dir, made);
  }

  const queue = [...files];
  const worker = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      await writeFile(
        site,
        sftp,
        `${root}/${file.path}`,
        file.data,
        file.mode ?? 0o644,
      );
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.min(UPLOAD_FILES_IN_PARALLEL, files.length) },
      worker,
    ),
  );
}

/**
 * Whether a path exists on the host (SFTP `stat`, following links).
 *
 * @param site The connection.
 * @param path The path; relative paths (or `~/…`) are relative to the login directory.
 * @returns `true` when it exists.
 * @throws {Error} When the server answers anything but "no such file" (e.g. permission denied).
 *
 * @example
 * ```ts ignore
 * import { exists } from "./sftp.ts";
 *
 * console.log(await exists(site, "~/.cache/skyward")); // true or false
 * ```
 */
export async function exists(site: SftpSite, path: string): Promise<boolean> {
  const sftp = await site.sftp();
  return await new Promise<boolean>((resolve, reject) => {
    sftp.stat(remotePath(path), (error) => {
      if (!error) resolve(true);
      else if (sftpCode(error) === SFTP_NO_SUCH_FILE) resolve(false);
      else reject(sftpError(site, error, `check '${path}'`));
    });
  });
}

function sftpError(site: SftpSite, error: unknown, action: string): Error {
  if (!site.connected()) {
    return new SshConnectionError(
      `Cannot ${action} on ${site.label}: the connection was lost`,
      { cause: error, retriable: true },
    );
  }
  return new Error(
    `Cannot ${action} on ${site.label}: ${(error as Error)?.message}`,
    {
      cause: error,
    },
  );
}

async function mkdirp(
  site: SftpSite,
  sftp: SFTPWrapper,
  dir: string,
  made: Set<string>,
): Promise<void> {
  const absolute = dir.startsWith("/");
  const parts = dir.split("/").filter((p) => p && p !== ".");
  let path = absolute ? "" : ".";
  for (const part of parts) {
    path = path === "." ? part : `${path}/${part}`;
    if (made.has(path)) continue;
    const isDir = await new Promise<boolean | null>((resolve, reject) => {
      sftp.stat(path, (error, stats) => {
        if (!error) resolve(stats.isDirectory());
        else if (sftpCode(error) === SFTP_NO_SUCH_FILE) resolve(null);
        else reject(sftpError(site, error, `check directory '${path}'`));
      });
    });
    if (isDir === false) {
      throw new Error(
        `Cannot upload to ${site.label}: '${path}' exists and is not a directory`,
      );
    }
    if (isDir === null) {
      await new Promise<void>((resolve, reject) => {
        sftp.mkdir(path, { mode: 0o755 }, (error) => {
          if (!error) return resolve();
          // Made meanwhile by someone else is as good.
          sftp.stat(path, (statError, stats) => {
            if (!statError && stats.isDirectory()) resolve();
            else reject(sftpError(site, error, `create directory '${path}'`));
          });
        });
      });
    }
    made.add(path);
  }
}

async function writeFile(
  site: SftpSite,
  sftp: SFTPWrapper,
  path: string,
  data: Uint8Array,
  mode: number,
) {
  const temp = `${path}.part-${crypto.randomUUID().slice(0, 8)}`;
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const call = <T>(
    action: string,
    fn: (cb: (error: Error | null | undefined, value: T) => void) => void,
  ) => settle(fn, (error) => sftpError(site, error, action));
  const handle = await call<Buffer>(
    `create '${path}'`,
    (cb) => sftp.open(temp, "w", { mode }, cb as never),
  );
  try {
    let offset = 0;
    const writeNext = async (): Promise<void> => {
      while (offset < buffer.byteLength) {
        const start = offset;
        const length = Math.min(UPLOAD_CHUNK, buffer.byteLength - start);
        offset += length;
        await call<void>(
          `write '${path}'`,
          (cb) => sftp.write(handle, buffer, start, length, start, cb as never),
        );
      }
    };
    const lanes = Math.max(
      1,
      Math.min(UPLOAD_WINDOW, Math.ceil(buffer.byteLength / UPLOAD_CHUNK)),
    );
    await Promise.all(Array.from({ length: lanes }, writeNext));
    // The mode given at open is cut by the server's umask: set it exactly.
    await call<void>(
      `set the mode of '${path}'`,
      (cb) => sftp.fchmod(handle, mode, cb as never),
    );
  } finally {
    await call<void>(
      `close '${path}'`,
      (cb) => sftp.close(handle, cb as never),
    ).catch(() => {});
  }
  try {
    await call<void>(
      `move '${path}' into place`,
      (cb) => sftp.ext_openssh_rename(temp, path, cb as never),
    );
  } catch (error) {
    await call<void>(
      `remove '${temp}'`,
      (cb) => sftp.unlink(temp, cb as never),
    ).catch(() => {});
    throw error;
  }
}

/** `~/x` and `~` are relative to the login directory, which is where SFTP starts. */
function remotePath(path: string): string {
  if (path === "~") return ".";
  return path.startsWith("~/") ? path.slice(2) || "." : path;
}

function sftpCode(error: unknown): number | undefined {
  return (error as { code?: number })?.code;
}
