// The browser bundle's size budget: each entry bundled as an app would (minified, ESM, its
// dependencies inside except the peers react and @tanstack/*), then gzipped. Fails when an entry
// grows past the budget in package.json ("sizeBudget", bytes after gzip). Run by `npm test`.
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = fileURLToPath(new URL('..', import.meta.url));
const { sizeBudget } = JSON.parse(await readFile(`${root}package.json`, 'utf8'));

let failed = false;
for (const [entry, budget] of Object.entries(sizeBudget)) {
  const result = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2020'],
    minify: true,
    external: ['react', 'react-dom', '@tanstack/*'],
    write: false,
    logLevel: 'warning',
  });
  const bytes = gzipSync(result.outputFiles[0].contents, { level: 9 }).length;
  const over = bytes > budget;
  failed ||= over;
  console.log(`${over ? 'OVER' : 'ok  '} ${entry}: ${bytes} B min+gzip (budget ${budget} B)`);
}
if (failed) {
  console.error('A bundle is over its size budget: make it smaller, or raise "sizeBudget" in package.json with a reason in the commit.');
  process.exit(1);
}
