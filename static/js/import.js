// The import page: refuse a too large upload before sending it. The server refuses it anyway
// (evalplatform.middleware answers 413 before reading the body), but a browser sending a large
// body to a server that stopped reading often shows a reset connection instead of that answer.
(() => {
  const form = document.getElementById("upload-form");
  const notice = document.getElementById("upload-too-large");
  if (!form || !notice) return;
  const limitInput = form.querySelector("input[data-max-bytes]");
  const limit = limitInput ? Number(limitInput.dataset.maxBytes) : 0;
  const size = (bytes) =>
    bytes >= 1024 * 1024 ? (bytes / (1024 * 1024)).toFixed(1) + " MB" : (bytes / 1024).toFixed(1) + " KB";
  form.addEventListener("submit", (event) => {
    let total = 0;
    for (const input of form.querySelectorAll("input[type=file]")) {
      for (const file of input.files) total += file.size;
    }
    if (limit && total > limit) {
      event.preventDefault();
      notice.textContent = `The files are ${size(total)} together, over the upload limit of ` +
        `${size(limit)}: split the file and import the parts one after the other.`;
      notice.hidden = false;
    } else {
      notice.hidden = true;
    }
  });
})();
