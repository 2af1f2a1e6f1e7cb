// drawer-agent console: refresh live fragments and filter the model picker by brand.
// No framework, no build step; every page works without it (forms post, pages render).
"use strict";

(function () {
  function refresh(region) {
    var url = region.getAttribute("data-live");
    var every = parseInt(region.getAttribute("data-every"), 10) || 3000;
    function tick() {
      // Never replace what someone is typing in or has focused (keyboard users).
      if (region.contains(document.activeElement) && document.activeElement !== document.body) {
        return schedule();
      }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          region.innerHTML = html;
          wirePickers(region);
          schedule();
        })
        .catch(function () { schedule(); });
    }
    function schedule() {
      // Discovery's fragment says when it is running; the shop's always refreshes.
      if (region.id === "find-live" && !region.querySelector("[data-running]")) { return; }
      window.setTimeout(tick, every);
    }
    schedule();
  }

  function wirePickers(root) {
    root.querySelectorAll("select[data-brand-for]").forEach(function (brand) {
      var model = document.getElementById(brand.getAttribute("data-brand-for"));
      if (!model) { return; }
      function apply() {
        var wanted = brand.value;
        model.querySelectorAll("optgroup").forEach(function (group) {
          var show = !wanted || group.getAttribute("data-brand") === wanted;
          group.hidden = !show;
          group.disabled = !show;
        });
        var chosen = model.options[model.selectedIndex];
        if (chosen && chosen.parentElement && chosen.parentElement.disabled) { model.value = ""; }
      }
      brand.addEventListener("change", apply);
      apply();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wirePickers(document);
    document.querySelectorAll("[data-live]").forEach(refresh);
  });
})();
