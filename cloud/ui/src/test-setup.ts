import "@testing-library/jest-dom/vitest";

// jsdom has no layout, so no ResizeObserver: React Flow measures its pane
// and nodes with one. An observer that never fires stands in (sizes stay 0,
// which the tests here do not look at).
class NoLayoutResizeObserver {
  observe() {}
  unobserve() {}
  disconnect() {}
}
(globalThis as any).ResizeObserver ??= NoLayoutResizeObserver;
