/**
 * The page: signs in, routes (`/`, `/login`, `/chats/{id}`, `/generations`,
 * and each view's own pages) with history.pushState (a link's query kept),
 * and holds the shell the views share: the chat list fed by the account
 * stream, the connection state and the toasts.
 */
import { AccountView } from "./account.js";
import { AgentsView } from "./agents.js";
import { ApiError, api, setCsrfToken } from "./api.js";
import { ChatView } from "./chat.js";
import { EvalsView } from "./evals.js";
import { AccountFeed } from "./feed.js";
import { GenerationsView } from "./generations.js";
import { ObserveView } from "./observe.js";
import { RunsView } from "./runs.js";
import { Sidebar } from "./sidebar.js";

const $ = (id) => document.getElementById(id);

const CONNECTION_TEXT = { connecting: "Connecting", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

class App {
  constructor() {
    this.user = null;
    /** @type {AccountFeed|null} */
    this.account = null;
    this.models = { models: [], default: null };
    this.agents = { agents: [] };
    this.toastTimer = 0;
    const shell = {
      models: this.models,
      agents: this.agents,
      agentsChanged: () => this.chatView.fillAgents(this.chatView.chat?.agent_id ?? this.chatView.draft.agent_id),
      account: null,
      navigate: (path, options) => this.navigate(path, options),
      setTitle: (text) => this.setTitle(text),
      setConnection: (state) => this.setConnection(state),
      toast: (text) => this.toast(text),
    };
    this.shell = shell;
    this.chatView = new ChatView(shell);
    this.generations = new GenerationsView(shell);
    this.agentsView = new AgentsView(shell);
    this.observe = new ObserveView(shell);
    this.evals = new EvalsView(shell);
    this.runs = new RunsView(shell);
    this.accountView = new AccountView(shell);
    this.sidebar = new Sidebar({
      navigate: shell.navigate,
      toast: shell.toast,
      currentChat: () => this.chatView.chatId,
      account: () => this.account,
    });
    this.bind();
  }

  bind() {
    document.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-link]");
      if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      const url = new URL(link.href);
      this.navigate(url.pathname + url.search); // a trace's "Open chat" names its reply
    });
    window.addEventListener("popstate", () => this.route());
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn();
    });
    $("sign-out").addEventListener("click", () => this.signOut());
    window.addEventListener("gapless:signed-out", () => {
      if (this.user !== null) this.leave();
    });
    $("open-sidebar").addEventListener("click", () => this.drawer(true));
    $("close-sidebar").addEventListener("click", () => this.drawer(false));
    $("scrim").addEventListener("click", () => this.drawer(false));
    $("open-settings").addEventListener("click", () => this.openSettings());
    $("settings-cancel").addEventListener("click", () => $("settings").close());
    $("settings-form").addEventListener("submit", () => {
      this.chatView.saveSettings({
        title: $("settings-title-input").value.trim(),
        system_prompt: $("system-prompt").value,
      });
    });
  }

  async start() {
    try {
      const session = await api.get("/api/session");
      await this.enter(session);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.showLogin();
      else this.fatal(error);
    }
    $("boot").remove();
  }

  /** Signed in: load models, follow the account stream, show the route. */
  async enter(session) {
    this.user = session.user;
    setCsrfToken(session.csrf_token);
    const models = await api.get("/api/models");
    this.models.models = models.models;
    this.models.default = models.default;
    try {
      this.agents.agents = (await api.get("/api/agents")).agents;
    } catch {
      this.agents.agents = []; // a server without agents: the picker stays hidden
    }
    $("account-email").textContent = this.user.email;
    $("account-avatar").textContent = (this.user.name || this.user.email || "?").slice(0, 1).toUpperCase();
    this.account = new AccountFeed({
      onChats: (chats) => this.sidebar.show(chats),
      onConnection: (state) => {
        if (this.chatView.feed === null) this.setConnection(state === "live" ? null : state);
      },
    });
    this.shell.account = this.account;
    this.account.start();
    $("login-view").hidden = true;
    $("shell").hidden = false;
    if (location.pathname === "/login") history.replaceState(null, "", "/");
    await this.route();
  }

  showLogin() {
    $("shell").hidden = true;
    $("login-view").hidden = false;
    if (location.pathname !== "/login") history.replaceState({ next: location.pathname }, "", "/login");
    document.title = "Sign in · Gapless";
    $("login-email").focus();
  }

  async signIn() {
    const error = $("login-error");
    const submit = $("login-form").querySelector("[type=submit]");
    error.hidden = true;
    submit.disabled = true;
    try {
      const next = history.state?.next;
      const session = await api.post("/api/session", {
        email: $("login-email").value.trim(),
        password: $("login-password").value,
      });
      $("login-password").value = "";
      history.replaceState(null, "", next && next !== "/login" ? next : "/");
      await this.enter(session);
    } catch (failure) {
      error.textContent =
        failure instanceof ApiError && failure.status === 401 ? "Wrong email or password." : failure.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  }

  async signOut() {
    try {
      await api.delete("/api/session");
    } catch {
      // signed out already, or offline: show the sign-in page either way
    }
    this.leave();
  }

  /** Drop everything of the signed-in user and show the sign-in page. */
  leave() {
    this.user = null;
    this.account?.close();
    this.account = null;
    this.chatView.reset();
    this.sidebar.show([]);
    setCsrfToken("");
    this.showLogin();
  }

  /**
   * Go to `path`. `replace` rewrites the current entry; `quiet` only changes
   * the address (the view already shows it).
   */
  navigate(path, { replace = false, quiet = false } = {}) {
    if (path !== location.pathname + location.search) {
      if (replace) history.replaceState(null, "", path);
      else history.pushState(null, "", path);
    }
    this.drawer(false);
    if (quiet) this.sidebar.highlight();
    else this.route();
  }

  async route() {
    if (this.user === null) return this.showLogin();
    const path = location.pathname;
    const chat = path.match(/^\/chats\/([^/]+)$/);
    const agents = path.match(/^\/agents(?:\/([^/]+))?$/);
    $("open-settings").hidden = path === "/generations" || agents !== null || ObserveView.serves(path);
    if (AccountView.serves(path)) {
      $("open-settings").hidden = true;
      for (const view of [this.chatView, this.generations, this.agentsView, this.observe, this.evals, this.runs]) view.hide();
      this.chatView.reset();
      this.sidebar.highlight();
      return this.accountView.show(path);
    }
    this.accountView.hide();
    if (RunsView.serves(path)) {
      $("open-settings").hidden = true;
      for (const view of [this.chatView, this.generations, this.agentsView, this.observe, this.evals]) view.hide();
      this.chatView.reset();
      this.sidebar.highlight();
      return this.runs.show(path);
    }
    this.runs.hide();
    if (EvalsView.serves(path)) {
      $("open-settings").hidden = true;
      for (const view of [this.chatView, this.generations, this.agentsView, this.observe]) view.hide();
      this.chatView.reset();
      this.sidebar.highlight();
      return this.evals.show(path);
    }
    this.evals.hide();
    if (ObserveView.serves(path)) {
      for (const view of [this.chatView, this.generations, this.agentsView]) view.hide();
      this.chatView.reset();
      this.sidebar.highlight();
      return this.observe.show(path);
    }
    this.observe.hide();
    if (agents) {
      this.chatView.reset();
      this.chatView.hide();
      this.generations.hide();
      this.sidebar.highlight();
      $("generations-link").removeAttribute("aria-current");
      $("agents-link").setAttribute("aria-current", "page");
      await this.agentsView.show(agents[1] === undefined ? undefined : decodeURIComponent(agents[1]));
      return;
    }
    $("agents-link").removeAttribute("aria-current");
    this.agentsView.hide();
    if (path === "/generations") {
      this.chatView.reset();
      this.chatView.hide();
      this.sidebar.highlight();
      $("generations-link").setAttribute("aria-current", "page");
      await this.generations.show();
      return;
    }
    $("generations-link").removeAttribute("aria-current");
    this.generations.hide();
    const showing = this.chatView.show(chat ? decodeURIComponent(chat[1]) : null);
    this.sidebar.highlight();
    await showing;
  }

  setTitle(text) {
    $("page-title").textContent = text;
    document.title = `${text} · Gapless`;
  }

  /** Show the live / reconnecting / offline pill (null hides it). */
  setConnection(state) {
    const pill = $("connection");
    pill.hidden = state === null;
    if (state === null) return;
    pill.dataset.state = state;
    pill.querySelector(".connection-text").textContent = CONNECTION_TEXT[state] ?? state;
  }

  openSettings() {
    const values = this.chatView.settings();
    $("settings-title-input").value = values.title;
    $("system-prompt").value = values.system_prompt;
    $("settings").showModal();
  }

  drawer(open) {
    document.body.classList.toggle("drawer-open", open);
    $("scrim").hidden = !open;
  }

  toast(text) {
    const toast = $("toast");
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (toast.hidden = true), 3000);
  }

  fatal(error) {
    document.body.textContent = `Gapless could not start: ${error.message}`;
  }
}

const app = new App();
app.start();
/** Read-only handle for debugging in the console (and for the browser tests). */
window.gapless = {
  get messages() {
    return app.chatView.feed ? Object.fromEntries(app.chatView.feed.replica.messages) : {};
  },
  get connection() {
    return app.chatView.feed?.connection ?? null;
  },
};
