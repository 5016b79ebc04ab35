/**
 * The documentation's links lead somewhere: every relative link in
 * `README.md` and under `docs/` names a file that exists, and a link to a
 * heading (`page.md#heading`) names a heading of that page, spelt as GitHub
 * makes its anchors.
 *
 * @module
 */
import * as assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The markdown files of the documentation: README.md and docs/, recursively. */
async function markdownFiles(): Promise<string[]> {
  const files = [join(ROOT, "README.md")];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".md")) files.push(path);
    }
  }
  await walk(join(ROOT, "docs"));
  return files.sort();
}

/** The text outside fenced code blocks and inline code spans. */
function prose(markdown: string): string[] {
  const lines: string[] = [];
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      lines.push("");
      continue;
    }
    lines.push(fenced ? "" : line.replace(/`[^`]*`/g, "``"));
  }
  return lines;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The anchors of a page's headings, with GitHub's `-1`, `-2` for repeats. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const heading = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading) continue;
    const base = slug(heading[1]);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    found.add(count === 0 ? base : `${base}-${count}`);
  }
  return found;
}

/** Every link of a page that is not absolute: `[text](target)`, with its line. */
function relativeLinks(
  markdown: string,
): { line: number; target: string }[] {
  const links: { line: number; target: string }[] = [];
  prose(markdown).forEach((text, index) => {
    for (const match of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = match[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, …
      links.push({ line: index + 1, target });
    }
  });
  return links;
}

/** What is wrong with each broken link of the documentation, one line each. */
export async function brokenLinks(): Promise<string[]> {
  const broken: string[] = [];
  for (const file of await markdownFiles()) {
    const text = await Deno.readTextFile(file);
    for (const { line, target } of relativeLinks(text)) {
      const where = `${relative(ROOT, file)}:${line}: (${target})`;
      const [path, anchor] = target.split("#", 2);
      const resolved = path === "" ? file : join(dirname(file), path);
      let stat: Deno.FileInfo;
      try {
        stat = await Deno.stat(resolved);
      } catch {
        broken.push(
          `${where} names ${relative(ROOT, resolved)}, which does not exist`,
        );
        continue;
      }
      if (anchor === undefined) continue;
      if (!stat.isFile || !resolved.endsWith(".md")) {
        broken.push(`${where} has an anchor, but its target is not a page`);
      } else if (!anchors(await Deno.readTextFile(resolved)).has(anchor)) {
        broken.push(
          `${where}: ${relative(ROOT, resolved)} has no heading '#${anchor}'`,
        );
      }
    }
  }
  return broken;
}

Deno.test("every relative link in README.md and docs/ names a file that exists", async () => {
  assert.deepEqual(await brokenLinks(), []);
});

Deno.test("the README links to every page under docs/", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const linked = new Set(
    relativeLinks(readme).map(({ target }) => target.split("#")[0]),
  );
  const pages = (await markdownFiles())
    .filter((file) => file.startsWith(join(ROOT, "docs")))
    .map((file) => relative(ROOT, file));
  assert.deepEqual(pages.filter((page) => !linked.has(page)), []);
});

Deno.test("anchors are spelt as GitHub spells them", () => {
  assert.equal(slug("The image: `sky.Image`"), "the-image-skyimage");
  assert.deepEqual(
    slug("Choosing across providers: `specs` and `selection`"),
    "choosing-across-providers-specs-and-selection",
  );
  assert.equal(slug("Vast.ai: `sky.VastAI`"), "vastai-skyvastai");
});
