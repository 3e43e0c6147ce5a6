// Records on the body element whether every figure decoded and how wide the
// page is, so a headless browser (and a curious reader) can check that the
// self-contained page is complete and fits the window.
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); });
  var body = document.body;
  body.setAttribute("data-images-total", String(images.length));
  body.setAttribute("data-images-broken", broken.map(function (img) { return img.id || img.alt; }).join(" "));
  body.setAttribute("data-page-width", String(document.documentElement.scrollWidth));
  body.setAttribute("data-window-width", String(document.documentElement.clientWidth));
  body.setAttribute("data-images-checked", "true");
});
