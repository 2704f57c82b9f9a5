// Seeded, splittable randomness.
//
// All randomness in the lab comes from one seed split into named streams, so that drawing
// more numbers in one place shifts nothing elsewhere (ARCHITECTURE.md "Determinism"). A stream is
// counter-based: the i-th draw is a pure function of (key, i). That lets a kernel that
// rounds stochastically give each element its own draw by index, whatever the thread count.

/// The SplitMix64 finaliser: a bijective 64-bit mixer with good avalanche.
@inlinable
public func splitMix64(_ value: UInt64) -> UInt64 {
    var z = value
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// A counter-based stream of 64-bit draws: draw i is `splitMix64(key + (i+1)·γ)` — exactly
/// the SplitMix64 sequence started at `key`.
public struct RandomStream: Sendable, Hashable, RandomNumberGenerator {
    public let key: UInt64
    /// The number of draws taken so far by `next()`.
    public private(set) var counter: UInt64

    @usableFromInline static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    public init(key: UInt64, counter: UInt64 = 0) {
        self.key = key
        self.counter = counter
    }

    /// The stream called `name` under `seed`. Different names give unrelated streams.
    public init(seed: UInt64, name: String) {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 // FNV-1a over the name's UTF-8 bytes
        for byte in name.utf8 {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        self.init(key: splitMix64(seed ^ splitMix64(h)))
    }

    /// The draw at position `index`, without advancing the stream.
    @inlinable
    public func draw(at index: UInt64) -> UInt64 {
        splitMix64(key &+ (index &+ 1) &* RandomStream.gamma)
    }

    /// The next draw.
    public mutating func next() -> UInt64 {
        let value = draw(at: counter)
        counter &+= 1
        return value
    }

    /// A child stream named `name`, independent of this one and of its other children.
    public func split(_ name: String) -> RandomStream {
        RandomStream(seed: key, name: name)
    }

    /// A uniform double in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }
}
