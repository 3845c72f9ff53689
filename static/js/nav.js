/* The off-canvas main menu below 900 px (templates/base.html).
 *
 * The menu button toggles `nav-open` on <body>; CSS slides the sidebar in. Escape, a click
 * outside the sidebar (on the backdrop or anywhere else) and following a link close it.
 * Opening moves focus to the first link in the menu; closing returns it to the button, so
 * keyboard users never lose their place; Tab stays inside the open menu. aria-expanded always tells the truth. At 900 px
 * and wider the sidebar is always shown and the button is hidden, so the state is reset.
 */
(function () {
  "use strict";
  var button = document.querySelector("[data-menu-toggle]");
  var sidebar = document.getElementById("sidebar");
  var backdrop = document.querySelector("[data-menu-backdrop]");
  if (!button || !sidebar) return;
  var wide = window.matchMedia("(min-width: 900px)");

  function isOpen() { return document.body.classList.contains("nav-open"); }

  function open() {
    document.body.classList.add("nav-open");
    button.setAttribute("aria-expanded", "true");
    if (backdrop) backdrop.hidden = false;
    var first = sidebar.querySelector("a, button, select, input");
    if (first) first.focus();
  }

  function close(returnFocus) {
    if (!isOpen()) return;
    document.body.classList.remove("nav-open");
    button.setAttribute("aria-expanded", "false");
    if (backdrop) backdrop.hidden = true;
    if (returnFocus) button.focus();
  }

  button.addEventListener("click", function (event) {
    event.stopPropagation();
    if (isOpen()) close(true); else open();
  });
  document.addEventListener("keydown", function (event) {
    if (!isOpen()) return;
    if (event.key === "Escape") { event.preventDefault(); close(true); return; }
    if (event.key !== "Tab") return;
    // Keep Tab inside the open menu (the button counts, so it can be closed again).
    var stops = [button].concat(Array.prototype.slice.call(
      sidebar.querySelectorAll("a[href], button, select, input:not([type=hidden])")));
    var at = stops.indexOf(document.activeElement);
    var next = at + (event.shiftKey ? -1 : 1);
    if (at === -1 || next < 0 || next >= stops.length) {
      event.preventDefault();
      stops[(next + stops.length) % stops.length].focus();
    }
  });
  document.addEventListener("click", function (event) {
    if (isOpen() && !sidebar.contains(event.target)) close(false);
  });
  sidebar.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("a")) close(false);
  });
  var onWidth = function () { if (wide.matches) close(false); };
  if (wide.addEventListener) wide.addEventListener("change", onWidth); else wide.addListener(onWidth);
})();
