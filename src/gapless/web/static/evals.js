/**
 * Evaluation pages: `/prompts`, `/prompts/{name}` and `/playground`, in one
 * view (`#evals-view`) that app.js shows for those paths.
 */
import { PlaygroundView } from "./playground.js";
import { PromptsView } from "./prompts.js";

export class EvalsView {
  constructor(shell) {
    this.shell = shell;
    this.root = document.getElementById("evals-view");
    this.prompts = new PromptsView(shell);
    this.playground = new PlaygroundView(shell);
    this.current = null;
  }

  /** Whether `path` is one of these pages. */
  static serves(path) {
    return /^\/(prompts(\/[^/]+)?|playground)$/.test(path);
  }

  async show(path) {
    this.root.hidden = false;
    const named = path.match(/^\/prompts\/([^/]+)$/);
    const next = path === "/playground" ? this.playground : this.prompts;
    if (this.current && this.current !== next) this.current.hide();
    this.current = next;
    this.root.replaceChildren(next.root);
    document.getElementById("prompts-link")?.setAttribute("aria-current", "page");
    if (next === this.playground) return this.playground.show();
    return this.prompts.show(named ? decodeURIComponent(named[1]) : undefined);
  }

  hide() {
    this.current?.hide();
    this.current = null;
    this.root.hidden = true;
    document.getElementById("prompts-link")?.removeAttribute("aria-current");
  }
}
