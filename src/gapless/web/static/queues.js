/**
 * Review queues: the account's queues (`/queues`, with a form for a new one:
 * its rules and the scores a reviewer gives) and the reviewer's page
 * (`/queues/{id}`): the next item's trace (question, answer, figures, links to
 * the trace and its chat), the queue's scores to give, then Skip or Done, and
 * the next item arrives. Everything a user or a model wrote is set as text.
 */
import { ApiError, api } from "./api.js";
import { fmt, h } from "./figures.js";

const enc = encodeURIComponent;

const RULES = [
  { kind: "thumbs_down", label: "A thumbs down" },
  { kind: "error", label: "An error" },
  { kind: "cost_above", label: "Cost above (USD)", value: "0.01" },
  { kind: "latency_above", label: "Latency above (ms)", value: "10000" },
  { kind: "score_below", label: "A score below", value: "0.5", name: true },
];

function countsText(counts) {
  return `${counts.pending} pending · ${counts.skipped} skipped · ${counts.done} done`;
}

/** The rule rows of the new-queue form, and how to read them back. */
function ruleFields() {
  const rows = RULES.map((rule) => {
    const check = h("input", { type: "checkbox", id: `rule-${rule.kind}`, "data-kind": rule.kind });
    const value = rule.value === undefined ? null : h("input", { type: "number", min: "0", step: "any", value: rule.value, "aria-label": `${rule.label} value` });
    const name = rule.name ? h("input", { type: "text", placeholder: "score name", maxlength: "100", "aria-label": "Score name" }) : null;
    return { rule, check, value, name, el: h("div", { class: "rule-row" }, check, h("label", { for: `rule-${rule.kind}` }, rule.label), name, value) };
  });
  const read = () =>
    rows.filter((row) => row.check.checked).map(({ rule, value, name }) => ({
      kind: rule.kind,
      ...(value ? { value: Number(value.value) } : {}),
      ...(name ? { name: name.value.trim() } : {}),
    }));
  return { el: h("fieldset", { class: "tool-fieldset" }, h("legend", {}, "Add traces with"), rows.map((r) => r.el)), read };
}

/** "correct:boolean, issue:categorical:facts|tone" → score configs. */
function parseScores(text) {
  return text.split(",").map((part) => part.trim()).filter(Boolean).map((part) => {
    const [name, dataType = "numeric", categories] = part.split(":").map((s) => s.trim());
    return { name, data_type: dataType, ...(categories ? { categories: categories.split("|").map((c) => c.trim()) } : {}) };
  });
}

export class QueuesView {
  constructor(shell) {
    this.shell = shell;
    this.root = h("div", { class: "evals-inner queues" });
  }

  hide() {
    this.root.replaceChildren();
  }

  async show(id) {
    try {
      if (id === undefined) await this.showList();
      else await this.showQueue(id);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        this.shell.setTitle("Queue not found");
        this.root.replaceChildren(h("p", { class: "muted" }, "This queue does not exist, or is not yours."));
      } else {
        this.shell.toast(`Couldn't load: ${error.message}`);
      }
    }
  }

  async showList() {
    this.shell.setTitle("Review queues");
    const { queues } = await api.get("/api/queues");
    const rules = ruleFields();
    const form = h("form", { class: "agent-form prompt-form", hidden: true, "aria-label": "New queue" },
      h("div", { class: "field" }, h("label", { for: "queue-name" }, "Name"), h("input", { id: "queue-name", required: true, maxlength: "200" })),
      h("div", { class: "field" }, h("label", { for: "queue-description" }, "Description"), h("input", { id: "queue-description", maxlength: "2000" })),
      rules.el,
      h("div", { class: "field" }, h("label", { for: "queue-scores" }, "Scores to give"),
        h("input", { id: "queue-scores", placeholder: "correct:boolean, issue:categorical:facts|tone|none, quality:numeric" })),
      h("div", { class: "field" }, h("label", { for: "queue-backfill" }, "Look back (days)"), h("input", { id: "queue-backfill", type: "number", min: "0", max: "90", value: "0" })),
      h("p", { class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary" }, "Create queue")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = form.querySelector(".form-error");
      error.hidden = true;
      try {
        const queue = await api.post("/api/queues", {
          name: form.querySelector("#queue-name").value.trim(),
          description: form.querySelector("#queue-description").value.trim() || null,
          rules: rules.read(),
          scores: parseScores(form.querySelector("#queue-scores").value),
          backfill_days: Number(form.querySelector("#queue-backfill").value || 0),
        });
        this.shell.navigate(`/queues/${enc(queue.id)}`);
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
    const rows = queues.map((q) =>
      h("tr", {},
        h("td", {}, h("a", { href: `/queues/${enc(q.id)}`, "data-link": true }, q.name)),
        h("td", {}, q.rules.map((r) => r.kind.replace("_", " ")).join(", ") || "by hand"),
        h("td", { class: "num" }, q.counts.pending),
        h("td", { class: "num" }, q.counts.done)));
    this.root.replaceChildren(
      h("div", { class: "observe-head" },
        h("p", { class: "muted" }, "Rules put traces in a queue; a reviewer steps through them and scores them."),
        h("div", { class: "exports" },
          h("a", { class: "button", href: "/api/scores/export?format=csv&source=annotation", download: "annotations.csv" }, "Annotations CSV"),
          h("a", { class: "button", href: "/api/scores/export?format=jsonl", download: "scores.jsonl" }, "Scores JSONL"),
          h("button", { type: "button", class: "button primary", onclick: () => { form.hidden = !form.hidden; } }, "New queue"))),
      form,
      queues.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "data" },
            h("thead", {}, h("tr", {}, h("th", {}, "Queue"), h("th", {}, "Rules"), h("th", { class: "num" }, "Pending"), h("th", { class: "num" }, "Done"))),
            h("tbody", {}, rows)))
        : h("p", { class: "muted list-empty" }, "No queues yet."));
  }

  async showQueue(id) {
    const queue = await api.get(`/api/queues/${enc(id)}`);
    this.queue = queue;
    this.shell.setTitle(queue.name);
    this.counts = h("span", { class: "muted", id: "queue-counts" }, countsText(queue.counts));
    this.stage = h("section", { class: "review-stage", "aria-label": "Item to review" });
    this.root.replaceChildren(
      h("div", { class: "observe-head" }, h("a", { href: "/queues", "data-link": true, class: "back-link" }, "← Queues"), this.counts),
      ...(queue.description ? [h("p", { class: "muted" }, queue.description)] : []),
      this.stage);
    this.draw(await api.post(`/api/queues/${enc(id)}/next`));
  }

  draw(step) {
    this.counts.textContent = countsText(step.counts);
    const item = step.item;
    if (!item) {
      this.stage.replaceChildren(h("p", { class: "muted review-empty" }, "Nothing left to review."));
      return;
    }
    const trace = item.trace;
    const inputs = this.queue.scores.map((config) => this.scoreInput(config));
    const comment = h("textarea", { id: "review-comment", rows: "2", maxlength: "5000", placeholder: "Optional note" });
    const send = async (action) => {
      const scores = action === "done" ? inputs.map((i) => i.read()).filter(Boolean) : [];
      if (scores.length && comment.value.trim()) scores[0].comment = comment.value.trim();
      try {
        this.draw(await api.post(`/api/queues/${enc(this.queue.id)}/items/${enc(item.id)}`, { action, scores }));
      } catch (failure) {
        this.shell.toast(`Not saved: ${failure.message}`);
      }
    };
    this.stage.replaceChildren(
      h("div", { class: "card review-item", "data-item": item.id, "data-trace": item.trace_id },
        h("div", { class: "observe-head" },
          h("strong", {}, `Added for: ${item.reason}`),
          h("span", { class: "exports" },
            h("a", { href: `/traces/${enc(item.trace_id)}`, "data-link": true }, "Trace"),
            trace ? h("a", { href: `/chats/${enc(trace.chat_id)}`, "data-link": true }, "Chat") : null)),
        trace
          ? h("dl", { class: "pairs" },
              h("dt", {}, "Status"), h("dd", {}, trace.status),
              h("dt", {}, "Model"), h("dd", {}, trace.model ?? "—"),
              h("dt", {}, "Cost"), h("dd", {}, fmt.cost(trace.cost)),
              h("dt", {}, "Duration"), h("dd", {}, fmt.ms(trace.duration_ms)),
              trace.error_code ? [h("dt", {}, "Error"), h("dd", {}, `${trace.error_code}: ${trace.error_message ?? ""}`)] : null)
          : h("p", { class: "muted" }, "This trace is no longer stored."),
        h("h3", {}, "Question"), h("pre", { class: "prompt-content review-input" }, trace?.input ?? "—"),
        h("h3", {}, "Answer"), h("pre", { class: "prompt-content review-output" }, trace?.output ?? "—"),
        item.scores.length
          ? h("p", { class: "small muted" }, "Scores so far: ", item.scores.map((s) => `${s.name} = ${s.value}${s.comment ? ` (“${s.comment}”)` : ""}`).join(" · "))
          : null,
        h("div", { class: "agent-form review-scores" }, inputs.map((i) => i.el),
          h("div", { class: "field" }, h("label", { for: "review-comment" }, "Note"), comment)),
        h("div", { class: "form-actions" },
          h("button", { type: "button", class: "button", onclick: () => send("skip") }, "Skip"),
          h("button", { type: "button", class: "button primary", onclick: () => send("done") }, "Done"))));
  }

  /** An input for one score the queue asks for; `read()` answers the score or null. */
  scoreInput(config) {
    const id = `score-${config.name}`;
    let input;
    let read;
    if (config.data_type === "boolean") {
      input = h("select", { id }, h("option", { value: "" }, "—"), h("option", { value: "true" }, "Yes"), h("option", { value: "false" }, "No"));
      read = () => (input.value === "" ? null : input.value === "true");
    } else if (config.data_type === "categorical") {
      input = config.categories?.length
        ? h("select", { id }, h("option", { value: "" }, "—"), config.categories.map((c) => h("option", { value: c }, c)))
        : h("input", { id, maxlength: "200" });
      read = () => input.value.trim() || null;
    } else {
      input = h("input", { id, type: "number", step: "any" });
      read = () => (input.value === "" ? null : Number(input.value));
    }
    return {
      el: h("div", { class: "field" }, h("label", { for: id }, config.name), input),
      read: () => {
        const value = read();
        return value === null ? null : { name: config.name, data_type: config.data_type, value };
      },
    };
  }
}
