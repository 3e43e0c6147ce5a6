// The page's only script. (1) A link to an id inside closed <details> opens them, so every
// "provenance" link and every link to a check lands on something visible. (2) "open every
// detail" (and printing) opens them all. (3) On load it records on the body element whether every figure
// decoded and how wide the page is, so a headless browser (and a curious reader) can check
// that the self-contained page is complete and fits the window.
function usegOpenTo(id) {
  var target = id && document.getElementById(id);
  for (var el = target; el; el = el.parentElement) {
    if (el.tagName === "DETAILS") { el.open = true; }
  }
  return target;
}
function usegOpenAll(open) {
  Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = open; });
}
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a[href^='#']");
  if (!link) { return; }
  if (link.id === "expand-all") {
    event.preventDefault();
    var open = link.getAttribute("data-open") !== "true";
    usegOpenAll(open);
    link.setAttribute("data-open", String(open));
    link.textContent = open ? "close every detail" : "open every detail";
    return;
  }
  usegOpenTo(decodeURIComponent(link.getAttribute("href").slice(1)));
});
window.addEventListener("hashchange", function () {
  var target = usegOpenTo(decodeURIComponent(location.hash.slice(1)));
  if (target) { target.scrollIntoView(); }
});
window.addEventListener("beforeprint", function () { usegOpenAll(true); });
window.addEventListener("load", function () {
  if (location.hash) {
    var target = usegOpenTo(decodeURIComponent(location.hash.slice(1)));
    if (target) { target.scrollIntoView(); }
  }
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); });
  var body = document.body;
  body.setAttribute("data-images-total", String(images.length));
  body.setAttribute("data-images-broken", broken.map(function (img) { return img.id || img.alt; }).join(" "));
  body.setAttribute("data-page-width", String(document.documentElement.scrollWidth));
  body.setAttribute("data-window-width", String(document.documentElement.clientWidth));
  body.setAttribute("data-images-checked", "true");
});
