// Renders the webhook payload embedded in the preview page with Microsoft's Adaptive Cards
// renderer and writes what a reviewer must know into <pre id="huntwire-check"> as JSON:
// parse and validation warnings against card version 1.4, console warnings, the links and
// images in the rendered card, and markdown constructs that a markdown-processing client would
// find in TextRun text (which Teams shows as plain text). The Python side reads it back through
// `chromium --dump-dom`.
(function () {
  "use strict";

  const TARGET_VERSION = [1, 4];
  const check = {
    rendered: false,
    cardVersion: null,
    warnings: [],
    console: [],
    links: [],
    images: 0,
    markdownElements: 0,
    textRuns: 0,
    markdownInTextRuns: [],
    height: 0,
  };

  for (const level of ["warn", "error"]) {
    const original = console[level].bind(console);
    console[level] = (...args) => {
      check.console.push(level + ": " + args.map(String).join(" "));
      original(...args);
    };
  }

  function hostConfig() {
    const sizes = { small: 12, default: 14, medium: 17, large: 21, extraLarge: 26 };
    return new AdaptiveCards.HostConfig({
      fontTypes: {
        default: {
          fontFamily: "'Segoe UI', 'Helvetica Neue', 'Liberation Sans', Arial, sans-serif",
          fontSizes: sizes,
          fontWeights: { lighter: 200, default: 400, bolder: 600 },
        },
        monospace: {
          fontFamily: "Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace",
          fontSizes: { small: 12, default: 13, medium: 14, large: 16, extraLarge: 18 },
          fontWeights: { lighter: 200, default: 400, bolder: 600 },
        },
      },
      containerStyles: {
        default: { backgroundColor: "#FFFFFF" },
        emphasis: { backgroundColor: "#F5F5F5" },
        accent: { backgroundColor: "#E8EBFA" },
        good: { backgroundColor: "#E7F2DA" },
        attention: { backgroundColor: "#FDE7E9" },
        warning: { backgroundColor: "#FFF4CE" },
      },
      supportsInteractivity: true,
      spacing: { small: 4, default: 8, medium: 16, large: 20, extraLarge: 30, padding: 16 },
    });
  }

  function collectTextRuns(node, runs) {
    if (Array.isArray(node)) {
      node.forEach((item) => collectTextRuns(item, runs));
    } else if (node && typeof node === "object") {
      if (node.type === "TextRun" && typeof node.text === "string") {
        runs.push(node.text);
      }
      Object.values(node).forEach((value) => collectTextRuns(value, runs));
    }
  }

  function markdownConstructs(markdown, text) {
    // What a client that did apply markdown to this text would create: links, images, HTML.
    const html = markdown.render(text);
    const found = [];
    if (/<a\s/i.test(html)) found.push("link");
    if (/<img\s/i.test(html)) found.push("image");
    return found;
  }

  function render(payload) {
    const attachment = payload.attachments[0];
    if (payload.type !== "message") check.warnings.push("payload type is not 'message'");
    if (attachment.contentType !== "application/vnd.microsoft.card.adaptive") {
      check.warnings.push("attachment is not an Adaptive Card");
    }
    const content = attachment.content;
    check.cardVersion = content.version;

    // A markdown-processing host, as Teams is for TextBlock text.
    const markdown = window.markdownit({ html: false, linkify: false });
    AdaptiveCards.AdaptiveCard.onProcessMarkdown = (text, result) => {
      result.outputHtml = markdown.render(text);
      result.didProcess = true;
    };

    const card = new AdaptiveCards.AdaptiveCard();
    card.hostConfig = hostConfig();
    const context = new AdaptiveCards.SerializationContext(
      new AdaptiveCards.Version(TARGET_VERSION[0], TARGET_VERSION[1]));
    card.parse(content, context);
    for (let i = 0; i < context.eventCount; i++) {
      check.warnings.push("parse: " + context.getEventAt(i).message);
    }
    card.maxVersion = new AdaptiveCards.Version(TARGET_VERSION[0], TARGET_VERSION[1]);
    for (const event of card.validateProperties().validationEvents) {
      check.warnings.push("validate: " + event.message);
    }

    const element = card.render();
    if (!element) {
      check.warnings.push("the renderer produced nothing");
      return;
    }
    document.getElementById("card").appendChild(element);
    check.rendered = true;
    check.links = Array.from(element.querySelectorAll("a[href]"), (a) => a.getAttribute("href"));
    check.images = element.querySelectorAll("img").length;
    check.markdownElements = element.querySelectorAll(
      "strong, em, b, i, h1, h2, h3, ul, ol, code, pre, blockquote, img").length;

    const runs = [];
    collectTextRuns(content, runs);
    check.textRuns = runs.length;
    for (const text of runs) {
      const found = markdownConstructs(markdown, text);
      if (found.length) check.markdownInTextRuns.push({ text: text.slice(0, 200), found });
    }
  }

  try {
    render(JSON.parse(document.getElementById("huntwire-payload").textContent));
  } catch (error) {
    check.warnings.push("error: " + (error && error.message ? error.message : String(error)));
  }
  // Height of the content (not of the window), so the screenshot can be cropped to the card.
  const bottom = document.getElementById("card").getBoundingClientRect().bottom;
  check.height = Math.ceil(bottom + window.scrollY + 20);
  document.getElementById("huntwire-check").textContent = JSON.stringify(check);
})();
