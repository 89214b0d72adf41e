// AdvertiseX console: draws every <figure class="chart" data-chart='{...}'> with uPlot.
// The page carries the data (escaped JSON in an attribute); nothing is fetched, nothing
// inline runs (the Content-Security-Policy allows scripts from this origin only).
(function () {
  "use strict";
  var palette = ["#2563eb", "#dc6803", "#079455", "#c11574", "#6941c6", "#0e9384", "#b42318", "#475467"];

  function draw(figure) {
    var spec;
    try { spec = JSON.parse(figure.getAttribute("data-chart")); } catch (e) { return; }
    if (!spec.x || spec.x.length === 0 || typeof uPlot === "undefined") { return; }
    var data = [spec.x];
    var series = [{}];
    spec.series.forEach(function (s, i) {
      data.push(s.values);
      var color = palette[i % palette.length];
      var one = { label: s.label, stroke: color, width: 1.5, points: { show: spec.x.length < 60 } };
      if (spec.bars) {
        one.fill = color + "55";
        one.paths = uPlot.paths.bars({ size: [0.8, 40] });
        one.points = { show: false };
      }
      series.push(one);
    });
    var width = Math.max(figure.clientWidth - 16, 280);
    var pad = spec.bars ? 1800 : 0;  // half an hour each side, so lone bars keep their width
    var plot = new uPlot({
      width: width, height: 220, series: series, legend: { show: true },
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      scales: {
        x: { time: true },
        y: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } }
      }
    }, data, figure);
    if (pad) {
      plot.setScale("x", { min: spec.x[0] - pad, max: spec.x[spec.x.length - 1] + pad });
    }
    figure.setAttribute("data-drawn", "true");
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(figure.clientWidth - 16, 280), height: 220 });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("figure.chart"), draw);
  });
})();
