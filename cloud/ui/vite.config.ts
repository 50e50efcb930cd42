/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run build` writes dist/, which `fleetflow serve` serves at / (cloud/routes.py).
// `npm run dev` proxies the API to a local `fleetflow serve`.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1024 },
  server: { proxy: { "/api": "http://127.0.0.1:8080" }, fs: { allow: ["..", "../.."] } },
  test: { environment: "jsdom", setupFiles: ["./src/test-setup.ts"], css: false },
});
