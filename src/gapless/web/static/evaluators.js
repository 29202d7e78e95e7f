/**
 * Evaluators (`/evaluators`): the account's evaluators, a form for a new one
 * whose config fields follow its kind (exact, contains, regex, JSON, JSON
 * schema, numeric, latency, cost, LLM judge), its live sampling and filter,
 * and a "Try" form that runs one on a given output (nothing stored) and shows
 * its result. Everything a user or a model wrote is set as text.
 */
import { api } from "./api.js";
import { fmt, h, present } from "./figures.js";
import { scoreMark } from "./experiments.js";

const enc = encodeURIComponent;

/** Per kind: what it checks, and its config fields {name, label, type, value?, placeholder?}. */
export const KINDS = {
  exact: { text: "Exact match with the expected output", fields: [{ name: "case_sensitive", label: "Case sensitive", type: "checkbox", value: true }] },
  contains: { text: "Output contains a text (the expected output by default)", fields: [
    { name: "value", label: "Text (empty: the expected output)", type: "text" },
    { name: "case_sensitive", label: "Case sensitive", type: "checkbox", value: false }] },
  regex: { text: "Output matches a regular expression", fields: [{ name: "pattern", label: "Pattern", type: "text", required: true, placeholder: "^\\d+$" }] },
  json: { text: "Output is valid JSON", fields: [] },
  json_schema: { text: "Output is JSON valid against a schema", fields: [{ name: "schema", label: "Schema (JSON)", type: "json", required: true, placeholder: '{"type": "object", "required": ["answer"]}' }] },
  numeric: { text: "The number in the output is within a tolerance of the expected one", fields: [
    { name: "tolerance", label: "Tolerance", type: "number", required: true, value: "0" },
    { name: "relative", label: "Relative (a share of the expected)", type: "checkbox", value: false }] },
  latency: { text: "The run took at most this long", fields: [{ name: "max_ms", label: "Max (ms)", type: "number", required: true, value: "10000" }] },
  cost: { text: "The run cost at most this much", fields: [{ name: "max", label: "Max (USD)", type: "number", required: true, value: "0.01" }] },
  judge: { text: "An LLM judges the output with a rubric prompt", fields: [
    { name: "prompt", label: "Rubric prompt (name)", type: "prompt", required: true },
    { name: "label", label: "Label or version (default production)", type: "text", placeholder: "production or 3" },
    { name: "model", label: "Judge model", type: "model", required: true },
    { name: "pass", label: "Pass from score", type: "number", value: "0.5" }] },
};

function configSummary(evaluator) {
  return Object.entries(evaluator.config ?? {})
    .map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`).join(" · ") || "—";
}

export class EvaluatorsView {
  constructor(shell) {
    this.shell = shell;
    this.root = h("div", { class: "evals-inner evaluators" });
    this.evaluators = [];
    this.prompts = [];
  }

  hide() {
    this.root.replaceChildren();
  }

  async show() {
    this.shell.setTitle("Evaluators");
    try {
      const [found, prompts] = await Promise.all([
        api.get("/api/evaluators"),
        api.get("/api/prompts").then((p) => p.prompts).catch(() => []),
      ]);
      this.evaluators = found.evaluators;
      this.prompts = prompts;
    } catch (error) {
      this.shell.toast(`Couldn't load: ${error.message}`);
      return;
    }
    this.draw();
  }

  draw() {
    const form = this.newForm();
    const rows = this.evaluators.map((e) => h("tr", { "data-evaluator": e.id },
      h("td", {}, h("strong", {}, e.name)),
      h("td", {}, e.kind),
      h("td", { class: "cell-text" }, configSummary(e)),
      h("td", { class: "num" }, e.sample ? fmt.pct(e.sample) : "experiments only"),
      h("td", {}, Object.entries(e.filter ?? {}).map(([k, v]) => `${k}=${v}`).join(", ") || "—"),
      h("td", {}, h("button", { type: "button", class: "button small danger", "aria-label": `Delete ${e.name}`, onclick: () => this.remove(e) }, "Delete"))));
    this.root.replaceChildren(...present(
      h("div", { class: "observe-head" },
        h("p", { class: "muted" }, "Evaluators score an experiment's items and, sampled, live traces. A score's name is its evaluator's."),
        h("button", { type: "button", class: "button primary", id: "new-evaluator", onclick: () => { form.hidden = !form.hidden; } }, "New evaluator")),
      form,
      this.evaluators.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "data evaluators-table" },
            h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Kind"), h("th", {}, "Config"), h("th", { class: "num" }, "Live sample"), h("th", {}, "Filter"), h("th", {}))),
            h("tbody", {}, rows)))
        : h("p", { class: "muted list-empty" }, "No evaluators yet."),
      this.evaluators.length ? this.tryForm() : null));
  }

  /** The new-evaluator form; its config fields are redrawn when the kind changes. */
  newForm() {
    const kind = h("select", { id: "evaluator-kind", name: "kind" }, Object.keys(KINDS).map((k) => h("option", { value: k }, k)));
    const about = h("p", { class: "muted small" });
    const config = h("div", { class: "evaluator-config" });
    const fill = () => {
      about.textContent = KINDS[kind.value].text;
      config.replaceChildren(...KINDS[kind.value].fields.map((f) => this.field(f)));
    };
    kind.addEventListener("change", fill);
    fill();
    const form = h("form", { class: "agent-form prompt-form", hidden: true, "aria-label": "New evaluator" },
      h("div", { class: "field-row two" },
        h("div", { class: "field" }, h("label", { for: "evaluator-name" }, "Name"), h("input", { id: "evaluator-name", required: true, maxlength: "100", placeholder: "correct" })),
        h("div", { class: "field" }, h("label", { for: "evaluator-kind" }, "Kind"), kind)),
      about, config,
      h("div", { class: "field-row" },
        h("div", { class: "field" }, h("label", { for: "evaluator-sample" }, "Live traces sampled (0–1)"), h("input", { id: "evaluator-sample", type: "number", min: "0", max: "1", step: "0.05", value: "0" })),
        h("div", { class: "field" }, h("label", { for: "evaluator-agent" }, "Only agent"),
          h("select", { id: "evaluator-agent" }, h("option", { value: "" }, "any"), this.shell.agents.agents.map((a) => h("option", { value: a.id }, a.name)))),
        h("div", { class: "field" }, h("label", { for: "evaluator-model" }, "Only model"),
          h("select", { id: "evaluator-model" }, h("option", { value: "" }, "any"), this.shell.models.models.map((m) => h("option", { value: m.id }, m.label ?? m.id)))),
        h("div", { class: "field" }, h("label", { for: "evaluator-prompt-filter" }, "Only prompt"), h("input", { id: "evaluator-prompt-filter", maxlength: "100" }))),
      h("p", { class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary" }, "Create evaluator")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = form.querySelector(".form-error");
      error.hidden = true;
      try {
        const filter = {};
        const value = (id) => form.querySelector(`#${id}`).value.trim();
        if (value("evaluator-agent")) filter.agent_id = value("evaluator-agent");
        if (value("evaluator-model")) filter.model = value("evaluator-model");
        if (value("evaluator-prompt-filter")) filter.prompt_name = value("evaluator-prompt-filter");
        const created = await api.post("/api/evaluators", {
          name: value("evaluator-name"), kind: kind.value, config: readConfig(kind.value, config),
          sample: Number(value("evaluator-sample") || 0), filter,
        });
        this.evaluators = [...this.evaluators, created];
        this.shell.toast(`Created ${created.name}`);
        this.draw();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
    return form;
  }

  field(f) {
    const id = `config-${f.name}`;
    let input;
    if (f.type === "checkbox") {
      input = h("input", { id, type: "checkbox", "data-config": f.name, "data-type": f.type, checked: f.value === true });
      return h("div", { class: "rule-row" }, input, h("label", { for: id }, f.label));
    }
    if (f.type === "json") {
      input = h("textarea", { id, rows: "4", class: "mono", "data-config": f.name, "data-type": f.type, placeholder: f.placeholder, required: f.required });
    } else if (f.type === "prompt") {
      input = h("select", { id, "data-config": f.name, "data-type": f.type }, this.prompts.map((p) => h("option", { value: p.name }, p.name)));
    } else if (f.type === "model") {
      input = h("select", { id, "data-config": f.name, "data-type": f.type }, this.shell.models.models.map((m) => h("option", { value: m.id }, m.label ?? m.id)));
    } else {
      input = h("input", { id, type: f.type === "number" ? "number" : "text", step: f.type === "number" ? "any" : undefined, "data-config": f.name, "data-type": f.type, value: f.value, placeholder: f.placeholder, required: f.required });
    }
    return h("div", { class: "field" }, h("label", { for: id }, f.label), input);
  }

  /** Run an evaluator once on a given output (POST /api/evaluators/{id}/try): nothing is stored. */
  tryForm() {
    const pick = h("select", { id: "try-evaluator" }, this.evaluators.map((e) => h("option", { value: e.id }, `${e.name} (${e.kind})`)));
    const result = h("div", { class: "try-result", "aria-live": "polite" });
    const form = h("form", { class: "agent-form", "aria-label": "Try an evaluator" },
      h("div", { class: "field" }, h("label", { for: "try-evaluator" }, "Evaluator"), pick),
      h("div", { class: "field-row two" },
        h("div", { class: "field" }, h("label", { for: "try-output" }, "Output"), h("textarea", { id: "try-output", rows: "3" })),
        h("div", { class: "field" }, h("label", { for: "try-expected" }, "Expected"), h("textarea", { id: "try-expected", rows: "3" }))),
      h("div", { class: "field-row" },
        h("div", { class: "field" }, h("label", { for: "try-input" }, "Input"), h("input", { id: "try-input" })),
        h("div", { class: "field" }, h("label", { for: "try-duration" }, "Duration (ms)"), h("input", { id: "try-duration", type: "number", min: "0" })),
        h("div", { class: "field" }, h("label", { for: "try-cost" }, "Cost (USD)"), h("input", { id: "try-cost", type: "number", min: "0", step: "any" }))),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary" }, "Try")),
      result);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = (id) => form.querySelector(`#${id}`).value;
      const body = { output: value("try-output") };
      if (value("try-expected")) body.expected = value("try-expected");
      if (value("try-input")) body.input = value("try-input");
      if (value("try-duration")) body.duration_ms = Number(value("try-duration"));
      if (value("try-cost")) body.cost = Number(value("try-cost"));
      result.replaceChildren(h("span", { class: "muted" }, "Running…"));
      try {
        const found = await api.post(`/api/evaluators/${enc(pick.value)}/try`, body);
        result.replaceChildren(...present(scoreMark(found),
          found.explanation ? h("p", { class: "small" }, found.explanation) : null,
          found.error ? h("p", { class: "error-text" }, found.error) : null));
      } catch (failure) {
        result.replaceChildren(h("p", { class: "error-text" }, failure.message));
      }
    });
    return h("section", { "aria-label": "Try an evaluator" }, h("h2", {}, "Try"), form);
  }

  async remove(evaluator) {
    if (!window.confirm(`Delete the evaluator ${evaluator.name}? Its scores stay.`)) return;
    try {
      await api.delete(`/api/evaluators/${enc(evaluator.id)}`);
      this.evaluators = this.evaluators.filter((e) => e.id !== evaluator.id);
      this.draw();
    } catch (error) {
      this.shell.toast(`Not deleted: ${error.message}`);
    }
  }
}

/** The config object of a kind from its fields (a judge's `label` may be a version number). */
function readConfig(kind, root) {
  const config = {};
  for (const input of root.querySelectorAll("[data-config]")) {
    const name = input.dataset.config;
    const type = input.dataset.type;
    if (type === "checkbox") config[name] = input.checked;
    else if (input.value.trim() === "") continue;
    else if (type === "number") config[name] = Number(input.value);
    else if (type === "json") {
      try {
        config[name] = JSON.parse(input.value);
      } catch {
        throw new Error(`${name} is not valid JSON`);
      }
    } else config[name] = input.value.trim();
  }
  if (kind === "judge") {
    const prompt = { name: config.prompt };
    if (/^\d+$/.test(config.label ?? "")) prompt.version = Number(config.label);
    else if (config.label) prompt.label = config.label;
    delete config.label;
    config.prompt = prompt;
  }
  return config;
}
