/// How `GET /` is rendered: the template and, for a site owner's template, their own policy.
public struct IndexPage: Sendable {
    public var template: IndexTemplate
    /// `--index-csp`, in place of the template's own policy.
    public var contentSecurityPolicy: String?

    public init(template: IndexTemplate = .standard, contentSecurityPolicy: String? = nil) {
        self.template = template
        self.contentSecurityPolicy = contentSecurityPolicy
    }
}
