import ArgumentParser

/// The number checks of the commands' `validate()`, one wording for every option
/// (`--x must be a whole number of 1 or more, not '0'.`): a usage error, exit 64. A nil value (an option not
/// given) passes.
enum OptionCheck {
    /// A whole number of `minimum` or more.
    static func atLeast(_ value: Int?, _ minimum: Int, _ flag: String) throws {
        if let value, value < minimum {
            throw ValidationError("\(flag) must be a whole number of \(minimum) or more, not '\(value)'.")
        }
    }

    /// A whole number in `range`.
    static func within(_ value: Int?, _ range: ClosedRange<Int>, _ flag: String) throws {
        if let value, !range.contains(value) {
            throw ValidationError(
                "\(flag) must be a whole number from \(range.lowerBound) to \(range.upperBound), not '\(value)'.")
        }
    }

    /// A number from 0 to 1.
    static func fraction(_ value: Double?, _ flag: String) throws {
        if let value, !(0...1).contains(value) {
            throw ValidationError("\(flag) must be a number from 0 to 1, not '\(value)'.")
        }
    }

    /// A finite number of 0 or more (an amount: GPUs, CPUs, milliseconds); `example` follows the message.
    static func amount(_ value: Double?, _ flag: String, example: String? = nil) throws {
        if let value, !(value >= 0 && value.isFinite) {
            throw ValidationError(
                "\(flag) must be a number of 0 or more, not '\(value)'." + (example.map { " Example: \($0)." } ?? ""))
        }
    }

    /// A number of more than 0 and below 10⁹ (`unit` follows the 0: "seconds").
    static func positive(_ value: Double?, _ flag: String, unit: String? = nil) throws {
        if let value, !(value > 0 && value < 1e9) {
            throw ValidationError(
                "\(flag) must be more than 0\(unit.map { " " + $0 } ?? "") and below 1000000000, not '\(value)'.")
        }
    }
}
