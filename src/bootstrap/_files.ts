/**
 * Writing files under a directory of the client's disk, making the
 * directories they need.
 *
 * @module
 */
import { posixDirname } from "./node_config.ts";

/**
 * Writes files under `dir`, making their directories.
 *
 * @param dir The directory.
 * @param files The files, with paths relative to `dir`.
 *
 * @example
 * ```ts
 * import { writeFiles } from "./_files.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeFiles(dir, [{ path: "a/b.txt", data: new TextEncoder().encode("hi") }]);
 * console.log(await Deno.readTextFile(`${dir}/a/b.txt`)); // hi
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFiles(
  dir: string,
  files: { path: string; data: Uint8Array }[],
): Promise<void> {
  const made = new Set<string>();
  for (const file of files) {
    const parent = posixDirname(`${dir}/${file.path}`);
    if (!made.has(parent)) {
      await Deno.mkdir(parent, { recursive: true });
      made.add(parent);
    }
    await Deno.writeFile(`${dir}/${file.path}`, file.data);
  }
}
