/**
 * Evaluation pages of datasets and their runs: `/datasets`, `/datasets/{id}`,
 * `/experiments/{id}`, `/compare?ids=...` and `/evaluators`, in one view
 * (`#runs-view`) that app.js shows for them. Each page is its own module.
 */
import { CompareView } from "./compare.js";
import { DatasetsView } from "./datasets.js";
import { EvaluatorsView } from "./evaluators.js";
import { ExperimentView } from "./experiments.js";

const LINKS = ["datasets-link", "evaluators-link"];

export class RunsView {
  constructor(shell) {
    this.shell = shell;
    this.root = document.getElementById("runs-view");
    this.datasets = new DatasetsView(shell);
    this.experiment = new ExperimentView(shell);
    this.compare = new CompareView(shell);
    this.evaluators = new EvaluatorsView(shell);
    this.current = null;
  }

  /** Whether `path` is one of these pages. */
  static serves(path) {
    return /^\/(datasets(\/[^/]+)?|experiments\/[^/]+|compare|evaluators)$/.test(path);
  }

  async show(path) {
    this.root.hidden = false;
    const named = path.match(/^\/(?:datasets|experiments)\/([^/]+)$/);
    const id = named ? decodeURIComponent(named[1]) : undefined;
    const next = path.startsWith("/experiments/") ? this.experiment
      : path === "/compare" ? this.compare
        : path === "/evaluators" ? this.evaluators : this.datasets;
    this.current?.hide();
    this.current = next;
    this.root.replaceChildren(next.root);
    for (const link of LINKS) document.getElementById(link)?.removeAttribute("aria-current");
    const link = next === this.evaluators ? "evaluators-link" : "datasets-link";
    document.getElementById(link)?.setAttribute("aria-current", "page");
    return next.show(id);
  }

  hide() {
    this.current?.hide();
    this.current = null;
    this.root.hidden = true;
    for (const link of LINKS) document.getElementById(link)?.removeAttribute("aria-current");
  }
}
