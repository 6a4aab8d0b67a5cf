#!/usr/bin/env node
// Validates Kubernetes manifests offline against the API's OpenAPI schemas (the ones
// bundled in the kubernetes-models package), so the rendered kustomize output is
// checked without a cluster.
//
//   kubectl kustomize ../kubernetes/overlays/ingress | node validate.mjs
//   node validate.mjs a.yaml b.yaml         ("-" or no argument: standard input)
//
// Prints one "ok" line per object; exits 1 when any object (or YAML document) is invalid
// or of an apiVersion/kind the models do not know, 2 on a usage or read error.
// Limitation: the schemas reject wrong types, missing required fields and bad formats,
// but (like the API's own OpenAPI v2 schemas) not unknown field names.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import YAML from "yaml";

const require = createRequire(import.meta.url);
// The package has no "exports" map, so its group/version folders are imported by path.
const modelsRoot = dirname(require.resolve("kubernetes-models/package.json"));

// "apps/v1" -> module of the group/version; core "v1" lives at the top level.
const groupVersion = /^(?:[a-z0-9.-]+\/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/;
const modules = new Map();
async function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== "string" || !groupVersion.test(apiVersion))
    throw new Error(`unsupported apiVersion ${JSON.stringify(apiVersion)}`);
  if (typeof kind !== "string" || !/^[A-Z][A-Za-z0-9]*$/.test(kind))
    throw new Error(`invalid kind ${JSON.stringify(kind)}`);
  if (!modules.has(apiVersion)) {
    const file = join(modelsRoot, ...apiVersion.split("/"), "index.mjs");
    modules.set(apiVersion, import(pathToFileURL(file).href).catch(() => null));
  }
  const mod = await modules.get(apiVersion);
  const cls = mod?.[kind];
  // The index also exports nested types (Container, Probe...): only top-level resources count.
  if (!cls || cls.apiVersion !== apiVersion || cls.kind !== kind)
    throw new Error(`unknown apiVersion/kind ${apiVersion}/${kind}`);
  return cls;
}

function describe(obj) {
  const m = obj?.metadata ?? {};
  return `${obj?.apiVersion}/${obj?.kind} ${m.namespace ? m.namespace + "/" : ""}${m.name ?? "<no name>"}`;
}

async function validateObject(obj, where) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj))
    return [`${where}: not a mapping`];
  if (obj.kind === "List" && Array.isArray(obj.items)) {
    const errors = [];
    for (const [i, item] of obj.items.entries())
      errors.push(...(await validateObject(item, `${where} items[${i}]`)));
    return errors;
  }
  try {
    const cls = await modelClass(obj.apiVersion, obj.kind);
    new cls(obj).validate(); // throws with the schema errors
    if (typeof obj.metadata?.name !== "string" || obj.metadata.name === "")
      throw new Error("metadata.name is required");
  } catch (e) {
    return [`${where} (${describe(obj)}): ${e.message}`];
  }
  console.log(`ok ${describe(obj)}`);
  return [];
}

async function main(args) {
  const inputs = args.length ? args : ["-"];
  const errors = [];
  let count = 0;
  for (const input of inputs) {
    let text;
    try {
      text = readFileSync(input === "-" ? 0 : input, "utf8");
    } catch (e) {
      console.error(`${input}: ${e.message}`);
      return 2;
    }
    const name = input === "-" ? "<stdin>" : input;
    for (const [i, doc] of YAML.parseAllDocuments(text).entries()) {
      const where = `${name} document ${i + 1}`;
      if (doc.errors.length) {
        errors.push(...doc.errors.map((e) => `${where}: ${e.message}`));
        continue;
      }
      const obj = doc.toJS();
      if (obj === null || obj === undefined) continue; // empty document (e.g. trailing ---)
      count++;
      errors.push(...(await validateObject(obj, where)));
    }
  }
  for (const e of errors) console.error(`invalid: ${e}`);
  if (count === 0) {
    console.error("no Kubernetes objects found in the input");
    return 1;
  }
  return errors.length ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
