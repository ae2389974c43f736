// Progressive enhancement only: the live segment and encoding counter under the reply box.
// Without script the console works the same; the count is then shown after sending.
(function () {
  "use strict";
  var GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENDED = "^{}\\[~]|€\f";
  function count(text) {
    var units = 0, gsm = true, chars = Array.from(text);
    chars.forEach(function (c) {
      if (GSM.indexOf(c) >= 0) { units += 1; }
      else if (EXTENDED.indexOf(c) >= 0) { units += 2; }
      else { gsm = false; }
    });
    if (!gsm) {
      units = 0;
      chars.forEach(function (c) { units += c.codePointAt(0) > 0xffff ? 2 : 1; });
    }
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67;
    var segments = units === 0 ? 0 : units <= single ? 1 : Math.ceil(units / multi);
    return { encoding: gsm ? "GSM-7" : "UCS-2", units: units, segments: segments };
  }
  document.addEventListener("DOMContentLoaded", function () {
    // Due times in the operator's own zone, beside the UTC the server wrote.
    Array.prototype.forEach.call(document.querySelectorAll("time.local"), function (t) {
      var at = new Date(t.getAttribute("datetime"));
      if (!isNaN(at.getTime())) { t.textContent = at.toLocaleString() + " (yours)"; }
    });
    var body = document.getElementById("body"), out = document.getElementById("segments");
    if (!body || !out) { return; }
    function update() {
      var c = count(body.value);
      out.textContent = c.segments + " segment" + (c.segments === 1 ? "" : "s") + " · " +
        c.encoding + " · " + c.units + " characters";
      out.setAttribute("data-segments", String(c.segments));
      out.setAttribute("data-encoding", c.encoding);
    }
    body.addEventListener("input", update);
    update();
  });
})();
