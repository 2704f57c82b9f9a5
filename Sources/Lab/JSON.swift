// JSON for `--json` reports: the deterministic writer of the JSON module
// (`JSONValue`, `JSONObject`), shared by every command. This file keeps the shell's own
// number text for people (tables, CSV, settings), which drops `.0` from integers.

/// A finite double as text: integers below 2^53 without a fraction (`12`), others as the
/// shortest decimal that reads back as the same double (`0.1`, `1e-05`).
func numberText(_ x: Double) -> String {
    if x == x.rounded(), abs(x) < 0x1p53 { return String(Int64(x)) }
    return x.description
}
