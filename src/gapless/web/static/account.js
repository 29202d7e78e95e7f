/**
 * Credentials in the web app: `/settings` (one's own password, browser sessions
 * and API tokens) and `/admin` (accounts, their members and roles, invitations
 * by link or a first password; users, for a site admin). The view builds its
 * own section, sidebar links and stylesheet, so the page's markup stays as it is.
 *
 * Everything a user wrote (names, emails, a browser's description) is set as text.
 */
import { ApiError, api, request } from "./api.js";

/** An element with a class and text (text is never parsed as markup). */
function el(tag, className = "", text = "") {
  const found = document.createElement(tag);
  if (className) found.className = className;
  if (text) found.textContent = text;
  return found;
}

/** A labelled input. */
function field(label, type, name, attributes = {}) {
  const wrap = el("label", "account-field");
  wrap.append(el("span", "", label));
  const input = el("input");
  input.type = type;
  input.name = name;
  for (const [key, value] of Object.entries(attributes)) input.setAttribute(key, value);
  wrap.append(input);
  return wrap;
}

function button(text, className = "button") {
  const found = el("button", className, text);
  found.type = "button";
  return found;
}

/** "Chrome 156 on Linux" from a User-Agent (the whole of it in the cell's tooltip). */
function browserName(agent) {
  if (!agent) return "Unknown browser";
  const browser = agent.match(/(Firefox|Edg|OPR|Chrome|Version)\/(\d+)/);
  const system = agent.match(/Windows|Mac OS X|Android|iPhone|iPad|Linux/);
  const name = browser ? `${browser[1] === "Version" ? "Safari" : browser[1] === "Edg" ? "Edge" : browser[1]} ${browser[2]}` : agent.slice(0, 40);
  return system ? `${name} on ${system[0].replace("Mac OS X", "macOS")}` : name;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** A table of `rows`, each a list of cells (strings or elements). */
function table(headings, rows) {
  const wrap = el("div", "table-wrap");
  const found = el("table", "generations account-table");
  const head = el("tr");
  for (const text of headings) head.append(el("th", "", text));
  found.append(el("thead"));
  found.tHead.append(head);
  const body = el("tbody");
  for (const cells of rows) {
    const row = el("tr");
    for (const cell of cells) {
      const td = el("td");
      td.append(cell instanceof Node ? cell : document.createTextNode(String(cell ?? "")));
      row.append(td);
    }
    body.append(row);
  }
  found.append(body);
  wrap.append(found);
  return wrap;
}

export class AccountView {
  /** @param {object} shell  `setTitle(text)`, `toast(text)`, `navigate(path)` */
  constructor(shell) {
    this.shell = shell;
    this.root = el("section", "generations-view account-view");
    this.root.id = "account-view";
    this.root.hidden = true;
    document.querySelector(".main")?.append(this.root);
    const style = el("link");
    style.rel = "stylesheet";
    style.href = "/static/account.css";
    document.head.append(style);
    this.links();
  }

  static serves(path) {
    return path === "/settings" || path === "/admin";
  }

  /** Settings and Accounts in the sidebar, above the signed-in user. */
  links() {
    const foot = document.querySelector(".sidebar-foot");
    const account = foot?.querySelector(".account");
    if (!foot || !account || document.getElementById("settings-link")) return;
    for (const [id, href, text] of [
      ["admin-link", "/admin", "Accounts"],
      ["settings-link", "/settings", "Settings"],
    ]) {
      const link = el("a", "side-link", text);
      link.id = id;
      link.href = href;
      link.dataset.link = "";
      foot.insertBefore(link, account);
    }
  }

  async show(path) {
    this.root.hidden = false;
    for (const id of ["admin-link", "settings-link"]) document.getElementById(id)?.removeAttribute("aria-current");
    document.getElementById(path === "/admin" ? "admin-link" : "settings-link")?.setAttribute("aria-current", "page");
    const inner = el("div", "generations-inner account-inner");
    this.root.replaceChildren(inner);
    try {
      if (path === "/admin") await this.admin(inner);
      else await this.settings(inner);
    } catch (error) {
      inner.append(el("p", "form-error", error.message));
    }
  }

  hide() {
    this.root.hidden = true;
    this.root.replaceChildren();
    for (const id of ["admin-link", "settings-link"]) document.getElementById(id)?.removeAttribute("aria-current");
  }

  /** A form whose submit runs `action(values)`, showing its error or `done` text. */
  form(title, fields, submitText, action) {
    const form = el("form", "account-card");
    form.noValidate = true;
    form.append(el("h2", "", title), ...fields);
    const message = el("p", "form-error");
    message.hidden = true;
    message.setAttribute("role", "alert");
    const submit = el("button", "button primary", submitText);
    submit.type = "submit";
    form.append(message, submit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.hidden = true;
      submit.disabled = true;
      try {
        await action(Object.fromEntries(new FormData(form)), form);
      } catch (error) {
        message.textContent = error instanceof ApiError ? error.message : String(error);
        message.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  async settings(inner) {
    this.shell.setTitle("Settings");
    const [sessions, tokens] = await Promise.all([api.get("/api/me/sessions"), api.get("/api/me/tokens")]);
    inner.append(
      this.form(
        "Password",
        [
          field("Current password", "password", "current", { autocomplete: "current-password", required: "" }),
          field("New password", "password", "new", { autocomplete: "new-password", required: "", minlength: "12" }),
          field("Repeat the new password", "password", "again", { autocomplete: "new-password", required: "" }),
          el("p", "muted small", "At least 12 characters; common and easily guessed passwords are refused. Your other sessions are signed out."),
        ],
        "Change password",
        async (values, form) => {
          if (values.new !== values.again) throw new Error("The new passwords differ.");
          await request("PUT", "/api/me/password", { current: values.current, new: values.new });
          form.reset();
          this.shell.toast("Password changed; your other sessions are signed out.");
          await this.show("/settings");
        },
      ),
    );
    inner.firstElementChild.id = "password-form";
    const sessionsCard = el("section", "account-card");
    sessionsCard.id = "sessions";
    sessionsCard.append(el("h2", "", "Sessions"));
    sessionsCard.append(
      table(
        ["Browser", "Signed in", "Last used", ""],
        sessions.sessions.map((s) => {
          const end = s.current ? el("span", "status status-complete", "This browser") : button("Sign out", "link-button");
          end.dataset.session = s.id;
          const name = el("span", "", browserName(s.name));
          name.title = s.name;
          return [name, when(s.created_at), when(s.last_used_at), end];
        }),
      ),
    );
    const everywhere = button("Sign out everywhere");
    everywhere.id = "sign-out-everywhere";
    sessionsCard.append(everywhere);
    sessionsCard.addEventListener("click", async (event) => {
      const target = event.target.closest("button");
      if (!target) return;
      if (target === everywhere) {
        await api.delete("/api/me/sessions"); // this one too: back to the sign-in page
        window.dispatchEvent(new CustomEvent("gapless:signed-out"));
        return;
      }
      await api.delete(`/api/me/sessions/${encodeURIComponent(target.dataset.session)}`);
      await this.show("/settings");
    });
    inner.append(sessionsCard);
    inner.append(this.tokens(tokens.tokens));
  }

  tokens(list) {
    const card = el("section", "account-card");
    card.id = "tokens";
    card.append(el("h2", "", "API tokens"));
    card.append(
      table(
        ["Name", "Created", "Expires", "Last used", ""],
        list.map((t) => {
          const revoke = button("Revoke", "link-button");
          revoke.dataset.token = t.id;
          return [t.name || "(unnamed)", when(t.created_at), t.expires_at ? when(t.expires_at) : "never", when(t.last_used_at), revoke];
        }),
      ),
    );
    card.addEventListener("click", async (event) => {
      const target = event.target.closest("button[data-token]");
      if (!target) return;
      await api.delete(`/api/me/tokens/${encodeURIComponent(target.dataset.token)}`);
      await this.show("/settings");
    });
    const secret = el("p", "account-secret");
    secret.hidden = true;
    const create = this.form(
      "New token",
      [field("Name", "text", "name", { required: "", maxlength: "200" }), field("Expires after (days, empty: never)", "number", "days", { min: "1" })],
      "Create token",
      async (values) => {
        const made = await api.post("/api/me/tokens", {
          name: values.name.trim(),
          expires_in_days: values.days ? Number(values.days) : null,
        });
        await this.show("/settings");
        const shown = el("p", "account-secret");
        shown.id = "new-token";
        shown.textContent = made.token;
        this.root.querySelector(".account-inner")?.prepend(el("p", "muted", "Copy the new token now: it is not shown again."), shown);
      },
    );
    card.append(secret, create);
    return card;
  }

  async admin(inner) {
    this.shell.setTitle("Accounts");
    const me = (await api.get("/api/session")).user;
    const accounts = (await api.get("/api/accounts")).accounts;
    const managed = accounts.filter((a) => me.site_admin || a.role === "owner");
    if (me.site_admin) {
      inner.append(
        this.form("New account", [field("Name", "text", "name", { required: "", maxlength: "200" })], "Create account", async (values) => {
          await api.post("/api/accounts", { name: values.name.trim() });
          await this.show("/admin");
        }),
      );
    }
    if (!managed.length) inner.append(el("p", "muted", "You own no account: its owners manage its members."));
    for (const account of managed) inner.append(await this.members(account));
    if (me.site_admin) inner.append(await this.users(me));
  }

  async members(account) {
    const card = el("section", "account-card");
    card.dataset.account = account.id;
    card.append(el("h2", "", account.name));
    const path = `/api/accounts/${encodeURIComponent(account.id)}/members`;
    const { members } = await api.get(path);
    card.append(
      table(
        ["Email", "Name", "Role", ""],
        members.map((m) => {
          const role = el("select", "member-role");
          for (const value of ["owner", "member"]) {
            const option = el("option", "", value);
            option.value = value;
            option.selected = m.role === value;
            role.append(option);
          }
          role.dataset.user = m.id;
          const remove = button("Remove", "link-button");
          remove.dataset.remove = m.id;
          return [m.email, m.name, role, remove];
        }),
      ),
    );
    card.addEventListener("change", async (event) => {
      const role = event.target.closest("select.member-role");
      if (!role) return;
      try {
        await request("PATCH", `${path}/${encodeURIComponent(role.dataset.user)}`, { role: role.value });
        this.shell.toast("Role changed.");
      } catch (error) {
        this.shell.toast(error.message);
      }
      await this.show("/admin");
    });
    card.addEventListener("click", async (event) => {
      const remove = event.target.closest("button[data-remove]");
      if (!remove) return;
      try {
        await api.delete(`${path}/${encodeURIComponent(remove.dataset.remove)}`);
      } catch (error) {
        this.shell.toast(error.message);
      }
      await this.show("/admin");
    });
    card.append(
      this.form(
        "Add a member",
        [
          field("Email", "email", "email", { required: "" }),
          field("Name", "text", "name", { maxlength: "200" }),
          field("First password (empty: an invitation link)", "password", "password", { autocomplete: "new-password" }),
        ],
        "Add member",
        async (values) => {
          const added = await api.post(path, {
            email: values.email.trim(),
            name: values.name.trim(),
            password: values.password || null,
          });
          await this.show("/admin");
          if (added.invite) {
            const link = el("p", "account-secret", `${location.origin}/invite#${added.invite}`);
            link.id = "invite-link";
            this.root.querySelector(".account-inner")?.prepend(el("p", "muted", "Send this invitation link (valid 7 days):"), link);
          }
        },
      ),
    );
    return card;
  }

  async users(me) {
    const card = el("section", "account-card");
    card.append(el("h2", "", "Users"));
    const { users } = await api.get("/api/users");
    card.append(
      table(
        ["Email", "Name", "Site admin", "Password", ""],
        users.map((u) => {
          const remove = u.id === me.id ? "" : button("Delete", "link-button");
          if (remove) remove.dataset.user = u.id;
          return [u.email, u.name, u.site_admin ? "yes" : "", u.has_password ? "set" : "invited", remove];
        }),
      ),
    );
    card.addEventListener("click", async (event) => {
      const target = event.target.closest("button[data-user]");
      if (!target) return;
      await api.delete(`/api/users/${encodeURIComponent(target.dataset.user)}`);
      await this.show("/admin");
    });
    return card;
  }
}
