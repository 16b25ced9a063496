import ArgumentParser
import Foundation
import VisitorCounter

struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Print the built-in index page template, a start for --index-template; or check a template file.",
        discussion: """
            The figures a template gets are listed in docs/http.md under \"Your own index page\" \
            (/usr/share/doc/visitor-counter/docs/http.md when installed).
            """
    )

    @Option(help: "Parse this template as serve would, and say whether it can be used.")
    var check: String?

    func run() throws {
        guard let check else {
            print(IndexTemplate.standardText, terminator: "")
            return
        }
        let template: IndexTemplate
        do {
            template = try IndexTemplate(contentsOf: check)
        } catch {
            throw CommandError(error.description)
        }
        if template.contentSecurityPolicy == nil {
            print("\(check): the template parses, but an inline <script> or <style> holds a Mustache tag: serve needs --index-csp for it")
        } else {
            print("\(check): the template parses")
        }
    }
}
