// Builds the test app against the SDK's sources (web-client/src), the way an app imports the
// published package: `@statushub/client`, `/react`, `/query`. One React and one socket.io-client
// (this app's), even though the SDK's sources sit next to web-client/node_modules.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const sdk = (entry) => fileURLToPath(new URL(`../../web-client/src/${entry}.ts`, import.meta.url));

export default defineConfig({
  logLevel: 'warn',
  resolve: {
    alias: [
      { find: /^@statushub\/client$/, replacement: sdk('index') },
      { find: /^@statushub\/client\/react$/, replacement: sdk('react') },
      { find: /^@statushub\/client\/query$/, replacement: sdk('query') },
    ],
    dedupe: ['react', 'react-dom', 'socket.io-client', '@tanstack/react-query'],
  },
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    minify: false,
    rollupOptions: {
      // TanStack's "use client" directives mean nothing in a client-only bundle.
      onwarn(warning, warn) {
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE' || warning.code === 'SOURCEMAP_ERROR') return;
        warn(warning);
      },
    },
  },
});
