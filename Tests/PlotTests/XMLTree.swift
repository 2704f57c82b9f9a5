import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// An element of a parsed XML document, for counting what an SVG or a page holds.
final class XMLNode {
    let name: String
    let attributes: [String: String]
    var children: [XMLNode] = []
    /// The text directly inside this element.
    var text = ""

    init(name: String, attributes: [String: String]) {
        self.name = name
        self.attributes = attributes
    }

    /// This element and every element below it, in document order.
    var all: [XMLNode] { [self] + children.flatMap(\.all) }

    /// The elements below (and including) this one with the given name.
    func elements(_ name: String) -> [XMLNode] { all.filter { $0.name == name } }

    /// The `<g>` elements whose class is `className`.
    func groups(_ className: String) -> [XMLNode] { elements("g").filter { $0.attributes["class"] == className } }

    /// All text below this element, concatenated.
    var allText: String { text + children.map(\.allText).joined() }

    /// Parses `text` with Foundation's XMLParser; throws when it is not well-formed.
    static func parse(_ text: String) throws -> XMLNode {
        let builder = Builder()
        let parser = XMLParser(data: Data(text.utf8))
        parser.delegate = builder
        guard parser.parse(), let root = builder.root else {
            throw ParseError(message: parser.parserError.map { "\($0)" } ?? "no root element",
                             line: parser.lineNumber)
        }
        return root
    }

    struct ParseError: Error, CustomStringConvertible {
        let message: String
        let line: Int
        var description: String { "not well-formed XML at line \(line): \(message)" }
    }

    private final class Builder: NSObject, XMLParserDelegate {
        var stack: [XMLNode] = []
        var root: XMLNode?

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
                    qualifiedName: String?, attributes: [String: String] = [:]) {
            let node = XMLNode(name: name, attributes: attributes)
            if let parent = stack.last { parent.children.append(node) } else { root = node }
            stack.append(node)
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            stack.removeLast()
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            stack.last?.text += string
        }
    }
}
