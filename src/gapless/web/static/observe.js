/**
 * Observability pages: `/dashboard`, `/traces` and `/traces/{id}`, in one view
 * (`#observe-view`) that app.js shows for those paths.
 */
import { DashboardView } from "./dashboard.js";
import { TraceView } from "./trace.js";
import { TracesView } from "./traces.js";

export class ObserveView {
  constructor(shell) {
    this.shell = shell;
    this.root = document.getElementById("observe-view");
    this.dashboard = new DashboardView(shell);
    this.traces = new TracesView(shell);
    this.trace = new TraceView(shell);
    this.current = null;
  }

  /** Whether `path` is one of these pages. */
  static serves(path) {
    return /^\/(dashboard|traces)(\/[^/]+)?$/.test(path);
  }

  async show(path) {
    this.root.hidden = false;
    const trace = path.match(/^\/traces\/([^/]+)$/);
    const next = path === "/dashboard" ? this.dashboard : trace ? this.trace : this.traces;
    if (this.current && this.current !== next) this.current.hide();
    this.current = next;
    this.root.replaceChildren(next.root);
    for (const id of ["dashboard-link", "traces-link"]) document.getElementById(id)?.removeAttribute("aria-current");
    document.getElementById(path === "/dashboard" ? "dashboard-link" : "traces-link")?.setAttribute("aria-current", "page");
    await next.show(trace ? decodeURIComponent(trace[1]) : undefined);
  }

  hide() {
    this.current?.hide();
    this.current = null;
    this.root.hidden = true;
    for (const id of ["dashboard-link", "traces-link"]) document.getElementById(id)?.removeAttribute("aria-current");
  }
}
