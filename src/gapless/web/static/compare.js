/**
 * Runs compared (`/compare?ids=a,b[,c...]`): a table of the runs with their
 * figures (pass rate, each score's mean and pass rate, cost, latency p50/p95,
 * failures, items that got worse), a "Mark as baseline" button per run, and
 * per dataset item every run's output side by side, each diffed word by word
 * against the reference run's (jsdiff), with its scores, cost, duration and
 * trace. Items that regressed are marked, and a filter shows only those. The
 * comparison itself is the server's (GET /api/compare); outputs are set as text.
 */
import { diffWordsWithSpace } from "diff";
import { ApiError, api } from "./api.js";
import { fmt, h, present } from "./figures.js";
import { inputText, outputOf, scoreMarks, statusChip, targetText, variablesText } from "./experiments.js";

const enc = encodeURIComponent;

/** `text` against `reference`, word by word: removed words struck, added words marked. */
export function wordDiff(reference, text) {
  if (reference === text) return [text];
  return diffWordsWithSpace(reference, text).map((part) =>
    part.added ? h("ins", {}, part.value) : part.removed ? h("del", {}, part.value) : part.value);
}

export class CompareView {
  constructor(shell) {
    this.shell = shell;
    this.root = h("div", { class: "evals-inner comparison" });
    this.data = null;
    this.onlyRegressed = false;
  }

  hide() {
    this.root.replaceChildren();
    this.data = null;
  }

  async show() {
    this.shell.setTitle("Compare runs");
    this.ids = (new URLSearchParams(location.search).get("ids") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    this.onlyRegressed = new URLSearchParams(location.search).get("regressed") === "1";
    if (this.ids.length < 2) {
      this.root.replaceChildren(h("p", { class: "muted" }, "Pick two to five runs of a dataset to compare them."),
        h("a", { href: "/datasets", "data-link": true }, "Datasets"));
      return;
    }
    await this.load();
  }

  async load() {
    try {
      const [data, dataset] = await api.get(`/api/compare?ids=${this.ids.map(enc).join(",")}`)
        .then(async (found) => [found, await api.get(`/api/datasets/${enc(found.dataset_id)}`).catch(() => null)]);
      this.data = data;
      this.dataset = dataset;
    } catch (error) {
      const gone = error instanceof ApiError && error.status === 404;
      this.root.replaceChildren(h("p", { class: gone ? "muted" : "error-text" }, gone ? "One of these runs does not exist, or is not yours." : error.message));
      return;
    }
    this.draw();
  }

  draw() {
    const { experiments, items, reference_id: reference } = this.data;
    const names = new Map(experiments.map((e) => [e.id, e.name]));
    this.shell.setTitle(`Compare · ${experiments.map((e) => e.name).join(" vs ")}`);
    const regressedCount = items.filter((i) => i.regressed.length).length;
    const filter = h("input", { type: "checkbox", id: "only-regressed", checked: this.onlyRegressed });
    filter.addEventListener("change", () => {
      this.onlyRegressed = filter.checked;
      const url = new URL(location.href);
      if (filter.checked) url.searchParams.set("regressed", "1");
      else url.searchParams.delete("regressed");
      history.replaceState(null, "", url.pathname + url.search);
      this.drawItems();
    });
    this.itemsRoot = h("div", { class: "compare-items" });
    this.root.replaceChildren(
      h("div", { class: "observe-head" },
        h("a", { href: `/datasets/${enc(this.data.dataset_id)}`, "data-link": true, class: "back-link" }, `← ${this.dataset?.name ?? "Dataset"}`),
        h("span", { class: "muted", id: "compare-reference" }, `Outputs are diffed against ${names.get(reference)}${reference === this.data.baseline_id ? " (the baseline)" : ""}.`)),
      this.runsTable(),
      h("div", { class: "observe-head compare-filter" },
        h("h2", {}, `Items (${items.length})`),
        h("label", { class: "filter", for: "only-regressed" }, filter, `Only regressed items (${regressedCount})`)),
      this.itemsRoot);
    this.drawItems();
  }

  runsTable() {
    const { experiments, reference_id: reference, baseline_id: baseline } = this.data;
    const scoreNames = [...new Set(experiments.flatMap((e) => Object.keys(e.summary.scores)))].sort();
    const head = h("tr", {}, h("th", {}, "Run"), h("th", {}, "Target"), h("th", {}, "Status"), h("th", { class: "num" }, "Pass rate"),
      scoreNames.map((n) => h("th", { class: "num", title: "mean · pass rate" }, n)),
      h("th", { class: "num" }, "Cost"), h("th", { class: "num" }, "p50"), h("th", { class: "num" }, "p95"),
      h("th", { class: "num" }, "Failed"), h("th", { class: "num" }, "Regressed"), h("th", {}));
    const rows = experiments.map((e) => {
      const s = e.summary;
      const score = (name) => {
        const f = s.scores[name];
        if (!f) return "—";
        const parts = [f.mean === null ? null : f.mean.toFixed(2), f.pass_rate === null ? null : fmt.pct(f.pass_rate)].filter(Boolean);
        return `${parts.join(" · ") || "—"}${f.errors ? ` (${f.errors} err)` : ""}`;
      };
      return h("tr", { "data-experiment": e.id, class: e.id === reference ? "reference" : "" },
        h("td", {}, h("a", { href: `/experiments/${enc(e.id)}`, "data-link": true }, e.name),
          e.id === baseline ? h("span", { class: "chip chip-prod" }, "baseline") : null,
          e.id === reference && e.id !== baseline ? h("span", { class: "chip" }, "reference") : null),
        h("td", { class: "cell-text" }, targetText(e.target, this.shell.agents.agents)),
        h("td", {}, statusChip(e.status)),
        h("td", { class: "num pass-rate" }, s.pass_rate === null ? "—" : `${fmt.pct(s.pass_rate)} (${s.passed}/${s.ended})`),
        scoreNames.map((n) => h("td", { class: "num" }, score(n))),
        h("td", { class: "num" }, fmt.cost(s.cost)),
        h("td", { class: "num" }, fmt.ms(s.latency_p50)),
        h("td", { class: "num" }, fmt.ms(s.latency_p95)),
        h("td", { class: "num" }, String(s.failed)),
        h("td", { class: `num${s.regressed ? " worse" : ""}` }, String(s.regressed)),
        h("td", {}, e.id === baseline ? null
          : h("button", { type: "button", class: "button small", "aria-label": `Mark ${e.name} as baseline`, onclick: () => this.markBaseline(e) }, "Mark as baseline")));
    });
    return h("div", { class: "table-wrap" }, h("table", { class: "data compare-runs" }, h("thead", {}, head), h("tbody", {}, rows)));
  }

  drawItems() {
    const { experiments, items, reference_id: reference } = this.data;
    const shown = this.onlyRegressed ? items.filter((i) => i.regressed.length) : items;
    const columns = `repeat(${experiments.length}, minmax(0, 1fr))`;
    this.itemsRoot.replaceChildren(...(shown.length ? shown.map((item) => {
      const referenceOutput = item.results[reference]?.output ?? "";
      const variables = variablesText(item.input);
      return h("article", { class: `compare-item${item.regressed.length ? " regressed" : ""}`, "data-item": item.item_id },
        h("div", { class: "compare-item-head" },
          h("span", { class: "muted" }, `#${item.position + 1}`),
          h("span", { class: "compare-input" }, inputText(item.input)),
          item.regressed.length ? h("span", { class: "badge badge-regressed" }, "regressed") : null),
        h("dl", { class: "pairs" }, ...present(
          variables ? h("dt", {}, "Variables") : null, variables ? h("dd", {}, variables) : null,
          h("dt", {}, "Expected"), h("dd", {}, item.expected ?? "—"))),
        h("div", { class: "compare-grid", style: `grid-template-columns:${columns}` }, experiments.map((e) => {
          const result = item.results[e.id];
          const regressed = item.regressed.includes(e.id);
          const improved = (item.improved ?? []).includes(e.id);
          if (!result) return h("div", { class: "compare-cell missing" }, h("strong", {}, e.name), h("p", { class: "muted" }, "Not in this run."));
          const output = result.status === "done" && e.id !== reference && typeof result.output === "string"
            ? wordDiff(referenceOutput, result.output) : [outputOf(result)];
          return h("div", { class: `compare-cell${regressed ? " regressed" : ""}${improved ? " improved" : ""}`, "data-experiment": e.id, "data-regressed": String(regressed) },
            h("div", { class: "compare-cell-head" }, h("strong", {}, e.name),
              regressed ? h("span", { class: "badge badge-regressed" }, "worse") : improved ? h("span", { class: "badge badge-improved" }, "better") : null,
              statusChip(result.status)),
            h("div", { class: "compare-output diff" }, ...output),
            scoreMarks(result.scores),
            h("div", { class: "muted small compare-figures" }, `${fmt.cost(result.cost)} · ${fmt.ms(result.duration_ms)} · `,
              result.trace_id ? h("a", { href: `/traces/${enc(result.trace_id)}`, "data-link": true }, "Trace") : "no trace"));
        })));
    }) : [h("p", { class: "muted list-empty" }, this.onlyRegressed ? "No item got worse." : "No items.")]));
  }

  async markBaseline(experiment) {
    try {
      await api.patch(`/api/datasets/${enc(this.data.dataset_id)}`, { baseline_id: experiment.id });
      this.shell.toast(`${experiment.name} is the baseline`);
      await this.load();
    } catch (error) {
      this.shell.toast(`Not marked: ${error.message}`);
    }
  }
}
