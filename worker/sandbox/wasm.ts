/**
 * The WASM tier: running a self-contained JavaScript function in QuickJS
 * compiled to WebAssembly, and running an export of a raw WebAssembly
 * module, each with memory and time limits and no host API.
 *
 * ## Values
 *
 * Values cross into and out of QuickJS with the same rules as the codec (see
 * `src/wire/codec.ts`): `undefined`, `null`, booleans, strings, numbers (with
 * `NaN`, `±Infinity` and `-0`), bigints, `Date`, arrays, plain objects,
 * `Map`, `Set`, `ArrayBuffer`, typed arrays, `DataView` and errors. They are
 * carried as tagged JSON (an object `{ $: tag, ... }` marks what JSON has
 * no type for) with the bytes of binary values beside it, and turned back
 * into values on the other side. A result that the codec would refuse (a
 * function, a symbol, an instance of a class) is refused here too, with its
 * path.
 *
 * A raw WebAssembly export takes and returns numbers and bigints only.
 *
 * @module
 */
import {
  newQuickJSWASMModuleFromVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSWASMModule,
  shouldInterruptAfterDeadline,
} from "npm:quickjs-emscripten-core@0.32.0";
import variant from "npm:@jitl/quickjs-singlefile-mjs-release-sync@0.32.0";
import * as acorn from "npm:acorn@8.19.0";
import findGlobals from "npm:acorn-globals@7.0.1";
import { errorNamed } from "../../src/wire/wire_error.ts";

/** The memory limit of a QuickJS call when the compute sets none (64 MiB). */
export const DEFAULT_JS_MEMORY = 64 * 1024 * 1024;
/** The memory limit of a raw WebAssembly call when none is set, in 64 KiB pages (64 MiB). */
export const DEFAULT_WASM_PAGES = 1024;
const STACK_BYTES = 512 * 1024;

/** A limit was reached: the call was stopped. */
export class SandboxLimitError extends Error {
  /** @param message What was exceeded. */
  constructor(message: string) {
    super(message);
    this.name = "SandboxError";
  }
}

let quickjs: Promise<QuickJSWASMModule> | undefined;
let loaded: QuickJSWASMModule | undefined;

/**
 * Loads QuickJS: once, and again after a copy was left unusable. Needs no
 * permission: the WebAssembly is embedded in the module.
 */
export function loadQuickJS(): Promise<QuickJSWASMModule> {
  if (loaded && broken.has(loaded)) quickjs = loaded = undefined;
  quickjs ??= newQuickJSWASMModuleFromVariant(variant).then((engine) =>
    loaded = engine
  );
  return quickjs;
}

let standardGlobals: Set<string> | undefined;

function globalsOf(engine: QuickJSWASMModule): Set<string> {
  if (standardGlobals) return standardGlobals;
  const context = engine.newContext();
  try {
    const names = context.unwrapResult(
      context.evalCode("Object.getOwnPropertyNames(globalThis).join(',')"),
    );
    standardGlobals = new Set([
      ...context.getString(names).split(","),
      "console",
    ]);
    names.dispose();
  } finally {
    context.dispose();
  }
  return standardGlobals;
}

/**
 * Checks that a function's source is self-contained: one function
 * expression, no `import()` or `import.meta`, and no free variable other
 * than the standard globals of QuickJS and `console`.
 *
 * @param source The function's source text.
 * @param engine QuickJS, whose globals are allowed.
 * @throws {TypeError} When it is not; the message names what it uses.
 */
export function checkSelfContained(
  source: string,
  engine: QuickJSWASMModule,
): void {
  const wrapped = `(${source})`;
  let ast: acorn.Node;
  try {
    ast = acorn.parse(wrapped, { ecmaVersion: "latest" });
  } catch (error) {
    throw new TypeError(
      `Cannot run the function in the WASM sandbox: its source does not parse (${
        (error as Error).message
      })`,
    );
  }
  for (
    const token of acorn.tokenizer(wrapped, { ecmaVersion: "latest" })
  ) {
    if (token.type === acorn.tokTypes._import) {
      throw new TypeError(
        "Cannot run the function in the WASM sandbox: it imports modules " +
          "(`import()` or `import.meta`), and a WASM compute must be self-contained",
      );
    }
  }
  const allowed = globalsOf(engine);
  const free = [
    ...new Set(
      (findGlobals(ast) as { name: string }[]).map((g) => g.name).filter((
        name,
      ) => name !== "this" && !allowed.has(name)),
    ),
  ];
  if (free.length > 0) {
    throw new TypeError(
      `Cannot run the function in the WASM sandbox: it uses ${
        free.map((n) => `'${n}'`).join(", ")
      }, defined outside it. A WASM compute must be self-contained: no imports and ` +
        `no free variables (only the standard globals and console); pass what it needs as arguments`,
    );
  }
}

/** Options of {@linkcode runFunction}. */
export interface RunFunctionOptions {
  /** The most memory the QuickJS runtime may use, in bytes. */
  memoryLimit?: number;
  /** How long the call may run, in milliseconds. */
  timeout?: number;
  /** Where `console.*` inside the function writes. */
  log?: (stream: "stdout" | "stderr", line: string) => void;
}

/**
 * Code evaluated in a fresh QuickJS context when needed (parsing it costs
 * about 0.15 ms a kilobyte, so it is kept short and only loaded when a
 * value needs it): turning tagged JSON into arguments, and a result into
 * tagged JSON. Kept in step with `tag` and `untag` below.
 */
const CALL_PLAIN = "(f,j)=>f(...JSON.parse(j))";
const CALL_TAGGED = String
  .raw`(f,j,b)=>{const T={Int8Array,Uint8Array,Uint8ClampedArray,Int16Array,
Uint16Array,Int32Array,Uint32Array,Float32Array,Float64Array,BigInt64Array,BigUint64Array},
E={Error,TypeError,RangeError,SyntaxError,ReferenceError,EvalError,URIError};
const r=v=>{if(Array.isArray(v))return v.map(r);if(v===null||typeof v!=="object")return v;
if(typeof v.$!=="string"){for(const k in v)v[k]=r(v[k]);return v}switch(v.$){case"u":return;
case"n":return Number(v.v);case"z":return-0;case"b":return BigInt(v.v);
case"d":return new Date(v.v===null?NaN:v.v);case"m":return new Map(r(v.v));case"s":return new Set(r(v.v));
case"ab":return b[v.i];case"dv":return new DataView(b[v.i]);case"ta":return new T[v.t](b[v.i]);
case"e":{const e=new(E[v.name]||Error)(v.message);if(!E[v.name])e.name=v.name;if("c"in v)e.cause=r(v.c);return e}
case"o":{const o=v.v;for(const k in o)o[k]=r(o[k]);return o}}return v};return f(...r(JSON.parse(j)))}`;
const TO_TAGGED = String.raw`v=>{const b=[],s=new Set(),
x=(p,w)=>{throw new TypeError("Cannot send "+p+": it "+w)},
a=(p,k)=>/^[A-Za-z_$][\w$]*$/.test(k)?p+"."+k:p+"["+JSON.stringify(k)+"]",
t=(v,p)=>{switch(typeof v){case"undefined":return{$:"u"};
case"number":return Number.isFinite(v)?Object.is(v,-0)?{$:"z"}:v:{$:"n",v:String(v)};
case"bigint":return{$:"b",v:String(v)};case"string":case"boolean":return v;
case"function":return x(p,"is a function");case"symbol":return x(p,"is a symbol")}
if(v===null)return null;if(s.has(v))x(p,"is circular");s.add(v);try{
if(Array.isArray(v))return Array.from(v,(y,i)=>t(y,p+"["+i+"]"));
if(v instanceof Date){const m=v.getTime();return{$:"d",v:Number.isNaN(m)?null:m}}
if(v instanceof Map)return{$:"m",v:Array.from(v,([k,y],i)=>[t(k,"[..."+p+".keys()]["+i+"]"),t(y,"[..."+p+".values()]["+i+"]")])};
if(v instanceof Set)return{$:"s",v:Array.from(v,(y,i)=>t(y,"[..."+p+"]["+i+"]"))};
if(v instanceof ArrayBuffer){b.push(v.slice(0));return{$:"ab",i:b.length-1}}
if(ArrayBuffer.isView(v)){b.push(v.buffer.slice(v.byteOffset,v.byteOffset+v.byteLength));
return v instanceof DataView?{$:"dv",i:b.length-1}:{$:"ta",t:v[Symbol.toStringTag],i:b.length-1}}
if(v instanceof Error){const e={$:"e",name:String(v.name),message:String(v.message),stack:String(v.stack||"")};
if("cause"in v)e.c=t(v.cause,p+".cause");return e}
const q=Object.getPrototypeOf(v);if(q!==Object.prototype&&q!==null)x(p,"is an instance of "+(q&&q.constructor&&q.constructor.name||"a class"));
const o={};for(const k of Object.keys(v))o[k]=t(v[k],a(p,k));return"$"in o?{$:"o",v:o}:o}finally{s.delete(v)}};
return[JSON.stringify(t(v,"result")),b]}`;

interface Tagging {
  buffers: ArrayBuffer[];
  /** Whether a value needed a tag (else the JSON is plain). */
  tagged: boolean;
}

/** Turns a value into tagged JSON, collecting the bytes of binary values. */
function tag(value: unknown, state: Tagging): unknown {
  switch (typeof value) {
    case "number":
      if (Number.isFinite(value) && !Object.is(value, -0)) return value;
      state.tagged = true;
      return Object.is(value, -0) ? { $: "z" } : { $: "n", v: String(value) };
    case "string":
    case "boolean":
      return value;
    case "undefined":
      state.tagged = true;
      return { $: "u" };
    case "bigint":
      state.tagged = true;
      return { $: "b", v: String(value) };
  }
  if (value === null || typeof value !== "object") return null;
  if (Array.isArray(value)) return value.map((v) => tag(v, state));
  if (Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) out[key] = tag(v, state);
    if (!("$" in out)) return out;
    state.tagged = true;
    return { $: "o", v: out };
  }
  state.tagged = true;
  if (value instanceof Date) {
    const t = value.getTime();
    return { $: "d", v: Number.isNaN(t) ? null : t };
  }
  if (value instanceof Map) {
    return {
      $: "m",
      v: [...value].map(([k, v]) => [tag(k, state), tag(v, state)]),
    };
  }
  if (value instanceof Set) {
    return { $: "s", v: [...value].map((v) => tag(v, state)) };
  }
  if (value instanceof ArrayBuffer) {
    state.buffers.push(value.slice(0));
    return { $: "ab", i: state.buffers.length - 1 };
  }
  if (ArrayBuffer.isView(value)) {
    state.buffers.push(
      value.buffer.slice(
        value.byteOffset,
        value.byteOffset + value.byteLength,
      ) as ArrayBuffer,
    );
    const i = state.buffers.length - 1;
    return value instanceof DataView ? { $: "dv", i } : {
      $: "ta",
      t: (value as unknown as { [Symbol.toStringTag]: string })[
        Symbol.toStringTag
      ],
      i,
    };
  }
  if (value instanceof Error) {
    const out: Record<string, unknown> = {
      $: "e",
      name: value.name,
      message: value.message,
    };
    if ("cause" in value) out.c = tag(value.cause, state);
    return out;
  }
  // A null-prototype object: sent as a plain one, as the codec does.
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = tag(v, state);
  return "$" in out ? { $: "o", v: out } : out;
}

const TYPED: Record<
  string,
  new (buffer: ArrayBuffer) => ArrayBufferView
> = Object.fromEntries(
  [
    Int8Array,
    Uint8Array,
    Uint8ClampedArray,
    Int16Array,
    Uint16Array,
    Int32Array,
    Uint32Array,
    Float32Array,
    Float64Array,
    BigInt64Array,
    BigUint64Array,
  ].map((c) => [c.name, c]),
);

/** Turns parsed tagged JSON back into a value. */
function untag(v: any, buffers: ArrayBuffer[]): unknown {
  if (Array.isArray(v)) return v.map((x) => untag(x, buffers));
  if (v === null || typeof v !== "object") return v;
  if (typeof v.$ !== "string") {
    for (const key of Object.keys(v)) v[key] = untag(v[key], buffers);
    return v;
  }
  switch (v.$) {
    case "u":
      return undefined;
    case "n":
      return Number(v.v);
    case "z":
      return -0;
    case "b":
      return BigInt(v.v);
    case "d":
      return new Date(v.v === null ? NaN : v.v);
    case "m":
      return new Map(untag(v.v, buffers) as [unknown, unknown][]);
    case "s":
      return new Set(untag(v.v, buffers) as unknown[]);
    case "ab":
      return buffers[v.i];
    case "dv":
      return new DataView(buffers[v.i]);
    case "ta":
      return new (TYPED[v.t] ?? Uint8Array)(buffers[v.i]);
    case "e": {
      const error = errorNamed(v.name, v.message);
      error.stack = `${v.name}: ${v.message}\n${v.stack}`;
      if ("c" in v) error.cause = untag(v.c, buffers);
      return error;
    }
    case "o": {
      // A plain object that has a `$` key of its own.
      const out = v.v;
      for (const key of Object.keys(out)) out[key] = untag(out[key], buffers);
      return out;
    }
  }
  return v;
}

const broken = new WeakSet<QuickJSWASMModule>();

/**
 * Runs a self-contained function in a fresh QuickJS runtime and context,
 * with a memory limit and a deadline, and returns its result (awaiting it
 * inside QuickJS when it is a promise).
 *
 * @param engine QuickJS, from {@linkcode loadQuickJS}.
 * @param source The function's source text (checked with {@linkcode checkSelfContained}).
 * @param args Its arguments.
 * @param options Limits, and where its console output goes.
 * @returns The result.
 * @throws {SandboxLimitError} When it ran past a limit.
 * @throws {Error} What the function threw, with its name and message.
 *
 * @example
 * ```ts
 * import { loadQuickJS, runFunction } from "./wasm.ts";
 *
 * const engine = await loadQuickJS();
 * console.log(runFunction(engine, "(x) => new Map([[x, x * x]])", [3])); // Map(1) { 3 => 9 }
 * ```
 */
export function runFunction(
  engine: QuickJSWASMModule,
  source: string,
  args: unknown[],
  options: RunFunctionOptions = {},
): unknown {
  const memoryLimit = options.memoryLimit ?? DEFAULT_JS_MEMORY;
  const runtime = engine.newRuntime();
  runtime.setMemoryLimit(memoryLimit);
  runtime.setMaxStackSize(STACK_BYTES);
  if (options.timeout !== undefined) {
    runtime.setInterruptHandler(
      shouldInterruptAfterDeadline(Date.now() + options.timeout),
    );
  }
  const context = runtime.newContext();
  const failed = (handle: QuickJSHandle): Error => {
    const dumped = context.dump(handle) as {
      name?: string;
      message?: string;
      stack?: string;
    };
    handle.dispose();
    if (dumped === null || typeof dumped !== "object") {
      return Object.assign(new Error(String(dumped)), { thrown: dumped });
    }
    if (dumped.name === "InternalError" && dumped.message === "interrupted") {
      return new SandboxLimitError(
        `The function ran past its time limit of ${options.timeout} ms in the WASM sandbox`,
      );
    }
    if (/out of memory/i.test(dumped.message ?? "")) {
      return new SandboxLimitError(
        `The function used more than its memory limit of ${memoryLimit} bytes in the WASM sandbox`,
      );
    }
    if (
      dumped.name === "InternalError" &&
      /stack overflow/.test(dumped.message ?? "")
    ) {
      return new RangeError(
        "Maximum call stack size exceeded (in the WASM sandbox)",
      );
    }
    const name = dumped.name ?? "Error";
    const error = errorNamed(name, dumped.message ?? "");
    error.stack = `${name}: ${error.message}\n${dumped.stack ?? ""}`;
    return error;
  };
  const evaluate = (code: string, file: string): QuickJSHandle => {
    const result = context.evalCode(code, file);
    if (result.error) throw failed(result.error);
    return result.value;
  };
  try {
    if (options.log) installConsole(context, options.log);
    const fn = evaluate(`(${source})`, "compute.js");
    const state: Tagging = { buffers: [], tagged: false };
    const json = context.newString(JSON.stringify(tag(args, state)));
    const list = context.newArray();
    state.buffers.forEach((buffer, i) => {
      const handle = context.newArrayBuffer(buffer);
      context.setProp(list, i, handle);
      handle.dispose();
    });
    const call = evaluate(state.tagged ? CALL_TAGGED : CALL_PLAIN, "call.js");
    const result = context.callFunction(
      call,
      context.undefined,
      fn,
      json,
      list,
    );
    for (const handle of [call, fn, json, list]) handle.dispose();
    if (result.error) throw failed(result.error);
    const settled = settle(context, result.value, failed);
    try {
      return read(context, settled, failed, evaluate);
    } finally {
      settled.dispose();
    }
  } finally {
    try {
      context.dispose();
      runtime.dispose();
    } catch {
      // QuickJS aborts when a runtime is freed with objects left (as after
      // a stack overflow): that copy of QuickJS is not used again.
      broken.add(engine);
    }
  }
}

/** Reads a result: a primitive directly, anything else as tagged JSON. */
function read(
  context: QuickJSContext,
  handle: QuickJSHandle,
  failed: (handle: QuickJSHandle) => Error,
  evaluate: (code: string, file: string) => QuickJSHandle,
): unknown {
  switch (context.typeof(handle)) {
    case "undefined":
      return undefined;
    case "number":
      return context.getNumber(handle);
    case "string":
      return context.getString(handle);
    case "boolean":
      return context.dump(handle);
    case "bigint":
      return context.getBigInt(handle);
  }
  const toTagged = evaluate(TO_TAGGED, "result.js");
  const pair = context.callFunction(toTagged, context.undefined, handle);
  toTagged.dispose();
  if (pair.error) throw failed(pair.error);
  const jsonHandle = context.getProp(pair.value, 0);
  const list = context.getProp(pair.value, 1);
  pair.value.dispose();
  try {
    const json = context.getString(jsonHandle);
    const lengthHandle = context.getProp(list, "length");
    const length = context.getNumber(lengthHandle);
    lengthHandle.dispose();
    const buffers: ArrayBuffer[] = [];
    for (let i = 0; i < length; i++) {
      const item = context.getProp(list, i);
      const bytes = context.getArrayBuffer(item);
      buffers.push(bytes.value.slice().buffer as ArrayBuffer);
      bytes.dispose();
      item.dispose();
    }
    return untag(JSON.parse(json), buffers);
  } finally {
    jsonHandle.dispose();
    list.dispose();
  }
}

/** The value of a handle, awaited inside QuickJS when it is a promise. */
function settle(
  context: QuickJSContext,
  handle: QuickJSHandle,
  failed: (handle: QuickJSHandle) => Error,
): QuickJSHandle {
  for (;;) {
    const state = context.getPromiseState(handle);
    if (state.type === "fulfilled") {
      if (state.notAPromise) return handle;
      handle.dispose();
      return state.value;
    }
    if (state.type === "rejected") {
      handle.dispose();
      throw failed(state.error);
    }
    const jobs = context.runtime.executePendingJobs();
    if (jobs.error) {
      handle.dispose();
      throw failed(jobs.error);
    }
    if (jobs.value === 0 && !context.runtime.hasPendingJob()) {
      handle.dispose();
      throw new Error(
        "The function returned a promise that never settles: the WASM sandbox has no timers or I/O",
      );
    }
  }
}

function installConsole(
  context: QuickJSContext,
  log: (stream: "stdout" | "stderr", line: string) => void,
): void {
  const consoleHandle = context.newObject();
  for (
    const [name, stream] of [
      ["log", "stdout"],
      ["info", "stdout"],
      ["debug", "stdout"],
      ["warn", "stderr"],
      ["error", "stderr"],
    ] as const
  ) {
    const fn = context.newFunction(name, (...handles) => {
      const parts = handles.map((h) => {
        const value = context.dump(h);
        return typeof value === "string" ? value : JSON.stringify(value);
      });
      for (const line of parts.join(" ").split("\n")) log(stream, line);
    });
    context.setProp(consoleHandle, name, fn);
    fn.dispose();
  }
  context.setProp(context.global, "console", consoleHandle);
  consoleHandle.dispose();
}

/** Options of {@linkcode runExport}. */
export interface RunExportOptions {
  /** The most its memory may grow to, in 64 KiB pages. */
  memoryPages?: number;
  /** Values of its imported globals, by module and name. */
  imports?: Record<string, Record<string, number | bigint>>;
}

/**
 * Compiles a raw WebAssembly module with its memories capped at
 * `memoryPages`: a memory the module declares gets that maximum (or its own,
 * when lower); one it imports is created with it.
 *
 * @param bytes The module's binary.
 * @param memoryPages The cap, in 64 KiB pages.
 * @returns The compiled module and the limits of the memories it imports.
 * @throws {RangeError} When a memory starts larger than the cap.
 * @throws {TypeError} When the binary is not a WebAssembly module.
 */
export function compileCapped(
  bytes: Uint8Array,
  memoryPages: number = DEFAULT_WASM_PAGES,
): { module: WebAssembly.Module; memoryImports: Map<string, Limits> } {
  const { patched, memoryImports } = capMemories(bytes, memoryPages);
  return {
    module: new WebAssembly.Module(patched as Uint8Array<ArrayBuffer>),
    memoryImports,
  };
}

/** Runs an export of a module compiled by {@linkcode compileCapped}, in a fresh instance. */
export function runExport(
  compiled: { module: WebAssembly.Module; memoryImports: Map<string, Limits> },
  exportName: string,
  args: unknown[],
  options: RunExportOptions = {},
): unknown {
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const entry of WebAssembly.Module.imports(compiled.module)) {
    const where = `${entry.module}.${entry.name}`;
    let value: WebAssembly.ImportValue | undefined;
    if (entry.kind === "memory") {
      const limits = compiled.memoryImports.get(where)!;
      value = new WebAssembly.Memory({
        initial: limits.min,
        maximum: limits.max,
      });
    } else if (entry.kind === "global") {
      value = options.imports?.[entry.module]?.[entry.name] as
        | WebAssembly.ImportValue
        | undefined;
    }
    if (value === undefined) {
      throw new TypeError(
        `Cannot run the WebAssembly module: it imports ${entry.kind} '${where}', which its ` +
          `'imports' do not give (only globals, as numbers or bigints, can be given; ` +
          `memories are made by the sandbox; there are no host functions)`,
      );
    }
    (imports[entry.module] ??= {})[entry.name] = value;
  }
  const instance = new WebAssembly.Instance(compiled.module, imports);
  const fn = instance.exports[exportName];
  if (typeof fn !== "function") {
    throw new TypeError(
      `Cannot run the WebAssembly module: it has no exported function '${exportName}' (its exports: ${
        WebAssembly.Module.exports(compiled.module).map((e) => e.name).join(
          ", ",
        )
      })`,
    );
  }
  args.forEach((arg, i) => {
    if (typeof arg !== "number" && typeof arg !== "bigint") {
      throw new TypeError(
        `Cannot pass args[${i}] to a WebAssembly export: it is a ${typeof arg}; exports take numbers and bigints`,
      );
    }
  });
  return (fn as (...a: unknown[]) => unknown)(...args);
}

/** The limits of a memory, in pages. */
export interface Limits {
  min: number;
  max: number;
}

function readLeb(bytes: Uint8Array, at: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    if (byte === undefined) throw new TypeError("truncated WebAssembly binary");
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) return [result, at];
  }
}

function writeLeb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

function readName(bytes: Uint8Array, at: number): [string, number] {
  const [length, start] = readLeb(bytes, at);
  return [
    new TextDecoder().decode(bytes.subarray(start, start + length)),
    start + length,
  ];
}

/** Reads limits at `at`, returns them and where they end. */
function readLimits(
  bytes: Uint8Array,
  at: number,
): { flags: number; min: number; max?: number; end: number } {
  const flags = bytes[at];
  if (flags & 0x04) {
    throw new TypeError(
      "Cannot run the WebAssembly module: 64-bit memories are not supported",
    );
  }
  let [min, next] = readLeb(bytes, at + 1);
  let max: number | undefined;
  if (flags & 0x01) [max, next] = readLeb(bytes, next);
  return { flags, min, max, end: next };
}

function cappedLimits(
  limits: { flags: number; min: number; max?: number },
  cap: number,
  what: string,
): number[] {
  if (limits.min > cap) {
    throw new RangeError(
      `Cannot run the WebAssembly module: ${what} starts at ${limits.min} pages, past memoryPages (${cap})`,
    );
  }
  const max = Math.min(limits.max ?? cap, cap);
  return [limits.flags | 0x01, ...writeLeb(limits.min), ...writeLeb(max)];
}

function capMemories(
  bytes: Uint8Array,
  cap: number,
): { patched: Uint8Array; memoryImports: Map<string, Limits> } {
  if (
    bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 ||
    bytes[2] !== 0x73 || bytes[3] !== 0x6d
  ) {
    throw new TypeError(
      "Cannot run the WebAssembly module: it is not a WebAssembly binary",
    );
  }
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  const memoryImports = new Map<string, Limits>();
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, start] = readLeb(bytes, at + 1);
    const end = start + size;
    if (id === 5) {
      // The memory section: a vector of limits, each capped.
      const [count, first] = readLeb(bytes, start);
      const body: number[] = writeLeb(count);
      let p = first;
      for (let i = 0; i < count; i++) {
        const limits = readLimits(bytes, p);
        body.push(...cappedLimits(limits, cap, `its memory ${i}`));
        p = limits.end;
      }
      parts.push(new Uint8Array([5, ...writeLeb(body.length), ...body]));
    } else {
      if (id === 2) readMemoryImports(bytes, start, cap, memoryImports);
      parts.push(bytes.subarray(at, end));
    }
    at = end;
  }
  const patched = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    patched.set(part, offset);
    offset += part.length;
  }
  return { patched, memoryImports };
}

function readMemoryImports(
  bytes: Uint8Array,
  start: number,
  cap: number,
  out: Map<string, Limits>,
): void {
  let [count, p] = readLeb(bytes, start);
  for (; count > 0; count--) {
    let module: string, name: string;
    [module, p] = readName(bytes, p);
    [name, p] = readName(bytes, p);
    const kind = bytes[p++];
    if (kind === 0x00) [, p] = readLeb(bytes, p); // a function: its type index
    else if (kind === 0x01) { // a table: reftype, limits
      p = readLimits(bytes, p + 1).end;
    } else if (kind === 0x02) {
      const limits = readLimits(bytes, p);
      cappedLimits(limits, cap, `its imported memory '${module}.${name}'`);
      out.set(`${module}.${name}`, {
        min: limits.min,
        max: Math.min(limits.max ?? cap, cap),
      });
      p = limits.end;
    } else if (kind === 0x03) p += 2; // a global: valtype, mutability
    else if (kind === 0x04) [, p] = readLeb(bytes, p + 1); // a tag
    else throw new TypeError("Cannot read the WebAssembly module's imports");
  }
}
