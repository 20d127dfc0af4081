// Copy buttons: <button data-copy-target="ID"> copies the text of #ID and says so.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  event.preventDefault();
  const text = document.getElementById(button.dataset.copyTarget).textContent.trim();
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {  // no clipboard permission (plain http): select the text so Ctrl+C works
    const range = document.createRange();
    range.selectNodeContents(document.getElementById(button.dataset.copyTarget));
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    document.execCommand("copy");
  }
  const label = button.textContent;
  button.textContent = "Copied";
  button.classList.add("copied");
  setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 2000);
});
