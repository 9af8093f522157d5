import Foundation

/// Number formatting shared by the library's messages and the `raylan` tables, so that a figure reads the
/// same wherever it is shown.
public enum Formatting {
    /// A whole number without a fraction (`2`), any other exactly as Swift prints it (`0.25`): for values a
    /// person typed or a command takes back (`ray start --num-gpus=0.5`).
    ///
    /// - Parameter value: The number.
    /// - Returns: `"2"` for 2.0, `"0.25"` for 0.25.
    public static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e18 ? String(Int(value)) : String(value)
    }

    /// A whole number without a fraction, any other with `significantDigits` significant digits (C's `%g`):
    /// for measured values in tables.
    ///
    /// - Parameters:
    ///   - value: The number.
    ///   - significantDigits: Digits kept for a number with a fraction.
    /// - Returns: `"3"` for 3.0, `"0.33"` for 1/3 with 2 digits.
    public static func number(_ value: Double, significantDigits: Int) -> String {
        value == value.rounded() && abs(value) < 1e18
            ? String(Int(value)) : String(format: "%.\(significantDigits)g", value)
    }

    /// A byte count in binary units with one decimal: `512 B`, `1.5 KiB`, `2.0 GiB`.
    ///
    /// - Parameter value: Bytes.
    /// - Returns: The count in the largest unit (up to TiB) that keeps it at 1 or more.
    public static func bytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = value
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(Int(value)) B" : String(format: "%.1f %@", value, units[unit])
    }
}
