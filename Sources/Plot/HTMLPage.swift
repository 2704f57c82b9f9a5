// One self-contained HTML page: a report of a lab session, its commands, their outputs and
// figures, readable offline and printable. No external assets (inline CSS, SVGs inline, no
// scripts), no date, so the same blocks give the same bytes. The page is also well-formed XML
// (self-closed void elements, only the five XML entities), so it can be checked by a parser.

import Foundation

/// A report page: a title and blocks in order.
public struct HTMLPage: Sendable, Equatable {
    /// One part of the page.
    public enum Block: Sendable, Equatable {
        /// A section heading.
        case heading(String)
        /// A command as typed, shown in monospace after the prompt.
        case command(String)
        /// A command's output, shown preformatted; ANSI colour sequences are removed.
        case output(String)
        /// An SVG document (e.g. `Figure.svg()`), inlined without its XML declaration. Text that
        /// is not a single `<svg>…</svg>` element is shown escaped instead, never as markup.
        case svg(String)
        /// A paragraph of prose.
        case note(String)
    }

    /// The page's title, in the tab and as its first heading.
    public var title: String
    /// The prompt marker shown before each command (not selected when copying the command).
    public var prompt: String
    /// The blocks, top to bottom.
    public var blocks: [Block]

    /// A page with a title and blocks.
    public init(title: String, prompt: String = "plab>", blocks: [Block] = []) {
        self.title = title
        self.prompt = prompt
        self.blocks = blocks
    }

    /// Adds a block at the end.
    public mutating func append(_ block: Block) {
        blocks.append(block)
    }

    /// The page's CSS: a readable column, monospace for commands and outputs, figures scaled
    /// down to the column but never up.
    static let css = """
        body { margin: 0 auto; max-width: 1140px; padding: 24px 32px 48px; background: #ffffff; color: #222222;
          font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
        h1 { font-size: 24px; margin: 8px 0 16px; }
        h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid #dddddd; padding-bottom: 4px; }
        pre { font: 13px/1.35 "DejaVu Sans Mono", Menlo, Consolas, monospace; margin: 0; white-space: pre; overflow-x: auto; }
        pre.command { margin-top: 16px; padding: 6px 10px; background: #eef2f6; border-left: 3px solid #0072b2; }
        pre.command .prompt { color: #0072b2; user-select: none; }
        pre.output { line-height: normal; padding: 8px 10px; background: #f7f7f7; border-left: 3px solid #cccccc; }
        figure { margin: 12px 0; }
        figure svg { display: block; max-width: 100%; height: auto; }
        p.note { margin: 12px 0; }
        @media print { pre { white-space: pre-wrap; } }
        """

    /// The page as HTML text.
    public func render() -> String {
        let e = Markup.escape
        var out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
        out += "<title>\(e(title))</title>\n<style>\n\(Self.css)\n</style>\n</head>\n<body>\n"
        out += "<h1>\(e(title))</h1>\n"
        for block in blocks {
            switch block {
            case .heading(let text):
                out += "<h2>\(e(text))</h2>\n"
            case .command(let text):
                out += "<pre class=\"command\"><span class=\"prompt\">\(e(prompt)) </span>\(e(text))</pre>\n"
            case .output(let text):
                out += "<pre class=\"output\">\(e(Markup.strippingANSI(Self.withoutFinalNewline(text))))</pre>\n"
            case .svg(let text):
                if let element = Self.inlineSVG(text) {
                    out += "<figure>\n\(element)\n</figure>\n"
                } else {
                    out += "<pre class=\"output\">\(e(text))</pre>\n"
                }
            case .note(let text):
                out += "<p class=\"note\">\(e(text))</p>\n"
            }
        }
        out += "</body>\n</html>\n"
        return out
    }

    private static func withoutFinalNewline(_ text: String) -> String {
        text.hasSuffix("\n") ? String(text.dropLast()) : text
    }

    /// The `<svg>` element of an SVG document, without the XML declaration and the namespace
    /// attribute (HTML puts `<svg>` in its namespace itself); nil when `text` is not one SVG
    /// element, or holds a script or an external reference.
    static func inlineSVG(_ text: String) -> String? {
        var body = Substring(text).drop { $0.isWhitespace }
        if body.hasPrefix("<?xml") {
            guard let end = body.range(of: "?>") else { return nil }
            body = body[end.upperBound...].drop { $0.isWhitespace }
        }
        while body.last?.isWhitespace == true { body = body.dropLast() }
        guard body.hasPrefix("<svg"), body.hasSuffix("</svg>") else { return nil }
        guard Self.tags(of: body).allSatisfy(Self.isSafe) else { return nil }
        return String(body).replacingOccurrences(of: " xmlns=\"http://www.w3.org/2000/svg\"", with: "")
    }

    /// The tags of markup, `<` to `>` (text and attribute values never hold either: escaped).
    private static func tags(of markup: Substring) -> [Substring] {
        var tags: [Substring] = []
        var rest = markup
        while let open = rest.firstIndex(of: "<") {
            guard let close = rest[open...].firstIndex(of: ">") else { tags.append(rest[open...]); break }
            tags.append(rest[open...close])
            rest = rest[rest.index(after: close)...]
        }
        return tags
    }

    /// Whether a tag loads nothing and runs nothing: no script, style or foreign object, no
    /// reference (href, src, url()), no event attribute (onload=…).
    private static func isSafe(_ tag: Substring) -> Bool {
        let tag = tag.lowercased()
        for forbidden in ["<script", "<style", "<foreignobject", "href", "src=", "url(", "@import"] where tag.contains(forbidden) {
            return false
        }
        var rest = tag[...]
        while let r = rest.range(of: " on") {
            let after = rest[r.upperBound...]
            let name = after.prefix { $0.isLetter }
            if !name.isEmpty, after.dropFirst(name.count).first == "=" { return false }
            rest = after
        }
        return true
    }
}
