// The library's modules name their npm packages with full specifiers
// (`npm:zod@4.6.7`), so that a project importing the library by an `https:`
// URL, which gets no import map, resolves them; `deno.json` pins the same
// packages for the repository's own tools. The two must never drift apart.
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const FOLDERS = ["src", "worker", "providers"];
const FILES = ["mod.ts", "cli.ts"];

async function* sources(): AsyncGenerator<URL> {
  for (const file of FILES) yield new URL(file, ROOT);
  for (const folder of FOLDERS) {
    const stack = [new URL(`${folder}/`, ROOT)];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isDirectory) stack.push(new URL(`${entry.name}/`, dir));
        else if (entry.name.endsWith(".ts")) yield new URL(entry.name, dir);
      }
    }
  }
}

/** `npm:name@version` of an import statement (not of comments or strings in docs). */
const IMPORT =
  /^\s*(?:import|export)\b[^;]*?\bfrom\s+"npm:((?:@[^/"]+\/)?[^@/"]+)@([^/"]+)(?:\/[^"]*)?"|\bimport\(\s*"npm:((?:@[^/"]+\/)?[^@/"]+)@([^/"]+)(?:\/[^"]*)?"\s*\)|^\/\/ @ts-types="npm:((?:@[^/"]+\/)?[^@/"]+)@([^/"]+)(?:\/[^"]*)?"/gm;

Deno.test("every npm package the library imports is named at the version deno.json pins", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", ROOT)),
  ) as { imports: Record<string, string> };
  const pinned = new Map<string, string>();
  for (const target of Object.values(config.imports)) {
    const match = /^npm:((?:@[^/]+\/)?[^@/]+)@(.+)$/.exec(target);
    if (match) pinned.set(match[1], match[2]);
  }
  const wrong: string[] = [];
  let seen = 0;
  for await (const url of sources()) {
    const text = await Deno.readTextFile(url);
    for (const m of text.matchAll(IMPORT)) {
      const name = m[1] ?? m[3] ?? m[5];
      const version = m[2] ?? m[4] ?? m[6];
      seen++;
      const want = pinned.get(name);
      if (want !== version) {
        wrong.push(
          `${
            url.pathname.slice(ROOT.pathname.length)
          }: npm:${name}@${version}` +
            ` (deno.json pins ${want ?? "nothing"})`,
        );
      }
    }
  }
  assert.ok(seen > 5, `found only ${seen} npm imports: the pattern is stale`);
  assert.deepEqual(wrong, []);
});
