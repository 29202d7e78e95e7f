/**
 * Datasets: the account's datasets (`/datasets`, with a form for a new one)
 * and one dataset (`/datasets/{id}`): its items (with a form to add one and
 * an import of JSONL or CSV, pasted or from a file, whose refused lines are
 * listed), its runs (pick two to five to compare them; the baseline marked),
 * and the "New experiment" form: an agent (its model, or another) or a prompt
 * version and a model, the evaluators to score with, and a concurrency.
 * Everything a user wrote is set as text.
 */
import { ApiError, api } from "./api.js";
import { fmt, h, present } from "./figures.js";
import { inputText, statusChip, targetText, variablesText } from "./experiments.js";

const enc = encodeURIComponent;

/** A textarea's JSON object, or `fallback` when empty; a clear error otherwise. */
function jsonField(text, label, fallback) {
  if (text.trim() === "") return fallback;
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${label} is not valid JSON`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error(`${label} must be a JSON object`);
  return value;
}

function errorBox(form) {
  return form.querySelector(".form-error");
}

/** Show a failure in a form: its message, and an import's refused lines (`details`). */
function showError(box, failure) {
  const details = Array.isArray(failure.details) ? failure.details : [];
  box.replaceChildren(failure.message, ...(details.length
    ? [h("ul", { class: "import-errors" }, details.map((d) => h("li", {}, `Line ${d.line}: ${d.message}`)))] : []));
  box.hidden = false;
}

/** A run's "done / total (failed)" figure. */
const doneText = (run) => `${run.done} / ${run.total}${run.failed ? ` (${run.failed} failed)` : ""}`;

export class DatasetsView {
  constructor(shell) {
    this.shell = shell;
    this.root = h("div", { class: "evals-inner datasets" });
    this.unlisten = null;
  }

  hide() {
    this.unlisten?.();
    this.unlisten = null;
    this.root.replaceChildren();
  }

  async show(id) {
    this.unlisten?.();
    this.unlisten = null;
    try {
      if (id === undefined) await this.showList();
      else await this.showDataset(id);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        this.shell.setTitle("Dataset not found");
        this.root.replaceChildren(h("p", { class: "muted" }, "This dataset does not exist, or is not yours."),
          h("a", { href: "/datasets", "data-link": true }, "All datasets"));
      } else {
        this.shell.toast(`Couldn't load: ${error.message}`);
      }
    }
  }

  async showList() {
    this.shell.setTitle("Datasets");
    const { datasets } = await api.get("/api/datasets");
    const form = h("form", { class: "agent-form prompt-form", hidden: true, "aria-label": "New dataset" },
      h("div", { class: "field" }, h("label", { for: "dataset-name" }, "Name"), h("input", { id: "dataset-name", required: true, maxlength: "200", placeholder: "support-questions" })),
      h("div", { class: "field" }, h("label", { for: "dataset-description" }, "Description"), h("input", { id: "dataset-description", maxlength: "2000" })),
      h("p", { class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary" }, "Create dataset")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const created = await api.post("/api/datasets", {
          name: form.querySelector("#dataset-name").value.trim(),
          description: form.querySelector("#dataset-description").value.trim(),
        });
        this.shell.navigate(`/datasets/${enc(created.id)}`);
      } catch (failure) {
        showError(errorBox(form), failure);
      }
    });
    const rows = datasets.map((d) => h("tr", { "data-dataset": d.id },
      h("td", {}, h("a", { href: `/datasets/${enc(d.id)}`, "data-link": true }, d.name)),
      h("td", { class: "cell-text" }, d.description || h("span", { class: "muted" }, "—")),
      h("td", { class: "num" }, String(d.items)),
      h("td", { class: "nowrap" }, fmt.when(d.updated_at))));
    this.root.replaceChildren(
      h("div", { class: "observe-head" },
        h("p", { class: "muted" }, "Items to run an agent or a prompt on, and compare the runs."),
        h("div", { class: "exports" },
          h("a", { href: "/evaluators", "data-link": true, class: "button" }, "Evaluators"),
          h("button", { type: "button", class: "button primary", id: "new-dataset", onclick: () => { form.hidden = !form.hidden; if (!form.hidden) form.querySelector("input").focus(); } }, "New dataset"))),
      form,
      datasets.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "data" },
            h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Description"), h("th", { class: "num" }, "Items"), h("th", {}, "Updated"))),
            h("tbody", {}, rows)))
        : h("p", { class: "muted list-empty" }, "No datasets yet."));
  }

  async showDataset(id) {
    const base = `/api/datasets/${enc(id)}`;
    const [dataset, runs, evaluators, prompts] = await Promise.all([
      api.get(base),
      api.get(`/api/experiments?dataset_id=${enc(id)}`).then((r) => r.experiments).catch(() => []),
      api.get("/api/evaluators").then((r) => r.evaluators).catch(() => []),
      api.get("/api/prompts").then((r) => r.prompts).catch(() => []),
    ]);
    this.dataset = dataset;
    this.shell.setTitle(dataset.name);
    this.root.replaceChildren(...present(
      h("div", { class: "observe-head" },
        h("a", { href: "/datasets", "data-link": true, class: "back-link" }, "← Datasets"),
        h("button", { type: "button", class: "button small danger", onclick: () => this.remove() }, "Delete dataset")),
      dataset.description ? h("p", { class: "muted" }, dataset.description) : null,
      h("section", { "aria-label": "Runs" }, h("h2", {}, `Runs (${runs.length})`), this.runsTable(runs)),
      h("section", { "aria-label": "New experiment" }, h("h2", {}, "New experiment"), this.experimentForm(evaluators, prompts)),
      h("section", { "aria-label": "Items" }, h("h2", {}, `Items (${dataset.count ?? dataset.items.length})`), this.itemsTable(dataset.items)),
      h("section", { "aria-label": "Add an item" }, h("h2", {}, "Add an item"), this.itemForm()),
      h("section", { "aria-label": "Import" }, h("h2", {}, "Import"), this.importForm())));
    this.followRuns(runs);
  }

  /** The runs' rows follow the account stream's `experiment.updated` (the shell's one
   * connection), newest `progress` kept (as a run's own page does); a run started
   * elsewhere shows on the next visit. */
  followRuns(runs) {
    const known = new Map(runs.map((run) => [run.id, run]));
    this.unlisten?.();
    this.unlisten = this.shell.account?.listen("experiment.updated", (data) => {
      const run = known.get(data.id);
      if (!run || data.progress <= run.progress) return;
      for (const key of ["status", "total", "done", "failed", "cost", "progress"]) run[key] = data[key];
      const row = [...this.root.querySelectorAll("tr[data-experiment]")].find((tr) => tr.dataset.experiment === run.id);
      if (!row) return;
      row.querySelector('[data-cell="status"]').replaceChildren(statusChip(run.status));
      row.querySelector('[data-cell="done"]').textContent = doneText(run);
      row.querySelector('[data-cell="cost"]').textContent = fmt.cost(run.cost);
    }) ?? null;
  }

  itemsTable(items) {
    if (!items.length) return h("p", { class: "muted list-empty" }, "No items yet: add one, import a file, or use “Add to dataset” under a reply in a chat.");
    const rows = items.map((item) => h("tr", { "data-item": item.id },
      h("td", { class: "cell-text" }, inputText(item.input)),
      h("td", { class: "cell-text" }, variablesText(item.input) || h("span", { class: "muted" }, "—")),
      h("td", { class: "cell-text" }, item.expected ?? h("span", { class: "muted" }, "—")),
      h("td", { class: "cell-text small" }, Object.keys(item.metadata ?? {}).length ? JSON.stringify(item.metadata) : "—"),
      h("td", {}, item.source_reply_id ? h("span", { class: "chip" }, "from a reply") : null),
      h("td", {}, h("button", { type: "button", class: "button small danger", "aria-label": "Remove item", onclick: () => this.removeItem(item) }, "Remove"))));
    return h("div", { class: "table-wrap" }, h("table", { class: "data dataset-items" },
      h("thead", {}, h("tr", {}, h("th", {}, "Input"), h("th", {}, "Variables"), h("th", {}, "Expected"), h("th", {}, "Metadata"), h("th", {}), h("th", {}))),
      h("tbody", {}, rows)));
  }

  itemForm() {
    const form = h("form", { class: "agent-form", "aria-label": "Add an item" },
      h("div", { class: "field-row two" },
        h("div", { class: "field" }, h("label", { for: "item-input" }, "Input (the user's message)"), h("textarea", { id: "item-input", rows: "3", required: true })),
        h("div", { class: "field" }, h("label", { for: "item-expected" }, "Expected output"), h("textarea", { id: "item-expected", rows: "3" }))),
      h("div", { class: "field-row two" },
        h("div", { class: "field" }, h("label", { for: "item-variables" }, "Variables (JSON object)"), h("input", { id: "item-variables", class: "mono", placeholder: '{"product": "Gapless"}' })),
        h("div", { class: "field" }, h("label", { for: "item-metadata" }, "Metadata (JSON object)"), h("input", { id: "item-metadata", class: "mono", placeholder: '{"topic": "billing"}' }))),
      h("p", { class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary" }, "Add item")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = (sel) => form.querySelector(sel).value;
      try {
        const variables = jsonField(value("#item-variables"), "Variables", {});
        const body = {
          input: { messages: [{ role: "user", content: value("#item-input") }], variables },
          metadata: jsonField(value("#item-metadata"), "Metadata", {}),
        };
        if (value("#item-expected") !== "") body.expected = value("#item-expected");
        await api.post(`/api/datasets/${enc(this.dataset.id)}/items`, body);
        this.shell.toast("Item added");
        await this.showDataset(this.dataset.id);
      } catch (failure) {
        showError(errorBox(form), failure);
      }
    });
    return form;
  }

  importForm() {
    const format = h("select", { id: "import-format" }, h("option", { value: "jsonl" }, "JSONL"), h("option", { value: "csv" }, "CSV"));
    const text = h("textarea", { id: "import-text", rows: "6", class: "mono",
      placeholder: '{"input": "What is 2+2?", "expected": "4"}\n{"input": {"messages": [{"role": "user", "content": "Hi"}]}, "metadata": {"topic": "greeting"}}' });
    const file = h("input", { id: "import-file", type: "file", accept: ".jsonl,.json,.csv,.txt,text/csv,application/json" });
    file.addEventListener("change", async () => {
      const chosen = file.files?.[0];
      if (!chosen) return;
      text.value = await chosen.text();
      if (/\.csv$/i.test(chosen.name)) format.value = "csv";
      else if (/\.jsonl?$/i.test(chosen.name)) format.value = "jsonl";
    });
    const form = h("form", { class: "agent-form", "aria-label": "Import items" },
      h("p", { class: "muted small" }, "JSONL: one object per line, {input, expected?, metadata?}. CSV: a header row with an input column; expected and metadata (a JSON object) are optional, every other column is a variable. A file with a bad line imports nothing."),
      h("div", { class: "inline-form" }, h("label", { for: "import-format" }, "Format"), format, h("label", { for: "import-file" }, "File"), file),
      h("div", { class: "field" }, h("label", { for: "import-text" }, "Lines"), text),
      h("p", { class: "form-error", role: "alert", hidden: true, id: "import-error" }),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary" }, "Import")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errorBox(form).hidden = true;
      try {
        const done = await api.post(`/api/datasets/${enc(this.dataset.id)}/import`, { format: format.value, text: text.value });
        this.shell.toast(`Imported ${done.imported} item${done.imported === 1 ? "" : "s"}`);
        await this.showDataset(this.dataset.id);
      } catch (failure) {
        showError(errorBox(form), failure);
      }
    });
    return form;
  }

  runsTable(runs) {
    if (!runs.length) return h("p", { class: "muted list-empty" }, "No runs yet.");
    const compare = h("button", { type: "button", class: "button small", id: "compare-runs", disabled: true }, "Compare");
    const checks = [];
    // oldest first: the first run is the reference unless the baseline is among them
    const chosen = () => runs.filter((run, i) => checks[i].checked)
      .sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0)).map((run) => run.id);
    const changed = () => {
      const n = chosen().length;
      compare.disabled = n < 2 || n > 5;
      compare.textContent = n >= 2 ? `Compare ${n}` : "Compare";
    };
    compare.addEventListener("click", () => this.shell.navigate(`/compare?ids=${chosen().map(enc).join(",")}`));
    const rows = runs.map((run) => {
      const check = h("input", { type: "checkbox", value: run.id, "aria-label": `Compare ${run.name}` });
      check.addEventListener("change", changed);
      checks.push(check);
      return h("tr", { "data-experiment": run.id },
        h("td", {}, check),
        h("td", {}, h("a", { href: `/experiments/${enc(run.id)}`, "data-link": true }, run.name),
          run.id === this.dataset.baseline_id ? h("span", { class: "chip chip-prod" }, "baseline") : null),
        h("td", { class: "cell-text" }, targetText(run.target, this.shell.agents.agents)),
        h("td", { "data-cell": "status" }, statusChip(run.status)),
        h("td", { class: "num", "data-cell": "done" }, doneText(run)),
        h("td", { class: "num", "data-cell": "cost" }, fmt.cost(run.cost)),
        h("td", { class: "nowrap" }, fmt.when(run.created_at)));
    });
    return h("div", {},
      h("div", { class: "table-wrap" }, h("table", { class: "data dataset-runs" },
        h("thead", {}, h("tr", {}, h("th", {}), h("th", {}, "Run"), h("th", {}, "Target"), h("th", {}, "Status"), h("th", { class: "num" }, "Done"), h("th", { class: "num" }, "Cost"), h("th", {}, "Started"))),
        h("tbody", {}, rows))),
      h("div", { class: "form-actions runs-actions" }, h("span", { class: "muted small" }, "Pick 2 to 5 runs:"), compare));
  }

  experimentForm(evaluators, prompts) {
    const models = this.shell.models.models;
    const agents = this.shell.agents.agents;
    const kind = (value, text) => h("label", { class: "radio" },
      h("input", { type: "radio", name: "target-kind", value, checked: value === (agents.length ? "agent" : "prompt") }), text);
    const agentPick = h("select", { id: "experiment-agent" }, agents.map((a) => h("option", { value: a.id }, a.name || "Untitled agent")));
    const agentModel = h("select", { id: "experiment-agent-model" }, h("option", { value: "" }, "The agent's model"), models.map((m) => h("option", { value: m.id }, m.label ?? m.id)));
    const promptPick = h("select", { id: "experiment-prompt" }, prompts.map((p, i) => h("option", { value: String(i) }, p.name)));
    const versionPick = h("select", { id: "experiment-version" });
    const promptModel = h("select", { id: "experiment-model" }, models.map((m) => h("option", { value: m.id, selected: m.id === this.shell.models.default }, m.label ?? m.id)));
    const fillVersions = async () => {
      const prompt = prompts[Number(promptPick.value)];
      if (!prompt) return versionPick.replaceChildren();
      const detail = await api.get(`/api/prompts/${enc(prompt.name)}?account_id=${enc(prompt.account_id)}`).catch(() => ({ labels: {}, versions: [] }));
      const labels = Object.entries(detail.labels).map(([label, v]) => h("option", { value: `label:${label}`, selected: label === "production" }, `${label} (v${v})`));
      versionPick.replaceChildren(...labels, ...detail.versions.map((v) => h("option", { value: `version:${v.version}` }, `v${v.version}`)));
    };
    promptPick.addEventListener("change", fillVersions);
    const agentFields = h("div", { class: "field-row two target-agent" },
      h("div", { class: "field" }, h("label", { for: "experiment-agent" }, "Agent"), agentPick),
      h("div", { class: "field" }, h("label", { for: "experiment-agent-model" }, "Model"), agentModel));
    const promptFields = h("div", { class: "field-row target-prompt" },
      h("div", { class: "field" }, h("label", { for: "experiment-prompt" }, "Prompt"), promptPick),
      h("div", { class: "field" }, h("label", { for: "experiment-version" }, "Version"), versionPick),
      h("div", { class: "field" }, h("label", { for: "experiment-model" }, "Model"), promptModel));
    const checks = evaluators.map((e) => h("label", { class: "rule-row" },
      h("input", { type: "checkbox", value: e.id, "data-evaluator": e.name }), `${e.name} `, h("span", { class: "muted small" }, e.kind)));
    const form = h("form", { class: "agent-form", "aria-label": "New experiment" },
      h("div", { class: "field-row two" },
        h("div", { class: "field" }, h("label", { for: "experiment-name" }, "Name"), h("input", { id: "experiment-name", maxlength: "200", placeholder: "A name for this run (optional)" })),
        h("div", { class: "field" }, h("label", { for: "experiment-concurrency" }, "Concurrency"), h("input", { id: "experiment-concurrency", type: "number", min: "1", max: "20", value: "4" }))),
      h("div", { class: "inline-form", role: "radiogroup", "aria-label": "Run" }, kind("agent", "An agent (with its tools)"), kind("prompt", "A prompt version")),
      agentFields, promptFields,
      h("fieldset", { class: "tool-fieldset" }, h("legend", {}, "Evaluators"),
        checks.length ? checks : h("p", { class: "muted small" }, "No evaluators yet: ", h("a", { href: "/evaluators", "data-link": true }, "create one"), ".")),
      h("p", { class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", id: "run-experiment" }, "Run experiment")));
    const which = () => form.querySelector("[name=target-kind]:checked")?.value ?? "agent";
    const toggle = () => {
      agentFields.hidden = which() !== "agent";
      promptFields.hidden = which() !== "prompt";
    };
    for (const radio of form.querySelectorAll("[name=target-kind]")) radio.addEventListener("change", toggle);
    toggle();
    fillVersions();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errorBox(form).hidden = true;
      let target;
      if (which() === "agent") {
        target = { agent_id: agentPick.value };
        if (agentModel.value) target.model = agentModel.value;
      } else {
        const prompt = prompts[Number(promptPick.value)];
        const [by, value] = versionPick.value.split(/:(.*)/);
        target = { prompt: { name: prompt?.name, ...(by === "version" ? { version: Number(value) } : value ? { label: value } : {}) }, model: promptModel.value };
      }
      const body = {
        dataset_id: this.dataset.id,
        target,
        evaluators: checks.map((c) => c.querySelector("input")).filter((c) => c.checked).map((c) => c.value),
        concurrency: Number(form.querySelector("#experiment-concurrency").value || 4),
      };
      const name = form.querySelector("#experiment-name").value.trim();
      if (name) body.name = name;
      try {
        const created = await api.post("/api/experiments", body);
        this.shell.navigate(`/experiments/${enc(created.id)}`);
      } catch (failure) {
        showError(errorBox(form), failure);
      }
    });
    return form;
  }

  async removeItem(item) {
    try {
      const answer = await api.delete(`/api/datasets/${enc(this.dataset.id)}/items/${enc(item.id)}`);
      this.shell.toast(answer?.status === "archived" ? "Archived (a run used it)" : "Item removed");
      await this.showDataset(this.dataset.id);
    } catch (error) {
      this.shell.toast(`Not removed: ${error.message}`);
    }
  }

  async remove() {
    if (!window.confirm(`Delete the dataset ${this.dataset.name} with its items and runs?`)) return;
    try {
      await api.delete(`/api/datasets/${enc(this.dataset.id)}`);
      this.shell.navigate("/datasets");
    } catch (error) {
      this.shell.toast(`Not deleted: ${error.message}`);
    }
  }
}
