// The usage report's deferred top tables: each <div data-top-src="URL"> is replaced by the table
// its URL renders (the page does not wait for the high-cardinality groupings, see report_page.py).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const slot of document.querySelectorAll("[data-top-src]")) {
    fetch(slot.dataset.topSrc, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return response.text();
      })
      .then((html) => { slot.outerHTML = html; })
      .catch((error) => {
        const help = slot.querySelector(".help");
        if (help) help.textContent = `Could not load this table (${error.message}); reload the page.`;
      });
  }
});
