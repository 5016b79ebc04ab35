import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  describeAccelerator,
  resolveAccelerator,
  suggestAccelerators,
} from "../src/accelerators.ts";
import {
  EC2_FAMILIES,
  familiesFor,
  sameModel,
} from "../providers/aws/instance_types.ts";

Deno.test("the catalog covers NVIDIA, AMD, AWS, Intel and Google accelerators", () => {
  const catalog = sky.accelerators.catalog;
  assert.ok(catalog.length >= 110, `only ${catalog.length} models`);
  const names = new Set(catalog.map((a) => a.name));
  for (
    const name of [
      "T4",
      "A100",
      "H100",
      "H200",
      "B200",
      "L40S",
      "RTX 4090",
      "RTX 5090",
      "GTX 1080 Ti",
      "RTX A6000",
      "RTX 6000 Ada",
      "Quadro RTX 8000",
      "MI300X",
      "MI250X",
      "Trainium2",
      "Inferentia2",
      "Gaudi3",
      "TPUv5e",
    ]
  ) assert.ok(names.has(name), `${name} missing`);
  assert.equal(names.size, catalog.length, "duplicate names");
  for (const spec of catalog) {
    assert.ok(
      spec.memory.length > 0 && spec.memory.every((m) => /^\d+GB$/.test(m)),
      spec.name,
    );
    assert.equal(
      spec.manufacturer === "NVIDIA",
      spec.cuda !== undefined,
      spec.name,
    );
  }
});

Deno.test("every model has a factory named after it, spaces as underscores", () => {
  const factories = sky.accelerators as unknown as Record<
    string,
    (o?: object) => sky.Accelerator
  >;
  for (const spec of sky.accelerators.catalog) {
    const made = factories[spec.name.replaceAll(" ", "_")]();
    assert.equal(made.name, spec.name);
    assert.equal(made.kind, "accelerator");
    assert.equal(made.count, 1);
    assert.equal(made.memory, spec.memory[0]);
    assert.equal(made.manufacturer, spec.manufacturer);
    assert.ok(Object.isFrozen(made));
  }
  assert.equal(sky.accelerators.RTX_6000_Ada().name, "RTX 6000 Ada");
  assert.equal(sky.accelerators.Quadro_RTX_8000().memoryGb, 48);
});

Deno.test("factories take count, memory variants and form factors", () => {
  const t4 = sky.accelerators.T4();
  assert.deepEqual(
    {
      name: t4.name,
      count: t4.count,
      memory: t4.memory,
      memoryGb: t4.memoryGb,
      cuda: t4.cuda,
    },
    {
      name: "T4",
      count: 1,
      memory: "16GB",
      memoryGb: 16,
      cuda: { min: "10.0", max: "13.1" },
    },
  );
  assert.equal(sky.accelerators.A100().memory, "80GB");
  const a100 = sky.accelerators.A100({ memory: "40GB", count: 8 });
  assert.deepEqual([a100.memoryGb, a100.count], [40, 8]);
  assert.equal(sky.accelerators.V100({ memory: "16GB" }).memoryGb, 16);
  assert.equal(sky.accelerators.H100({ formFactor: "NVL" }).memory, "94GB");
  assert.equal(sky.accelerators.H100({ formFactor: "SXM" }).memory, "80GB");
  assert.equal(sky.accelerators.TPUv5e({ count: 8 }).count, 8);
  assert.equal(sky.accelerators.L4({ count: 0.5 }).count, 0.5);
  assert.equal(describeAccelerator(a100), "8x A100 (40GB)");
});

Deno.test("bad factory options are ConfigErrors that say what is allowed", () => {
  assert.throws(
    // @ts-expect-error: T4 has one memory size
    () => sky.accelerators.T4({ memory: "32GB" }),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /'memory' must be "16GB", got "32GB"/.test(e.message),
  );
  assert.throws(
    () => sky.accelerators.A100({ count: 0 }),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /'count' must be a positive whole number/.test(e.message),
  );
  assert.throws(
    () => sky.accelerators.A100({ count: 2.5 }),
    (e: Error) => e instanceof sky.ConfigError && /got 2.5/.test(e.message),
  );
  assert.throws(
    () => sky.accelerators.T4({ formFactor: "SXM" }),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /'formFactor' must be left out/.test(e.message),
  );
  assert.throws(
    // @ts-expect-error: no such option
    () => sky.accelerators.L4({ vram: 24 }),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /unknown option\(s\) 'vram'/.test(e.message),
  );
});

Deno.test("byName forgives case, spaces and dashes, and reads a count after a colon", () => {
  assert.equal(sky.accelerators.byName("rtx4090").name, "RTX 4090");
  assert.equal(sky.accelerators.byName("rtx-6000-ada").name, "RTX 6000 Ada");
  const h100 = sky.accelerators.byName("H100:8");
  assert.deepEqual([h100.name, h100.count], ["H100", 8]);
  assert.equal(
    sky.accelerators.byName("a100", { memory: "40GB" }).memoryGb,
    40,
  );
  assert.equal(resolveAccelerator("L4:2")?.count, 2);
  assert.equal(resolveAccelerator(undefined), undefined);
  const t4 = sky.accelerators.T4();
  assert.equal(resolveAccelerator(t4), t4);
});

Deno.test("an unknown accelerator is a clear error suggesting close names", () => {
  assert.throws(
    () => sky.accelerators.byName("H10"),
    (e: Error) => {
      assert.ok(e instanceof sky.ConfigError);
      assert.match(e.message, /^Unknown accelerator 'H10': did you mean H100/);
      return true;
    },
  );
  assert.throws(
    () => sky.accelerators.byName("RTX 4900"),
    (e: Error) => /did you mean RTX 4090/.test(e.message),
  );
  assert.throws(
    () => sky.accelerators.byName("Quantum Flux Capacitor"),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /catalog lists every model/.test(e.message),
  );
  assert.deepEqual(suggestAccelerators("inferentia"), [
    "Inferentia1",
    "Inferentia2",
  ]);
  assert.throws(
    () => resolveAccelerator(42),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /expected sky\.accelerators\.T4\(\)/.test(e.message),
  );
});

Deno.test("the EC2 mapping: T4 → g4dn, A10G → g5, L4 → g6, L40S → g6e, A100 → p4d/p4de, H100 → p5, Trainium/Inferentia → trn/inf", () => {
  const a = sky.accelerators;
  assert.deepEqual(familiesFor(a.T4()), ["g4dn"]);
  assert.deepEqual(familiesFor(a.T4G()), ["g5g"]);
  assert.deepEqual(familiesFor(a.A10G()), ["g5"]);
  assert.deepEqual(familiesFor(a.L4()), ["g6", "gr6"]);
  assert.deepEqual(familiesFor(a.L40S()), ["g6e"]);
  assert.deepEqual(familiesFor(a.A100({ memory: "40GB" })), ["p4d"]);
  assert.deepEqual(familiesFor(a.A100()), ["p4de"]);
  assert.deepEqual(familiesFor(a.H100()), ["p5"]);
  assert.deepEqual(familiesFor(a.H200()), ["p5e", "p5en"]);
  assert.deepEqual(familiesFor(a.V100({ memory: "16GB" })), ["p3"]);
  assert.deepEqual(familiesFor(a.Trainium1()), ["trn1", "trn1n"]);
  assert.deepEqual(familiesFor(a.Trainium2()), ["trn2"]);
  assert.deepEqual(familiesFor(a.Inferentia2()), ["inf2"]);
  assert.deepEqual(familiesFor(a.Gaudi()), ["dl1"]);
  assert.deepEqual(familiesFor(a.RTX_4090()), []);
  const names = new Set(sky.accelerators.catalog.map((s) => s.name));
  for (const key of Object.keys(EC2_FAMILIES)) {
    assert.ok(names.has(key.split(":")[0]), `${key} is not a catalog model`);
  }
  assert.ok(sameModel("Trainium1", "Trainium"));
  assert.ok(sameModel("T4G", "T4g"));
  assert.ok(!sameModel("A10", "A10G"));
});

Deno.test("the pool's accelerator option takes a factory's value or a name, and rejects unknown names", async () => {
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider: sky.Local(),
        accelerator: "A1000",
        console: "silent",
      }),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /'accelerator' Unknown accelerator 'A1000': did you mean A100/.test(
        e.message,
      ),
  );
});

Deno.test("sky.Local() and sky.SSH() refuse an accelerator with a ConfigError", async () => {
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider: sky.Local(),
        accelerator: sky.accelerators.T4(),
        console: "silent",
      }),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /sky\.Local\(\) cannot provide accelerators \(the pool asked for 1x T4\)/
        .test(e.message),
  );
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider: sky.SSH({ hosts: ["nobody@127.0.0.1"], key: "/nonexistent" }),
        accelerator: "H100:8",
        console: "silent",
      }),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /sky\.SSH\(\) cannot provide accelerators \(the pool asked for 8x H100\)/
        .test(e.message),
  );
});
