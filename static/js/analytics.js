/* Draws the analytics pages' charts with the vendored Chart.js.
 * The specs come from the page's json_script "analytics-charts" (analytics/views.py: Chart.spec):
 * {id, type, labels, datasets: [{label, data, color, type?, dash?}], links: [[url per point] per dataset],
 *  stacked, horizontal, percent, x_title, y_title}. A click on a bar or slice opens its link (the calls
 * list filtered to that day / outcome); the same links are in each chart's table. */
(function () {
  "use strict";
  // Picking a date means a custom range: switch the period picker to it.
  var form = document.querySelector(".analytics-filters");
  if (form && form.elements.period) {
    ["start", "end"].forEach(function (name) {
      form.elements[name].addEventListener("change", function () { form.elements.period.value = "custom"; });
    });
  }

  var source = document.getElementById("analytics-charts");
  if (!source || !window.Chart) { return; }
  var specs = JSON.parse(source.textContent);

  function linkAt(spec, element) {
    var row = spec.links && spec.links[element.datasetIndex];
    return row ? row[element.index] : "";
  }

  function axis(spec, title, valueAxis) {
    var options = { stacked: !!spec.stacked, title: { display: !!title, text: title } };
    if (valueAxis) {
      options.beginAtZero = true;
      if (spec.percent) { options.max = 100; options.ticks = { callback: function (v) { return v + "%"; } }; }
    }
    return options;
  }

  specs.forEach(function (spec) {
    var canvas = document.getElementById("chart-" + spec.id);
    if (!canvas) { return; }
    var round = spec.type === "doughnut";
    var datasets = spec.datasets.map(function (d) {
      var set = { label: d.label, data: d.data, backgroundColor: d.color, borderColor: d.color };
      if (d.type === "line") {
        set.type = "line"; set.fill = false; set.pointRadius = 0; set.borderWidth = 2;
        if (d.dash) { set.borderDash = [6, 4]; }
      }
      return set;
    });
    var scales = {};
    if (!round) {
      var valueTitle = spec.y_title, categoryTitle = spec.x_title;
      scales.x = axis(spec, spec.horizontal ? valueTitle : categoryTitle, !!spec.horizontal);
      scales.y = axis(spec, spec.horizontal ? categoryTitle : valueTitle, !spec.horizontal);
    }
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: spec.horizontal ? "y" : "x",
        scales: scales,
        interaction: { mode: "nearest", intersect: true },
        plugins: {
          legend: { position: "bottom", display: datasets.length > 1 || round },
          tooltip: spec.percent ? { callbacks: { label: function (c) {
            return c.dataset.label + ": " + (c.raw === null ? "—" : c.raw + "%");
          } } } : {}
        },
        onHover: function (event, elements) {
          var url = elements.length ? linkAt(spec, elements[0]) : "";
          event.native.target.style.cursor = url ? "pointer" : "default";
        },
        onClick: function (event, elements) {
          var url = elements.length ? linkAt(spec, elements[0]) : "";
          if (url) { window.location.assign(url); }
        }
      }
    });
  });
})();
