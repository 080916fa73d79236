// Portal behaviour that must not live inline (the Content-Security-Policy forbids inline scripts).
htmx.config.allowEval = false;
htmx.config.allowScriptTags = false;
htmx.config.includeIndicatorStyles = false;
htmx.config.historyCacheSize = 0;
// Settling a "style" attribute writes one with setAttribute, which style-src 'self' blocks (a console error).
htmx.config.attributesToSettle = ["class", "width", "height"];

// After an htmx swap, move focus to the first field with an error so keyboard users land on it.
document.addEventListener("htmx:afterSwap", function (event) {
  if (!event.detail.target) { return; }  // an out-of-band swap has no target
  var invalid = event.detail.target.querySelector("[aria-invalid='true']");
  if (invalid) { invalid.focus(); }
});

// An action that failed says so. htmx swaps no error answer into the request's target; the
// portal's own error answer is retargeted into the notice (portal/errors.py), and an answer it
// did not write (a proxy's 502) or no answer at all gets the notice's own words.
// The notice goes when the same element's request next succeeds. A list polling through an outage
// says it once, and once closed stays quiet until a poll succeeds; anything the user does shows it.
(function () {
  var source = null;  // the element whose failed request the notice is about
  var closed = null;  // the element whose notice the user closed
  function region() { return document.getElementById("request-problem"); }
  function inNotice(element) { return Boolean(element && region() && region().contains(element)); }
  // A poll (a request no event triggered) that failed again: said already, or closed by the user.
  function muted(event) {
    var config = event.detail.requestConfig;
    var poll = !(config && config.triggeringEvent);
    return poll && (event.detail.elt === closed || (event.detail.elt === source && !region().hidden));
  }
  function show(event, text) {
    var box = region();
    if (!box || muted(event)) { return; }
    var line = box.querySelector("p");
    if (text !== undefined && line.textContent !== text) { line.textContent = text; }
    source = event.detail.elt;
    box.hidden = false;
  }
  function hide() {
    region().hidden = true;
    source = null;
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.isError && inNotice(event.detail.target)) {
      event.detail.shouldSwap = !muted(event);
    }
  });
  document.addEventListener("htmx:responseError", function (event) {
    if (inNotice(event.detail.target)) { show(event); return; }
    show(event, region().getAttribute("data-failed").replace("{status}", event.detail.xhr.status));
  });
  document.addEventListener("htmx:sendError", function (event) { show(event, region().getAttribute("data-unreachable")); });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.successful) { return; }
    if (event.detail.elt === closed) { closed = null; }
    if (source && event.detail.elt === source) { hide(); }
  });
  function close() {
    closed = source;
    hide();
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-close-problem]")) { close(); }
  });
  // Escape closes it too, unless a dialog is open (Escape is the dialog's first).
  document.addEventListener("keydown", function (event) {
    var box = region();
    if (event.key === "Escape" && box && !box.hidden && !document.querySelector("dialog[open]")) { close(); }
  });
})();

// Language switcher: submit on change, keeping the button for keyboard and no-script use.
document.addEventListener("change", function (event) {
  var select = event.target.closest(".language-switcher select");
  if (select) { select.form.requestSubmit(); }
});

// ---- Tabs (issue 2: employee card) ----
// htmx loads the panel; this keeps aria-selected, tabindex and the panel's label in step,
// and lets the arrow keys, Home and End move between tabs as ARIA tabs should.
(function () {
  function select(tab) {
    var list = tab.closest("[role='tablist']");
    list.querySelectorAll("[role='tab']").forEach(function (other) {
      var chosen = other === tab;
      other.setAttribute("aria-selected", chosen ? "true" : "false");
      other.tabIndex = chosen ? 0 : -1;
    });
    var panel = document.getElementById(tab.getAttribute("aria-controls"));
    if (panel) { panel.setAttribute("aria-labelledby", tab.id); }
  }
  document.addEventListener("click", function (event) {
    var tab = event.target.closest("[role='tablist'] [role='tab']");
    if (tab) { select(tab); }
  });
  document.addEventListener("keydown", function (event) {
    var tab = event.target.closest("[role='tablist'] [role='tab']");
    if (!tab) { return; }
    var tabs = Array.prototype.slice.call(tab.closest("[role='tablist']").querySelectorAll("[role='tab']"));
    var index = tabs.indexOf(tab);
    var next = {ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1}[event.key];
    if (next === undefined) { return; }
    event.preventDefault();
    var target = tabs[(next + tabs.length) % tabs.length];
    target.focus();
    target.click();
  });
})();

// ---- External addresses (issue 4) ----
// Delete buttons ask first (a data-confirm attribute on the form; no inline script).
document.addEventListener("submit", function (event) {
  var form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
});
// Who sends from what: a cell's explanation opens in the dialog; Close (or Escape) shuts it.
document.addEventListener("htmx:afterSwap", function (event) {
  if (event.detail.target && event.detail.target.id === "sender-detail") {
    var dialog = document.getElementById("sender-dialog");
    if (dialog && !dialog.open) { dialog.showModal(); }
  }
});
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-close-dialog]");
  if (button) { button.closest("dialog").close(); }
});

// ---- Letters (issue 5) ----
// The contact picker on New letter: a "To"/"Cc" button adds that contact to the field, once.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-add-recipient]");
  if (!button) { return; }
  var field = document.getElementById(button.getAttribute("data-add-recipient"));
  var address = button.getAttribute("data-address");
  if (!field || !address) { return; }
  var current = field.value.trim();
  if (current.toLowerCase().indexOf(address.toLowerCase()) === -1) {
    field.value = current ? current.replace(/[,;]\s*$/, "") + ", " + address : address;
  }
  field.focus();
});

// ---- API tokens (issue 6) ----
// A token is shown once: Copy selects it and puts it on the clipboard (the field stays selectable without this).
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) { return; }
  var field = document.getElementById(button.getAttribute("data-copy"));
  field.focus();
  field.select();
  if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(field.value); }
  else { document.execCommand("copy"); }
  button.textContent = button.getAttribute("data-copied") || button.textContent;
});

// ---- Test account (issue 13): the field at fault, and fixes in one click ----
// A failed test names the field it points at: that field gets the message beside it and aria-invalid,
// and the page scrolls to it. A fix button changes the fields it names and runs the test again.
(function () {
  function clearMarks() {
    document.querySelectorAll(".field-fault").forEach(function (note) {
      var field = document.getElementById(note.getAttribute("data-for"));
      if (field) {
        field.removeAttribute("aria-invalid");
        var described = (field.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
          return id && id !== note.id;
        });
        if (described.length) { field.setAttribute("aria-describedby", described.join(" ")); } else { field.removeAttribute("aria-describedby"); }
      }
      note.remove();
    });
  }
  function markFault() {
    var problem = document.querySelector("#test-result [data-at-fault]");
    if (!problem || problem.hasAttribute("data-marked")) { return; }
    problem.setAttribute("data-marked", "");
    clearMarks();
    var name = problem.getAttribute("data-at-fault");
    var field = document.getElementById(name);
    if (!field) { return; }
    var note = document.createElement("small");
    note.className = "error field-fault";
    note.id = "fault-" + name;
    note.setAttribute("data-for", name);
    note.textContent = problem.getAttribute("data-at-fault-message");
    field.insertAdjacentElement("afterend", note);
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", ((field.getAttribute("aria-describedby") || "") + " " + note.id).trim());
    for (var section = field.closest("details"); section; section = section.parentElement.closest("details")) {
      section.open = true;  // a field in a closed section cannot be seen or focused
    }
    field.scrollIntoView({block: "center"});
    field.focus({preventScroll: true});
  }
  document.addEventListener("htmx:afterSettle", markFault);
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt && event.detail.elt.id === "test-account") { clearMarks(); }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-fix]");
    if (!button) { return; }
    var form = button.closest("form");
    var changes = JSON.parse(button.getAttribute("data-fix"));
    Object.keys(changes).forEach(function (name) {
      var field = form && form.elements[name];
      if (field) { field.value = changes[name]; }
    });
    var test = document.getElementById("test-account");
    if (test) { test.click(); }
  });
})();

// A dropdown in the navigation closes with Escape and hands focus back to its summary; a click
// outside it closes it too.
document.addEventListener("keydown", function (event) {
  if (event.key !== "Escape") { return; }
  document.querySelectorAll("details.dropdown[open]").forEach(function (menu) {
    menu.open = false;
    var summary = menu.querySelector("summary");
    if (summary && menu.contains(document.activeElement)) { summary.focus(); }
  });
});
document.addEventListener("click", function (event) {
  document.querySelectorAll("details.dropdown[open]").forEach(function (menu) {
    if (!menu.contains(event.target)) { menu.open = false; }
  });
});

// On a phone the navigation folds behind one Menu button (markup in templates/base.html); without
// this script the links simply stay open.
(function () {
  var header = document.querySelector(".site-header");
  var button = header && header.querySelector("[data-menu-toggle]");
  if (!button) { return; }
  header.classList.add("menu-folds");
  button.hidden = false;
  button.addEventListener("click", function () {
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    header.classList.toggle("menu-open", open);
  });
})();

// Test account: when the outcome arrives and focus was lost (the button disables itself while the
// request runs, dropping focus to <body>), move focus to the outcome line, and announce it through
// the page's persistent live region (a region swapped in whole is not reliably announced). A failure
// that names a field at fault has already given that field focus (above), with the message beside it.
document.addEventListener("htmx:afterSettle", function () {
  var box = document.getElementById("test-result");
  var line = box && !box.classList.contains("running") && box.querySelector(".result-line");
  if (!line || !line.querySelector(".badge-ok, .badge-fail") || line.hasAttribute("data-announced")) { return; }
  line.setAttribute("data-announced", "");
  line.tabIndex = -1;
  var active = document.activeElement;
  if (!active || active === document.body || !document.contains(active) || active.disabled) { line.focus(); }
  var announcer = document.getElementById("announcer");
  if (announcer) { announcer.textContent = line.textContent.replace(/\s+/g, " ").trim(); }
});

// The mailbox form: a finished test speaks only for the settings it tested. Changing any server
// field (the form's data-server-fields, rendered from MAILBOX_FIELDS) clears its outcome, the proof it
// carried and the line beside the buttons, and says the settings changed since.
(function () {
  function stale(event) {
    var form = event.target.form;
    if (!form || form.id !== "mailbox-form") { return; }
    var serverFields = (form.getAttribute("data-server-fields") || "").split(" ");
    if (serverFields.indexOf(event.target.name) < 0) { return; }
    var box = document.getElementById("test-result");
    if (!box || box.classList.contains("running") || !box.querySelector(".result-line .badge-ok, .result-line .badge-fail")) { return; }
    box.replaceChildren();
    var note = document.createElement("p");
    note.className = "notice settings-changed";
    note.textContent = form.getAttribute("data-settings-changed");
    box.appendChild(note);
    var summary = document.querySelector("#test-summary .summary-line");
    if (summary) { summary.textContent = note.textContent; }
  }
  document.addEventListener("input", stale);
  document.addEventListener("change", stale);
})();

// The mailbox form's Servers section: its summary names the servers in the fields (filled in by hand,
// by a preset or by Find settings); it opens by itself when a field in it is marked, and once when
// the address is typed and no outgoing server could be filled in from it.
(function () {
  function section() { return document.getElementById("mailbox-servers"); }
  function value(id) {
    var field = document.getElementById(id);
    return field ? field.value.trim() : "";
  }
  function summarize() {
    var servers = section();
    var line = servers && servers.querySelector(".servers-summary");
    if (!line) { return; }
    if (!value("smtp_host")) { line.textContent = line.getAttribute("data-empty"); return; }
    var text = value("smtp_host") + (value("smtp_port") ? ":" + value("smtp_port") : "");
    var protocol = value("incoming_protocol");
    if (protocol && value("incoming_host")) {
      text += " · " + protocol.toUpperCase() + " " + value("incoming_host") + (value("incoming_port") ? ":" + value("incoming_port") : "");
    } else {
      text += " · " + line.getAttribute("data-none");
    }
    line.textContent = text;
  }
  function openWhenNeeded() {
    var servers = section();
    if (!servers) { return; }
    summarize();
    if (servers.open) { return; }
    if (servers.querySelector("[aria-invalid='true']")) { servers.open = true; return; }
    if (!servers.hasAttribute("data-opened") && value("address").indexOf("@") > 0 && !value("smtp_host")) {
      servers.setAttribute("data-opened", "");
      servers.open = true;
    }
  }
  document.addEventListener("DOMContentLoaded", summarize);
  document.addEventListener("htmx:afterSettle", openWhenNeeded);
  document.addEventListener("input", function (event) {
    if (event.target.closest && event.target.closest("#mailbox-servers")) { summarize(); }
  });
  document.addEventListener("change", function (event) {
    if (event.target.closest && event.target.closest("#mailbox-servers")) { summarize(); }
  });
})();

// A <select multiple data-chips> becomes a searchable picker: the chosen items as chips (each with a
// labelled remove button), a field that filters the rest as you type, arrows and Enter to add, Backspace
// in the empty field to remove the last chip, and "N selected" in the page's language. The select stays
// in the form (hidden) and is what is posted; without this script it is the plain list.
(function () {
  function words(select, name, values) {
    var text = select.getAttribute("data-chips-" + name) || "";
    Object.keys(values || {}).forEach(function (key) { text = text.replace("{" + key + "}", values[key]); });
    return text;
  }
  function element(tag, className, attributes) {
    var made = document.createElement(tag);
    if (className) { made.className = className; }
    Object.keys(attributes || {}).forEach(function (name) { made.setAttribute(name, attributes[name]); });
    return made;
  }
  function enhance(select) {
    if (select.hasAttribute("data-chips-ready")) { return; }
    select.setAttribute("data-chips-ready", "");
    var id = select.id;
    var picker = element("div", "chips-picker");
    var box = element("div", "chips-box");
    var chips = element("ul", "chips");
    var filter = element("input", "chips-filter", {
      type: "text", id: id + "-filter", role: "combobox", "aria-autocomplete": "list", "aria-expanded": "false",
      "aria-controls": id + "-options", autocomplete: "off", spellcheck: "false", placeholder: words(select, "filter")});
    var list = element("ul", "chips-options", {id: id + "-options", role: "listbox"});
    var count = element("small", "chips-count", {id: id + "-count", "aria-live": "polite"});
    var label = document.querySelector("label[for='" + id + "']");
    if (label) {
      label.htmlFor = filter.id;
      chips.setAttribute("aria-label", label.textContent.trim());
      list.setAttribute("aria-label", label.textContent.trim());
    }
    filter.setAttribute("aria-describedby", ((select.getAttribute("aria-describedby") || "") + " " + count.id).trim());
    if (select.getAttribute("aria-invalid") === "true") {
      filter.setAttribute("aria-invalid", "true");
      select.removeAttribute("aria-invalid");  // the field people reach is the filter
    }
    list.hidden = true;
    box.append(chips, filter, list);
    picker.append(box, count);
    select.insertAdjacentElement("afterend", picker);
    select.hidden = true;
    select.tabIndex = -1;
    var active = 0;

    function options() { return Array.prototype.slice.call(select.options); }
    function matching() {
      var typed = filter.value.trim().toLowerCase();
      return options().filter(function (option) {
        return !option.selected && option.text.toLowerCase().indexOf(typed) >= 0;
      });
    }
    function renderChips() {
      chips.replaceChildren();
      options().filter(function (option) { return option.selected; }).forEach(function (option) {
        var chip = element("li", "chip");
        var name = element("span", "chip-name", {title: option.text});
        name.textContent = option.text;
        var remove = element("button", "chip-remove", {type: "button", "aria-label": words(select, "remove", {name: option.text})});
        remove.textContent = "×";
        remove.addEventListener("click", function () { choose(option, false); filter.focus(); });
        chip.append(name, remove);
        chips.appendChild(chip);
      });
      count.textContent = words(select, "count", {count: select.selectedOptions.length});
    }
    function renderList() {
      var found = matching();
      active = Math.max(0, Math.min(active, found.length - 1));
      list.replaceChildren();
      found.forEach(function (option, index) {
        var item = element("li", "", {role: "option", id: id + "-option-" + option.index,
          "aria-selected": index === active ? "true" : "false"});
        item.textContent = option.text;
        item.addEventListener("mousedown", function (event) { event.preventDefault(); choose(option, true); });
        list.appendChild(item);
      });
      if (!found.length) {
        var none = element("li", "chips-none", {role: "presentation"});
        none.textContent = words(select, "none");
        list.appendChild(none);
        filter.removeAttribute("aria-activedescendant");
      } else {
        filter.setAttribute("aria-activedescendant", id + "-option-" + found[active].index);
        var current = list.children[active];
        if (current && current.scrollIntoView) { current.scrollIntoView({block: "nearest"}); }
      }
    }
    function open(show) {
      list.hidden = !show;
      filter.setAttribute("aria-expanded", String(show));
      if (show) { renderList(); } else { filter.removeAttribute("aria-activedescendant"); }
    }
    function choose(option, selected) {
      option.selected = selected;
      if (selected) { filter.value = ""; }
      renderChips();
      if (!list.hidden) { renderList(); }
      select.dispatchEvent(new Event("change", {bubbles: true}));  // htmx and the form listen on the select
    }
    filter.addEventListener("input", function () { active = 0; open(true); });
    filter.addEventListener("focus", function () { open(true); });
    filter.addEventListener("blur", function () { open(false); });
    filter.addEventListener("keydown", function (event) {
      var found = matching();
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (list.hidden) { open(true); return; }
        if (found.length) { active = (active + (event.key === "ArrowDown" ? 1 : -1) + found.length) % found.length; }
        renderList();
      } else if (event.key === "Enter") {
        event.preventDefault();  // Enter adds; it never submits the form from here
        if (!list.hidden && found[active]) { choose(found[active], true); }
      } else if (event.key === "Escape" && !list.hidden) {
        event.stopPropagation();
        open(false);
      } else if (event.key === "Backspace" && !filter.value && select.selectedOptions.length) {
        var chosen = select.selectedOptions;
        choose(chosen[chosen.length - 1], false);
      }
    });
    box.addEventListener("click", function (event) { if (!event.target.closest("button")) { filter.focus(); } });
    renderChips();
  }
  htmx.onLoad(function (content) {
    if (content.matches && content.matches("select[multiple][data-chips]")) { enhance(content); }
    content.querySelectorAll("select[multiple][data-chips]").forEach(enhance);
  });
})();

// New letter after Back: the browser may put back a project the page was not drawn for. Ask for that
// project's sender block, so the project, the From address and the Send button agree again.
window.addEventListener("pageshow", function () {
  var project = document.querySelector("#letter-form select[name='project']");
  var sender = document.getElementById("letter-sender");
  if (project && sender && project.value !== sender.getAttribute("data-project")) { htmx.trigger(project, "change"); }
});

// A table wider than the window scrolls sideways inside its .table-wrap. Keyboard users can scroll it only once
// it takes focus (WCAG 2.1.1), so while, and only while, it scrolls, it joins the Tab order, named after its
// caption or its section where it has one (a group, not a second landmark beside its section). On a laptop,
// where it fits, it stays out of the way.
(function () {
  function fit(wrap) {
    var scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
    if (scrolls === wrap.hasAttribute("data-scrolls")) { return; }
    if (!scrolls) {
      ["data-scrolls", "tabindex", "role", "aria-labelledby"].forEach(function (name) { wrap.removeAttribute(name); });
      return;
    }
    wrap.setAttribute("data-scrolls", "");
    wrap.setAttribute("tabindex", "0");
    var caption = wrap.querySelector("caption[id]");
    var section = wrap.closest("[aria-labelledby]");
    var name = caption ? caption.id : section && section.getAttribute("aria-labelledby");
    if (name) {
      wrap.setAttribute("role", "group");
      wrap.setAttribute("aria-labelledby", name);
    }
  }
  function fitAll() { document.querySelectorAll(".table-wrap").forEach(fit); }
  htmx.onLoad(fitAll);
  window.addEventListener("resize", fitAll);
})();
