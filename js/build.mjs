// Bundle the widget entries into ../spinal_nb/static (one self-contained ESM per widget + one CSS file) and record
// a hash of the sources, so that a Python test can tell a stale bundle without node. Usage: npm run build
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const out = join(here, "..", "spinal_nb", "static");
const ENTRIES = ["depth_path", "layer_scrubber", "dashboard", "training"];

function files(dir) {
  return readdirSync(dir).sort().flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

// sha256 over (relative path, contents) of every source file plus the build script and the pinned esbuild version
export function sourceHash() {
  const h = createHash("sha256");
  for (const p of [...files(src), join(here, "build.mjs"), join(here, "package.json")]) {
    h.update(relative(here, p).split("\\").join("/") + "\0");
    h.update(readFileSync(p));
    h.update("\0");
  }
  return h.digest("hex");
}

mkdirSync(out, { recursive: true });
const outDir = process.argv[2] || out;
await build({
  entryPoints: Object.fromEntries(ENTRIES.map((e) => [e, join(src, "widgets", e + ".js")])),
  outdir: outDir,
  bundle: true,
  format: "esm",
  target: ["es2020"],
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
await build({
  entryPoints: { spinal: join(src, "spinal.css") },
  outdir: outDir,
  bundle: true,
  minify: true,
  logLevel: "warning",
});
const info = { source_sha256: sourceHash(), entries: ENTRIES, esbuild: JSON.parse(readFileSync(join(here, "package.json"))).devDependencies.esbuild };
writeFileSync(join(outDir, "build-info.json"), JSON.stringify(info, null, 1) + "\n");
console.log(`built ${ENTRIES.join(", ")} + spinal.css into ${relative(process.cwd(), outDir) || "."}`);
