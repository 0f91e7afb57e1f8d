// HoneyBee dashboard: Vite build of the Svelte app into dist/ (embedded by the backend) and
// a dev server that proxies the API and the WebSocket to a backend on 127.0.0.1:8080.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

const backend = process.env.HONEYBEE_DASHBOARD_URL || 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [svelte()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The map data and the terminal are split into their own chunks and loaded on demand.
    chunkSizeWarningLimit: 400,
    sourcemap: false,
  },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/api/ws': { target: backend.replace(/^http/, 'ws'), ws: true },
      '/api': { target: backend },
    },
  },
});
