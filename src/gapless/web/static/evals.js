/**
 * Evaluation pages: `/prompts`, `/prompts/{name}`, `/playground`, `/queues`
 * and `/queues/{id}`, in one view (`#evals-view`) that app.js shows for them.
 */
import { PlaygroundView } from "./playground.js";
import { PromptsView } from "./prompts.js";
import { QueuesView } from "./queues.js";

export class EvalsView {
  constructor(shell) {
    this.shell = shell;
    this.root = document.getElementById("evals-view");
    this.prompts = new PromptsView(shell);
    this.playground = new PlaygroundView(shell);
    this.queues = new QueuesView(shell);
    this.current = null;
  }

  /** Whether `path` is one of these pages. */
  static serves(path) {
    return /^\/(prompts(\/[^/]+)?|playground|queues(\/[^/]+)?)$/.test(path);
  }

  async show(path) {
    this.root.hidden = false;
    const named = path.match(/^\/(?:prompts|queues)\/([^/]+)$/);
    const queues = path.startsWith("/queues");
    const next = path === "/playground" ? this.playground : queues ? this.queues : this.prompts;
    if (this.current && this.current !== next) this.current.hide();
    this.current = next;
    this.root.replaceChildren(next.root);
    for (const link of ["prompts-link", "queues-link"]) document.getElementById(link)?.removeAttribute("aria-current");
    document.getElementById(queues ? "queues-link" : "prompts-link")?.setAttribute("aria-current", "page");
    if (next === this.playground) return this.playground.show();
    return next.show(named ? decodeURIComponent(named[1]) : undefined);
  }

  hide() {
    this.current?.hide();
    this.current = null;
    this.root.hidden = true;
    for (const link of ["prompts-link", "queues-link"]) document.getElementById(link)?.removeAttribute("aria-current");
  }
}
