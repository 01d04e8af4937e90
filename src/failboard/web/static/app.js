// failboard: the little JavaScript the pages need. No framework, no build step.
// Everything that comes from the stores is written with textContent, never as HTML; the only
// HTML swapped in is the server's own escaped fragment of the actions table.
"use strict";
(function () {
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var csrf = ($("meta[name=csrf-token]") || {}).content || "";
  var store = {
    get: function (k) { try { return localStorage.getItem(k); } catch (e) { return null; } },
    set: function (k, v) { try { localStorage.setItem(k, v); } catch (e) { /* private mode */ } }
  };
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function fmt(n) { return Number(n).toLocaleString("en-US"); }
  function key() {
    return (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
      : String(Date.now()) + Math.random().toString(16).slice(2);
  }

  // -- talking to the server ------------------------------------------------------------------
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : ("HTTP " + r.status));
        return data;
      });
    });
  }

  // -- flash messages survive the reload that follows an action --------------------------------
  function flash(text, link) {
    var box = $("#flash");
    if (!box) return;
    box.textContent = "";
    box.appendChild(el("span", text + " "));
    if (link) { var a = el("a", link.text); a.href = link.href; box.appendChild(a); }
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { box.hidden = true; }, 8000);
  }
  function flashAfterReload(text) {
    try { sessionStorage.setItem("failboard-flash", text); } catch (e) { /* ignore */ }
    location.reload();
  }
  try {
    var pending = sessionStorage.getItem("failboard-flash");
    if (pending) {
      sessionStorage.removeItem("failboard-flash");
      document.addEventListener("DOMContentLoaded", function () { flash(pending, { text: "See actions →", href: "/actions" }); });
    }
  } catch (e) { /* ignore */ }

  // -- the confirmation dialog -----------------------------------------------------------------
  // ask({title, lines, confirm, danger, form}) -> Promise of the dialog's form (or null).
  function ask(opts) {
    var dialog = $("#confirm");
    $("#confirm-title").textContent = opts.title;
    var body = $("#confirm-body");
    body.textContent = "";
    (opts.lines || []).forEach(function (line) {
      if (Array.isArray(line)) {
        var ul = el("ul", null, "confirm-list");
        line.forEach(function (item) { ul.appendChild(el("li", item)); });
        body.appendChild(ul);
      } else { body.appendChild(el("p", line, opts.countClass)); }
    });
    if (opts.form) body.appendChild(document.importNode(opts.form.content, true));
    var ok = $("#confirm-ok");
    ok.textContent = opts.confirm || "Confirm";
    ok.className = opts.danger ? "danger" : "primary";
    ok.disabled = !!opts.disabled;
    return new Promise(function (resolve) {
      dialog.returnValue = "";
      dialog.addEventListener("close", function done() {
        dialog.removeEventListener("close", done);
        resolve(dialog.returnValue === "ok" ? body : null);
      });
      dialog.showModal();
      var first = $("input, select", body);
      (first || (opts.danger ? $("#confirm-cancel") : ok)).focus();
    });
  }
  function describeCounts(sel) {
    var projects = Object.keys(sel.counts);
    if (projects.length < 2 && !sel.truncated.length) return [];
    return [projects.map(function (p) {
      return p + ": " + fmt(sel.counts[p]) + (sel.truncated.indexOf(p) >= 0 ? " (the first 10,000 of more)" : "");
    })];
  }
  function verb(action) { return { retry: "Retry", delete: "Delete", retry_queue: "Retry", prune: "Prune" }[action] || action; }
  function noun(n) { return fmt(n) + (n === 1 ? " job" : " jobs"); }

  // Freeze a set on the server, confirm its exact count, then submit exactly that set.
  function freezeAndConfirm(request, title) {
    return post("/ui/selections", request).then(function (sel) {
      if (!sel.count) { flash("Nothing to do: no job matches."); return null; }
      var what = sel.action === "prune" ? "Delete " + noun(sel.count) + " older than " + request.hours + " h (dry run: that many match right now)."
        : sel.action === "retry_queue" ? "Retry " + noun(sel.count) + " that failed up to " + sel.moment + "."
        : verb(sel.action) + " exactly " + noun(sel.count) + ".";
      return ask({
        title: title, lines: [what].concat(describeCounts(sel)), countClass: "confirm-count",
        confirm: verb(sel.action) + " " + noun(sel.count), danger: sel.action !== "retry" && sel.action !== "retry_queue"
      }).then(function (ok) {
        if (!ok) return null;
        return post("/ui/selections/" + encodeURIComponent(sel.selection)).then(function (made) {
          flashAfterReload(describeMade(made.actions));
        });
      });
    }).catch(function (err) { flash("Failed: " + err.message); });
  }
  function describeMade(actions) {
    var ids = actions.map(function (a) { return "#" + a.id; }).join(", ");
    return actions.length === 1 ? "Action " + ids + " queued." : actions.length + " actions queued (" + ids + ").";
  }

  function submitJobs(action, jobs) {
    var title = verb(action) + " " + noun(jobs.length) + "?";
    var lines = [verb(action) + " exactly " + noun(jobs.length) + "."];
    if (action === "delete") lines.push("Their failure records are removed: this cannot be undone.");
    return ask({ title: title, lines: lines, countClass: "confirm-count", confirm: verb(action) + " " + noun(jobs.length), danger: action === "delete" })
      .then(function (ok) {
        if (!ok) return;
        return post("/ui/actions", { action: action, jobs: jobs, key: key() }).then(function (made) {
          flashAfterReload(describeMade(made.actions));
        });
      }).catch(function (err) { flash("Failed: " + err.message); });
  }

  // -- failed jobs table ------------------------------------------------------------------------
  function initJobs() {
    var table = $("#jobs");
    if (!table) return;
    var query = table.dataset.query || "";
    var matching = { selected: false, count: null };
    var bulk = $("#bulk"), bulkText = $("#bulk-text"), selectMatching = $("#select-matching");
    var pageBox = $("#select-page");

    function checked() { return $$(".row-check:checked", table); }
    function refreshBulk() {
      var rows = checked();
      $$("tbody tr", table).forEach(function (tr) {
        var box = $(".row-check", tr);
        tr.classList.toggle("selected", !!(box && box.checked));
      });
      var all = $$(".row-check", table);
      pageBox.checked = all.length > 0 && rows.length === all.length;
      pageBox.indeterminate = rows.length > 0 && rows.length < all.length;
      if (!pageBox.checked) matching.selected = false;
      bulk.hidden = rows.length === 0;
      if (matching.selected) {
        bulkText.textContent = "All " + (matching.count || "") + " jobs matching this filter are selected.";
        selectMatching.hidden = true;
      } else {
        bulkText.textContent = rows.length + " selected on this page.";
        selectMatching.hidden = !(pageBox.checked && matching.count && matching.count !== String(rows.length));
      }
    }
    table.addEventListener("change", function (e) {
      if (e.target === pageBox) $$(".row-check", table).forEach(function (b) { b.checked = pageBox.checked; });
      refreshBulk();
    });
    selectMatching.addEventListener("click", function () { matching.selected = true; refreshBulk(); });
    $("#bulk-clear").addEventListener("click", function () {
      $$(".row-check", table).forEach(function (b) { b.checked = false; });
      matching.selected = false; refreshBulk();
    });
    function bulkAct(action) {
      if (matching.selected) {
        return freezeAndConfirm({ kind: "matching", action: action, query: query }, verb(action) + " every job matching this filter?");
      }
      var jobs = checked().map(function (b) { var tr = b.closest("tr"); return { project: tr.dataset.project, id: tr.dataset.id }; });
      return submitJobs(action, jobs);
    }
    // A viewer's page has no bulk buttons (nor checkboxes to select with).
    if ($("#bulk-retry")) $("#bulk-retry").addEventListener("click", function () { bulkAct("retry"); });
    if ($("#bulk-delete")) $("#bulk-delete").addEventListener("click", function () { bulkAct("delete"); });
    table.addEventListener("click", function (e) {
      var button = e.target.closest("button[data-act]");
      if (!button) return;
      var tr = button.closest("tr");
      submitJobs(button.dataset.act, [{ project: tr.dataset.project, id: tr.dataset.id }]);
    });

    // Counts come after the table, so a slow count never holds the page.
    var count = $("#count");
    function loadCount() {
      fetch(count.dataset.src, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
        count.textContent = data.text + (data.value === 1 && !data.capped ? " failed job" : " failed jobs");
        matching.count = data.text;
        $("#matching-count").textContent = data.text;
        refreshBulk();
      }).catch(function () { count.textContent = ""; });
    }
    loadCount();

    // Auto-refresh swaps in the server's fresh banners, rows and pager (its own escaped HTML,
    // as on the actions page) and recounts: no reload, so the scroll position, a filter being
    // typed and the focus stay where they are.
    function refreshTable() {
      fetch(location.href, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      }).then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        if (!fresh.querySelector("#jobs tbody")) return;  // signed out meanwhile: keep the page
        ["#banners", "#jobs tbody", "nav.pager"].forEach(function (sel) {
          var now = $(sel), next = fresh.querySelector(sel);
          if (now && next) now.replaceWith(document.importNode(next, true));
        });
        matching.selected = false;
        refreshBulk();
        loadCount();
      }).catch(function () { /* the page stays as it was; the next tick tries again */ });
    }

    // Hideable columns and auto-refresh, remembered per browser.
    $$(".col-toggle").forEach(function (box) {
      var name = "failboard-hide-" + box.dataset.col;
      box.checked = store.get(name) !== "1";
      var apply = function () { table.classList.toggle("hide-col-" + box.dataset.col, !box.checked); };
      apply();
      box.addEventListener("change", function () { store.set(name, box.checked ? "0" : "1"); apply(); });
    });
    var auto = $("#autorefresh");
    auto.checked = store.get("failboard-autorefresh") === "1";
    auto.addEventListener("change", function () { store.set("failboard-autorefresh", auto.checked ? "1" : "0"); });
    setInterval(function () {
      // Never pull the page from under a selection or an open dialog.
      if (auto.checked && !checked().length && !$("#confirm").open) refreshTable();
    }, 15000);

    var queueOpen = $("#retry-queue-open");
    if (queueOpen) queueOpen.addEventListener("click", function () {
      ask({ title: "Retry a queue", form: $("#queue-form"), confirm: "Count jobs…" }).then(function (form) {
        if (!form) return;
        var project = $("select[name=project]", form).value, queue = $("input[name=queue]", form).value.trim();
        freezeAndConfirm({ kind: "queue", projects: project ? [project] : [], queue: queue || null },
          "Retry " + (queue ? "queue " + queue : "every queue") + (project ? " of " + project : "") + "?");
      });
      fetch("/ui/queues", { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
        var list = $("#confirm-body datalist") || $("#queue-names"), seen = {};
        Object.keys(data).forEach(function (p) { data[p].forEach(function (q) {
          if (seen[q] || !list) return; seen[q] = 1; var o = document.createElement("option"); o.value = q; list.appendChild(o);
        }); });
      }).catch(function () { /* suggestions only */ });
    });
    var pruneOpen = $("#prune-open");
    if (pruneOpen) pruneOpen.addEventListener("click", function () {
      ask({ title: "Prune old failures", form: $("#prune-form"), confirm: "Dry run…" }).then(function (form) {
        if (!form) return;
        var project = $("select[name=project]", form).value, hours = Number($("input[name=hours]", form).value);
        if (!(hours > 0)) { flash("Hours must be a number above 0."); return; }
        freezeAndConfirm({ kind: "prune", projects: project ? [project] : [], hours: hours }, "Prune failures older than " + hours + " h?");
      });
    });
  }

  // -- detail page ---------------------------------------------------------------------------------
  function initDetail() {
    var box = $("#job-actions");
    if (box) box.addEventListener("click", function (e) {
      var button = e.target.closest("button[data-act]");
      if (button) submitJobs(button.dataset.act, [{ project: box.dataset.project, id: box.dataset.id }]);
    });
    $$("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var text = document.getElementById(button.dataset.copy).textContent;
        var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
        if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, function () { flash("Copy failed"); });
        else { var r = document.createRange(); r.selectNodeContents(document.getElementById(button.dataset.copy)); var s = getSelection(); s.removeAllRanges(); s.addRange(r); document.execCommand("copy"); done(); }
      });
    });
  }

  // -- groups ------------------------------------------------------------------------------------
  function initGroups() {
    $$("button[data-group-act]").forEach(function (button) {
      button.addEventListener("click", function () {
        var li = button.closest("li.group"), action = button.dataset.groupAct;
        var projects = new URLSearchParams(location.search).getAll("project");
        freezeAndConfirm({ kind: "group", action: action, fingerprint: li.dataset.fingerprint, projects: projects },
          verb(action) + " this whole group?");
      });
    });
  }

  // -- actions: live without reload ----------------------------------------------------------------
  function initActions() {
    var rows = $("#actions-rows");
    if (!rows) return;
    rows.addEventListener("click", function (e) {
      var button = e.target.closest("button[data-cancel]");
      if (!button) return;
      button.disabled = true;
      post("/ui/actions/" + encodeURIComponent(button.dataset.cancel) + "/cancel").then(poll, function (err) { flash("Failed: " + err.message); poll(); });
    });
    function poll() {
      if (location.pathname !== "/actions") return;  // the job page's table is not live
      var params = new URLSearchParams(location.search);
      params.set("fragment", "1");
      return fetch("/actions?" + params.toString(), { credentials: "same-origin" }).then(function (r) {
        // Signed out meanwhile (the answer is the sign-in page): reload, which goes there.
        if (r.redirected || r.status === 401 || r.status === 403) { location.reload(); throw new Error("signed out"); }
        return r.text();
      }).then(function (html) {
        var tmp = document.createElement("tbody");
        tmp.innerHTML = html;  // the server's escaped fragment
        rows.replaceChildren.apply(rows, Array.prototype.slice.call(tmp.childNodes));
        var live = $$("tr[data-status=pending], tr[data-status=processing]", rows).length > 0;
        rows.dataset.live = live ? "1" : "";
        $("#live-note").textContent = live ? "updating live" : "";
      }).catch(function () { /* try again next tick */ });
    }
    // Poll fast while something is open, slowly otherwise (new actions may arrive from elsewhere).
    var slow = 0;
    setInterval(function () {
      if (document.hidden) return;
      if (rows.dataset.live === "1" || ++slow % 5 === 0) poll();
    }, 1000);
  }

  // -- everywhere ------------------------------------------------------------------------------------
  function initTheme() {
    var button = $("#theme-toggle");
    if (!button) return;
    var order = ["system", "dark", "light"];
    var label = function () { button.setAttribute("aria-label", "Colour theme: " + (document.documentElement.dataset.theme || "system")); };
    label();
    button.addEventListener("click", function () {
      var now = document.documentElement.dataset.theme || "system";
      var next = order[(order.indexOf(now) + 1) % order.length];
      if (next === "system") { delete document.documentElement.dataset.theme; store.set("failboard-theme", ""); }
      else { document.documentElement.dataset.theme = next; store.set("failboard-theme", next); }
      label();
    });
  }
  // Filter forms send only the fields in use: ?q=card, not ?q=card&queue=&connection=&… — a URL
  // an operator can read and paste into chat (empty fields mean "any" to the server either way).
  function initFilters() {
    $$("form.filters").forEach(function (form) {
      form.addEventListener("formdata", function (e) {
        var empty = [];
        e.formData.forEach(function (value, name) { if (value === "") empty.push(name); });
        empty.forEach(function (name) {
          var kept = e.formData.getAll(name).filter(function (v) { return v !== ""; });
          e.formData.delete(name);
          kept.forEach(function (v) { e.formData.append(name, v); });
        });
      });
    });
  }
  function initKeys() {
    document.addEventListener("keydown", function (e) {
      var t = e.target, typing = t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA");
      if (e.key === "/" && !typing && $("#search")) { e.preventDefault(); $("#search").focus(); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    initTheme(); initFilters(); initKeys(); initJobs(); initDetail(); initGroups(); initActions();
  });
})();
