/**
 * The code as nodes run it (src/bootstrap/stage.ts, npm.ts, node_config.ts): the node's configuration, the
 * image's imports, the lockfile and the packages, readied on the client.
 */
import assert from "node:assert/strict";
import { libraryBundle } from "../src/bootstrap/worker.ts";
import { buildBundle } from "../src/bootstrap/bundle.ts";
import { nodeCode } from "../src/bootstrap/stage.ts";
import { ConfigError } from "../src/errors.ts";
import { tempRoot } from "./helpers.ts";

/** A project of its own, outside the repository, with a deno.jsonc. */
async function project(): Promise<string> {
  const dir = await tempRoot();
  await Deno.mkdir(`${dir}/app/lib`, { recursive: true });
  await Deno.writeTextFile(`${dir}/app/lib/a.ts`, `export const a = 1;\n`);
  await Deno.writeTextFile(`${dir}/app/lib/b.ts`, `export const b = 2;\n`);
  await Deno.writeTextFile(
    `${dir}/app/main.ts`,
    `import { a } from "#lib/a.ts";\nimport { b } from "abs";\n` +
      `import { a as same } from "file://${dir}/app/lib/a.ts";\n` +
      `export const sum = a + b + same;\n`,
  );
  await Deno.writeTextFile(
    `${dir}/app/deno.jsonc`,
    `{
  // The project's own import map, with a comment and a trailing comma.
  "imports": {
    "#lib/": "./lib/",
    "abs": "${dir}/app/lib/b.ts", /* an absolute path */
  },
  "lock": false,
}
`,
  );
  return dir;
}

function text(
  bundle: { files: { path: string; data: Uint8Array }[] },
  path: string,
): string {
  const file = bundle.files.find((f) => f.path === path);
  assert.ok(file, `no ${path} in ${bundle.files.map((f) => f.path)}`);
  return new TextDecoder().decode(file.data);
}

/** An import map's entries but those of modules by their client URL (`file:` keys). */
function named(imports: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(imports).filter(([key]) => !key.startsWith("file:")),
  );
}

Deno.test("the nodes' configuration is the project's with the image's imports, local paths relative, remote modules vendored and a lockfile", async () => {
  const dir = await project();
  const code = await buildBundle([`file://${dir}/app/main.ts`]);
  assert.equal(code.config, "deno.jsonc");
  const shipped = await nodeCode(code, await libraryBundle(), {
    zod: "npm:zod@4.6.7",
  });
  assert.notEqual(shipped.hash, code.hash);
  assert.equal(shipped.node.config, "deno.jsonc");
  const config = JSON.parse(text(shipped, "deno.jsonc"));
  assert.deepEqual(named(config.imports), {
    "#lib/": "./lib/",
    abs: "./lib/b.ts",
    zod: "npm:zod@4.6.7",
  });
  // A module imported by its file: URL (or absolute path) is its shipped
  // copy; no other module gets an entry of its own.
  assert.deepEqual(
    Object.entries(config.imports).filter(([key]) => key.startsWith("file:")),
    [[`file://${dir}/app/lib/a.ts`, "./lib/a.ts"]],
  );
  assert.equal(config.vendor, true);
  assert.equal(config.nodeModulesDir, "none");
  assert.equal(config.importMap, undefined);
  assert.equal(config.lock, undefined);
  // The image's imports are resolved on the nodes too.
  assert.match(text(shipped, ".skyward/image_imports.ts"), /import "zod";/);
  assert.ok(shipped.node.entries.includes(".skyward/image_imports.ts"));
  // The lockfile covers the image's package and the worker's, and nothing
  // the graph does not reach.
  const lock = JSON.parse(text(shipped, "deno.lock"));
  assert.ok(lock.npm["zod@4.6.7"]);
  assert.ok(lock.npm["@msgpack/msgpack@3.1.3"]);
  assert.ok(!Object.keys(lock.npm).some((id) => id.startsWith("@aws-sdk/")));
  const names = shipped.node.packages.map((p) => p.name);
  assert.ok(names.includes("zod") && names.includes("@msgpack/msgpack"));
  // The project's own files are not written.
  assert.ok(!(await Deno.stat(`${dir}/app/deno.lock`).catch(() => null)));
  // Readied once: the same answer again.
  assert.equal(
    (await nodeCode(code, await libraryBundle(), { zod: "npm:zod@4.6.7" }))
      .hash,
    shipped.hash,
  );
});

Deno.test("an image import that cannot be resolved is a ConfigError naming it", async () => {
  const dir = await project();
  const code = await buildBundle([`file://${dir}/app/main.ts`]);
  await assert.rejects(
    nodeCode(code, await libraryBundle(), { zod: "npm:zod@999.0.0" }),
    (error: Error) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, /zod@999\.0\.0/);
      assert.match(error.message, /sky\.Image\(\{ imports \}\)/);
      return true;
    },
  );
});

Deno.test("a project whose deno.json names an import map file ships that map in the nodes' configuration", async () => {
  const dir = await tempRoot();
  await Deno.mkdir(`${dir}/lib`);
  await Deno.writeTextFile(`${dir}/lib/c.ts`, `export const c = 3;\n`);
  await Deno.writeTextFile(
    `${dir}/main.ts`,
    `import { c } from "mapped/c.ts";\nexport const d = c + 1;\n`,
  );
  await Deno.writeTextFile(
    `${dir}/import_map.json`,
    JSON.stringify({ imports: { "mapped/": "./lib/" } }),
  );
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({ importMap: "./import_map.json" }),
  );
  const code = await buildBundle([`file://${dir}/main.ts`]);
  assert.ok(code.files.some((f) => f.path === "lib/c.ts"));
  const shipped = await nodeCode(code, await libraryBundle());
  const config = JSON.parse(text(shipped, "deno.json"));
  assert.equal(config.importMap, undefined);
  assert.deepEqual(named(config.imports), { "mapped/": "./lib/" });
});
