/**
 * The prompts pages: the account's prompts (`/prompts`, with a form for a new
 * one) and one prompt (`/prompts/{name}`): its labels, its versions, a version
 * whole, a form for the next version, moving a label, the label history, and
 * two versions side by side, diffed line by line (and word by word inside a
 * changed line) with jsdiff. The server hands both texts; the diff is drawn
 * here. Everything a user wrote is set as text.
 */
import { diffLines, diffWordsWithSpace } from "diff";
import { ApiError, api, request } from "./api.js";
import { fmt, h } from "./figures.js";

const enc = encodeURIComponent;

/** `?account_id=` of the current page, carried to every call about this prompt. */
function accountQuery() {
  const account = new URLSearchParams(location.search).get("account_id");
  return account ? `?account_id=${enc(account)}` : "";
}

function lines(text) {
  return text === "" ? [] : text.replace(/\n$/, "").split("\n");
}

/** Rows of a side-by-side diff: {left, right, kind} with line numbers. */
export function sideBySide(oldText, newText) {
  const rows = [];
  let a = 1;
  let b = 1;
  // jsdiff tells "c" from "c\n": a last line without its newline would never match
  const ended = (text) => (text === "" || text.endsWith("\n") ? text : `${text}\n`);
  const changes = diffLines(ended(oldText), ended(newText));
  for (let i = 0; i < changes.length; i += 1) {
    const change = changes[i];
    const here = lines(change.value);
    if (change.removed && changes[i + 1]?.added) {
      const there = lines(changes[i + 1].value);
      for (let k = 0; k < Math.max(here.length, there.length); k += 1) {
        const left = here[k] ?? null;
        const right = there[k] ?? null;
        rows.push({ kind: "changed", left, right, a: left === null ? null : a++, b: right === null ? null : b++ });
      }
      i += 1;
    } else if (change.removed) {
      for (const left of here) rows.push({ kind: "removed", left, right: null, a: a++, b: null });
    } else if (change.added) {
      for (const right of here) rows.push({ kind: "added", left: null, right, a: null, b: b++ });
    } else {
      for (const line of here) rows.push({ kind: "same", left: line, right: line, a: a++, b: b++ });
    }
  }
  return rows;
}

/** One side of a changed line, its changed words marked. */
function marked(left, right, side) {
  if (left === null || right === null) return [side === "left" ? left ?? "" : right ?? ""];
  return diffWordsWithSpace(left, right)
    .filter((part) => (side === "left" ? !part.added : !part.removed))
    .map((part) => (part.added || part.removed ? h(side === "left" ? "del" : "ins", {}, part.value) : part.value));
}

function diffTable(oldText, newText, caption) {
  const rows = sideBySide(oldText, newText);
  const body = rows.map((row) => {
    const leftKind = row.left === null ? "empty" : row.kind === "same" ? "same" : "del";
    const rightKind = row.right === null ? "empty" : row.kind === "same" ? "same" : "ins";
    return h("tr", { class: `diff-${row.kind}` },
      h("td", { class: "diff-no" }, row.a ?? ""),
      h("td", { class: `diff-text diff-${leftKind}` }, ...(row.kind === "changed" ? marked(row.left, row.right, "left") : [row.left ?? ""])),
      h("td", { class: "diff-no" }, row.b ?? ""),
      h("td", { class: `diff-text diff-${rightKind}` }, ...(row.kind === "changed" ? marked(row.left, row.right, "right") : [row.right ?? ""])),
    );
  });
  const changed = rows.filter((row) => row.kind !== "same").length;
  return h("div", { class: "diff-wrap" },
    h("table", { class: "diff", "aria-label": caption },
      h("caption", { class: "muted small" }, `${caption}: ${changed === 0 ? "no changes" : `${changed} line${changed === 1 ? "" : "s"} changed`}`),
      h("tbody", {}, body)),
  );
}

function configText(config) {
  return Object.entries(config ?? {}).map(([key, value]) => `${key}: ${value}`).join("\n");
}

function labelChips(labels, onClick) {
  return Object.entries(labels)
    .sort(([a], [b]) => (a === "latest" ? 1 : b === "latest" ? -1 : a.localeCompare(b)))
    .map(([label, version]) =>
      h(onClick ? "button" : "span", { type: onClick ? "button" : undefined, class: `chip chip-${label === "production" ? "prod" : label === "latest" ? "latest" : "other"}`, onclick: onClick ? () => onClick(version) : undefined }, `${label} · v${version}`));
}

/** The fields of a version form (content, config, message, labels) as the API takes them. */
function versionBody(form) {
  const value = (name) => form.querySelector(`[name=${name}]`).value.trim();
  const config = {};
  if (value("model")) config.model = value("model");
  if (value("temperature")) config.temperature = Number(value("temperature"));
  if (value("max_tokens")) config.max_tokens = Number.parseInt(value("max_tokens"), 10);
  return {
    content: form.querySelector("[name=content]").value,
    config,
    message: value("message") || null,
    labels: value("labels").split(",").map((l) => l.trim()).filter(Boolean),
  };
}

function versionFields(models, version) {
  const config = version?.config ?? {};
  const options = [h("option", { value: "" }, "—"), ...models.map((m) => h("option", { value: m.id, selected: m.id === config.model }, m.label ?? m.id))];
  return [
    h("div", { class: "field" }, h("label", { for: "prompt-content" }, "Template"),
      h("textarea", { id: "prompt-content", name: "content", rows: "8", required: true, class: "mono", placeholder: "You are a helpful assistant for {{ product }}." }, version?.content ?? "")),
    h("div", { class: "field-row" },
      h("div", { class: "field" }, h("label", { for: "prompt-model" }, "Model"), h("select", { id: "prompt-model", name: "model" }, options)),
      h("div", { class: "field" }, h("label", { for: "prompt-temperature" }, "Temperature"),
        h("input", { id: "prompt-temperature", name: "temperature", type: "number", min: "0", max: "2", step: "0.1", value: config.temperature ?? "" })),
      h("div", { class: "field" }, h("label", { for: "prompt-max-tokens" }, "Max tokens"),
        h("input", { id: "prompt-max-tokens", name: "max_tokens", type: "number", min: "1", value: config.max_tokens ?? "" })),
    ),
    h("div", { class: "field-row two" },
      h("div", { class: "field" }, h("label", { for: "prompt-message" }, "Commit message"), h("input", { id: "prompt-message", name: "message", maxlength: "2000", placeholder: "What changed" })),
      h("div", { class: "field" }, h("label", { for: "prompt-labels" }, "Labels"), h("input", { id: "prompt-labels", name: "labels", placeholder: "production, staging" })),
    ),
  ];
}

export class PromptsView {
  constructor(shell) {
    this.shell = shell;
    this.root = h("div", { class: "evals-inner" });
    this.prompt = null;
  }

  async show(name) {
    try {
      if (name === undefined) await this.showList();
      else await this.showPrompt(name);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        this.shell.setTitle("Prompt not found");
        this.root.replaceChildren(h("p", { class: "muted" }, "This prompt does not exist, or is not yours."), h("a", { href: "/prompts", "data-link": true }, "All prompts"));
      } else {
        this.shell.toast(`Couldn't load: ${error.message}`);
      }
    }
  }

  hide() {
    this.root.replaceChildren();
    this.prompt = null;
  }

  link(prompt) {
    return `/prompts/${enc(prompt.name)}?account_id=${enc(prompt.account_id)}`;
  }

  async showList() {
    this.shell.setTitle("Prompts");
    const { prompts } = await api.get("/api/prompts");
    const form = h("form", { class: "agent-form prompt-form", hidden: true, "aria-label": "New prompt" },
      h("div", { class: "field" }, h("label", { for: "prompt-name" }, "Name"),
        h("input", { id: "prompt-name", name: "name", required: true, maxlength: "100", pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*", placeholder: "support-agent" })),
      ...versionFields(this.shell.models.models, null),
      h("p", { class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary" }, "Create prompt")),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create(form);
    });
    const rows = prompts.map((p) =>
      h("tr", {},
        h("td", {}, h("a", { href: this.link(p), "data-link": true, class: "prompt-link" }, p.name)),
        h("td", { class: "num" }, p.latest_version ? `v${p.latest_version}` : "—"),
        h("td", {}, labelChips(Object.fromEntries(Object.entries(p.labels).filter(([l]) => l !== "latest")))),
        h("td", { class: "nowrap" }, fmt.when(p.updated_at)),
      ));
    this.root.replaceChildren(
      h("div", { class: "observe-head" },
        h("p", { class: "muted" }, "Versioned prompts with labels. An agent can take its instructions from one."),
        h("div", { class: "exports" },
          h("a", { href: "/playground", "data-link": true, class: "button" }, "Playground"),
          h("button", { type: "button", class: "button primary", id: "new-prompt", onclick: () => { form.hidden = !form.hidden; if (!form.hidden) form.querySelector("input").focus(); } }, "New prompt"))),
      form,
      prompts.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "data prompts" },
            h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", { class: "num" }, "Latest"), h("th", {}, "Labels"), h("th", {}, "Updated"))),
            h("tbody", {}, rows)))
        : h("p", { class: "muted list-empty" }, "No prompts yet."),
    );
  }

  async remove(base, query, name) {
    if (!window.confirm(`Delete the prompt ${name} with all its versions? Agents that use it will fail to start.`)) return;
    try {
      await api.delete(base + query);
      this.shell.navigate("/prompts");
    } catch (failure) {
      this.shell.toast(`Not deleted: ${failure.message}`);
    }
  }

  async create(form) {
    const error = form.querySelector(".form-error");
    error.hidden = true;
    try {
      const created = await api.post("/api/prompts", { name: form.querySelector("[name=name]").value.trim(), ...versionBody(form) });
      this.shell.navigate(this.link(created));
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  }

  async showPrompt(name, selected) {
    const query = accountQuery();
    const base = `/api/prompts/${enc(name)}`;
    const [prompt, history, agents] = await Promise.all([
      api.get(base + query),
      api.get(`${base}/history${query}`),
      api.get("/api/agents").then((found) => found.agents).catch(() => []),
    ]);
    const users = agents.filter((a) => a.prompt?.name === prompt.name && a.account_id === prompt.account_id);
    this.prompt = prompt;
    this.shell.setTitle(prompt.name);
    const numbers = prompt.versions.map((v) => v.version);
    const current = selected ?? prompt.labels.production ?? prompt.labels.latest;
    const version = await api.get(`${base}/versions/${current}${query}`);
    const older = numbers.includes(current - 1) ? current - 1 : numbers.at(-1);

    const versionRows = prompt.versions.map((v) =>
      h("tr", { class: v.version === current ? "selected" : "", "data-version": v.version },
        h("td", { class: "num" }, h("button", { type: "button", class: "link", onclick: () => this.showPrompt(name, v.version) }, `v${v.version}`)),
        h("td", {}, v.message || h("span", { class: "muted" }, "—")),
        h("td", {}, labelChips(Object.fromEntries(v.labels.map((l) => [l, v.version])))),
        h("td", { class: "nowrap" }, fmt.when(v.created_at)),
      ));

    const playground = `/playground?prompt=${enc(prompt.name)}&version=${current}&account_id=${enc(prompt.account_id)}`;
    const panel = h("section", { class: "card version-panel", "aria-label": `Version ${current}` },
      h("div", { class: "observe-head" },
        h("h2", {}, `Version ${current}`, " ", ...labelChips(Object.fromEntries(version.labels.map((l) => [l, current])))),
        h("a", { href: playground, "data-link": true, class: "button small", id: "open-playground" }, "Open in playground")),
      h("pre", { class: "prompt-content" }, version.content),
      h("dl", { class: "pairs" },
        h("dt", {}, "Variables"), h("dd", {}, version.variables.length ? version.variables.join(", ") : "none"),
        h("dt", {}, "Config"), h("dd", {}, configText(version.config) || "none"),
        h("dt", {}, "Author"), h("dd", {}, version.author ?? "—"),
        h("dt", {}, "Message"), h("dd", {}, version.message || "—")));

    const labelInput = h("input", { name: "label", id: "move-label", required: true, list: "known-labels", placeholder: "production", maxlength: "50" });
    const versionPick = h("select", { name: "version", id: "move-version" }, numbers.map((n) => h("option", { value: n, selected: n === current }, `v${n}`)));
    const move = h("form", { class: "inline-form", "aria-label": "Move a label" },
      h("label", { for: "move-label" }, "Label"), labelInput,
      h("datalist", { id: "known-labels" }, Object.keys(prompt.labels).filter((l) => l !== "latest").map((l) => h("option", { value: l }))),
      h("label", { for: "move-version" }, "to"), versionPick,
      h("button", { type: "submit", class: "button small primary" }, "Move label"));
    move.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await putLabel(base, query, labelInput.value.trim(), Number(versionPick.value));
        this.shell.toast(`${labelInput.value.trim()} → v${versionPick.value}`);
        await this.showPrompt(name, Number(versionPick.value));
      } catch (failure) {
        this.shell.toast(`Label not moved: ${failure.message}`);
      }
    });

    const form = h("form", { class: "agent-form prompt-form", "aria-label": "New version" },
      ...versionFields(this.shell.models.models, version),
      h("p", { class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary" }, "Save new version")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = form.querySelector(".form-error");
      error.hidden = true;
      try {
        const saved = await api.post(`${base}/versions${query}`, versionBody(form));
        this.shell.toast(`Saved version ${saved.version}`);
        await this.showPrompt(name, saved.version);
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });

    const oldPick = h("select", { id: "diff-old", "aria-label": "Old version" }, numbers.map((n) => h("option", { value: n, selected: n === older }, `v${n}`)));
    const newPick = h("select", { id: "diff-new", "aria-label": "New version" }, numbers.map((n) => h("option", { value: n, selected: n === current }, `v${n}`)));
    const diffOut = h("div", { class: "diff-out" });
    const compare = async () => {
      const pair = await api.get(`${base}/diff${query}${query ? "&" : "?"}old=${oldPick.value}&new=${newPick.value}`);
      diffOut.replaceChildren(
        diffTable(pair.old.content, pair.new.content, `Template v${pair.old.version} → v${pair.new.version}`),
        diffTable(configText(pair.old.config), configText(pair.new.config), "Config"));
    };
    oldPick.addEventListener("change", compare);
    newPick.addEventListener("change", compare);

    const historyRows = history.moves.map((m) =>
      h("tr", {},
        h("td", {}, m.label),
        h("td", {}, m.from_version === null ? "—" : `v${m.from_version}`),
        h("td", {}, m.to_version === null ? "removed" : `v${m.to_version}`),
        h("td", {}, m.moved_by ?? "—"),
        h("td", { class: "nowrap" }, fmt.when(m.moved_at))));

    this.root.replaceChildren(
      h("div", { class: "observe-head" },
        h("a", { href: "/prompts", "data-link": true, class: "back-link" }, "← Prompts"),
        h("div", { class: "chips", "aria-label": "Labels" }, labelChips(prompt.labels, (v) => this.showPrompt(name, v))),
        h("button", { type: "button", class: "button small danger", onclick: () => this.remove(base, query, prompt.name) }, "Delete prompt")),
      h("p", { class: "small muted used-by" }, users.length
        ? ["Used by ", ...users.flatMap((a, i) => [i ? ", " : "", h("a", { href: `/agents/${enc(a.id)}`, "data-link": true }, a.name),
            ` (${a.prompt.version ? `v${a.prompt.version}` : a.prompt.label ?? "production"})`])]
        : "No agent takes its instructions from this prompt yet."),
      h("div", { class: "prompt-grid" },
        h("section", { "aria-label": "Versions" }, h("h2", {}, "Versions"),
          h("div", { class: "table-wrap" }, h("table", { class: "data versions" },
            h("thead", {}, h("tr", {}, h("th", {}, "Version"), h("th", {}, "Message"), h("th", {}, "Labels"), h("th", {}, "Created"))),
            h("tbody", {}, versionRows)))),
        panel),
      h("section", { "aria-label": "Labels" }, h("h2", {}, "Move a label"), move),
      h("section", { "aria-label": "Compare versions" }, h("h2", {}, "Compare"),
        h("div", { class: "inline-form" }, oldPick, h("span", {}, "→"), newPick), diffOut),
      h("section", { "aria-label": "New version" }, h("h2", {}, "New version"), form),
      h("section", { "aria-label": "Label history" }, h("h2", {}, "Label history"),
        h("div", { class: "table-wrap" }, h("table", { class: "data history" },
          h("thead", {}, h("tr", {}, h("th", {}, "Label"), h("th", {}, "From"), h("th", {}, "To"), h("th", {}, "By"), h("th", {}, "When"))),
          h("tbody", {}, historyRows)))),
    );
    await compare();
  }
}

/** PUT is not among `api`'s shortcuts: `request` of api.js, with its CSRF header. */
function putLabel(base, query, label, version) {
  return request("PUT", `${base}/labels/${enc(label)}${query}`, { version });
}
