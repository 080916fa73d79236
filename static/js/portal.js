// Portal behaviour that must not live inline (the Content-Security-Policy forbids inline scripts).
htmx.config.allowEval = false;
htmx.config.allowScriptTags = false;
htmx.config.includeIndicatorStyles = false;
htmx.config.historyCacheSize = 0;

// After an htmx swap, move focus to the first field with an error so keyboard users land on it.
document.addEventListener("htmx:afterSwap", function (event) {
  var invalid = event.detail.target.querySelector("[aria-invalid='true']");
  if (invalid) { invalid.focus(); }
});

// Language switcher: submit on change, keeping the button for keyboard and no-script use.
document.addEventListener("change", function (event) {
  var select = event.target.closest(".language-switcher select");
  if (select) { select.form.requestSubmit(); }
});
