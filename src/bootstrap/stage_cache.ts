/**
 * Code readied for the nodes, kept between runs of the client under
 * `$XDG_CACHE_HOME/skyward/staged` (else `~/.cache/skyward/staged`), while
 * the npm packages it names are still in the Deno cache; the last
 * {@linkcode KEEP_STAGED} are kept.
 *
 * @module
 */
import type { NpmPackage } from "./npm.ts";
import { writeFiles } from "./_files.ts";

/** What staging adds to the user's files, as kept between runs. */
export interface Staged {
  /** The node's configuration, the image's imports stub, the lockfile, vendored modules. */
  extras: { path: string; data: Uint8Array }[];
  packages: NpmPackage[];
  importHosts: string[];
  entries: string[];
  config: string;
}

/** An environment variable, or `undefined` when it is unset or cannot be read. */
export function envOf(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** Where readied code is kept between runs: `$XDG_CACHE_HOME/skyward/staged`, else `~/.cache/skyward/staged`. */
function stagedDir(): string | undefined {
  const cache = envOf("XDG_CACHE_HOME") ??
    (envOf("HOME") ? `${envOf("HOME")}/.cache` : undefined);
  return cache ? `${cache}/skyward/staged` : undefined;
}

/** What was staged under `key`, when it is kept and its packages are still cached. */
export async function loadStaged(key: string): Promise<Staged | undefined> {
  const base = stagedDir();
  if (!base) return undefined;
  try {
    const dir = `${base}/${key}`;
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`)) as
      & Omit<Staged, "extras">
      & { extras: string[] };
    for (const pkg of meta.packages) {
      if (!(await Deno.stat(pkg.localPath)).isDirectory) return undefined;
    }
    const extras = await Promise.all(
      meta.extras.map(async (path) => ({
        path,
        data: await Deno.readFile(`${dir}/files/${path}`),
      })),
    );
    return { ...meta, extras };
  } catch {
    return undefined;
  }
}

/** Keeps what was staged under `key`, dropping the oldest beyond {@linkcode KEEP_STAGED}. */
export async function saveStaged(key: string, staged: Staged): Promise<void> {
  const base = stagedDir();
  if (!base) return;
  const dir = `${base}/${key}`;
  const tmp = `${dir}.${Deno.pid}.tmp`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await writeFiles(`${tmp}/files`, staged.extras);
  await Deno.writeTextFile(
    `${tmp}/meta.json`,
    JSON.stringify({ ...staged, extras: staged.extras.map((f) => f.path) }),
  );
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, dir);
  // Keep the last few.
  const kept: { path: string; at: number }[] = [];
  for await (const entry of Deno.readDir(base)) {
    if (!entry.isDirectory || entry.name.includes(".")) continue;
    const path = `${base}/${entry.name}`;
    const at = (await Deno.stat(path).catch(() => undefined))?.mtime
      ?.getTime() ?? 0;
    kept.push({ path, at });
  }
  kept.sort((a, b) => b.at - a.at);
  for (const old of kept.slice(KEEP_STAGED)) {
    await Deno.remove(old.path, { recursive: true }).catch(() => {});
  }
}

/** The version of what staging makes: a change to it readies the code again. */
export const STAGE_FORMAT = 2;

/** How many readied code directories are kept between runs. */
export const KEEP_STAGED = 16;
