// The agent form, provider-aware: shows only the fields the chosen provider uses and
// only that provider's models and voices, without a reload.
//
// Progressive enhancement: without this script every field and every provider's
// choices are shown, and the server's validation says what does not fit. Hidden
// fields are still submitted (their values are kept), except a temperature, which
// is cleared when the chosen provider takes none (the server would refuse it).
(function () {
  "use strict";
  var form = document.querySelector("form[data-agent-form]");
  var select = form && form.querySelector("select[data-provider-select]");
  var catalogueNode = document.getElementById("agent-provider-catalogue");
  if (!form || !select || !catalogueNode) {
    return;
  }
  var catalogue = JSON.parse(catalogueNode.textContent);

  function usedBy(element, provider) {
    return element.getAttribute("data-providers").split(" ").indexOf(provider) !== -1;
  }

  function apply(switching) {
    var provider = select.value;
    var info = catalogue[provider] || {};
    document.querySelectorAll("[data-providers]").forEach(function (element) {
      var shown = usedBy(element, provider);
      element.hidden = !shown;
      if (!shown && switching) {
        element.querySelectorAll("[data-clear-when-hidden]").forEach(function (input) {
          input.value = "";
        });
      }
    });
    form.querySelectorAll("select[data-picker]").forEach(function (picker) {
      var kind = picker.getAttribute("data-picker");
      Array.prototype.forEach.call(picker.options, function (option) {
        var owner = option.getAttribute("data-provider");
        if (!owner) {
          option.textContent = info[kind + "_default_label"] || option.textContent;
          return;
        }
        // On load the saved choice stays selectable even if it does not fit (the page
        // shows the server's error for it; a disabled option would not be submitted).
        var offered = owner === provider || (!switching && option.selected);
        option.hidden = !offered;
        option.disabled = !offered;
      });
      picker.querySelectorAll("optgroup").forEach(function (group) {
        var mine = group.querySelector("option:not([disabled])") !== null;
        group.hidden = !mine;
        group.disabled = !mine;
      });
      var chosen = picker.options[picker.selectedIndex];
      // Another provider's model or voice cannot be kept: fall back to the new provider's default.
      if (switching && chosen && chosen.disabled) {
        picker.value = "";
      }
    });
  }

  select.addEventListener("change", function () {
    apply(true);
  });
  apply(false);
})();
