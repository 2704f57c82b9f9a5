@testable import Plot
import Testing

@Suite struct TicksTests {
}
