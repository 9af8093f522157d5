/// Text from elsewhere (a job's log) made safe to print on a terminal.
///
/// A remote job writes what it likes into its log; printed as it is, an escape sequence in it could move the
/// cursor over earlier output, clear the screen, set the window's title, write to the clipboard (OSC 52) or
/// pass commands through to a terminal multiplexer. ``strippingControls(from:)`` keeps the printable text
/// and removes every such control.
public enum TerminalText {
    /// `text` without terminal controls: what remains is printable text, newlines and tabs.
    ///
    /// Removed, each with everything that belongs to it:
    /// - CSI sequences, `ESC [` … a final byte in `@`…`~` (colours, cursor moves, erasing);
    /// - string sequences up to their terminator (BEL, `ESC \` or C1 ST), the terminator included: OSC
    ///   `ESC ]` (window title, clipboard, hyperlinks), DCS `ESC P`, SOS `ESC X`, PM `ESC ^` and APC `ESC _`;
    ///   an unterminated one runs to the next newline or the end of `text`;
    /// - any other escape, `ESC` with its intermediate bytes and final byte (`ESC c` resets the terminal);
    /// - the same sequences introduced by a C1 control (U+009B CSI, U+009D OSC, U+0090 DCS, U+0098,
    ///   U+009E, U+009F), and every other C1 control U+0080–U+009F;
    /// - C0 controls other than newline and tab (BEL, backspace, …), and DEL.
    ///
    /// A carriage return becomes a newline (a `\r\n` pair one newline), so that a line written over another
    /// (a progress bar, or text hidden behind later text) shows every state on its own line instead of being
    /// dropped or glued together.
    ///
    /// - Parameter text: the text to print, such as one line of a job's log.
    /// - Returns: the printable text.
    public static func strippingControls(from text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var result = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            index += 1
            switch scalar.value {
            case 0x0A, 0x09:
                result.append(scalar)
            case 0x0D:
                if index < scalars.count, scalars[index].value == 0x0A { index += 1 }
                result.append("\n")
            case 0x1B:
                index = skipEscape(scalars, from: index)
            case 0x9B:
                index = skipControlSequence(scalars, from: index)
            case 0x90, 0x98, 0x9D, 0x9E, 0x9F:
                index = skipString(scalars, from: index)
            case 0x00...0x1F, 0x7F...0x9F:
                break
            default:
                result.append(scalar)
            }
        }
        return String(result)
    }

    /// Past the rest of an escape whose `ESC` ends before `start`.
    private static func skipEscape(_ scalars: [Unicode.Scalar], from start: Int) -> Int {
        guard start < scalars.count else { return start }
        switch scalars[start] {
        case "[": return skipControlSequence(scalars, from: start + 1)
        case "]", "P", "X", "^", "_": return skipString(scalars, from: start + 1)
        default: break
        }
        // nF escapes: intermediate bytes 0x20–0x2F, then one final byte 0x30–0x7E.
        var index = start
        while index < scalars.count, (0x20...0x2F).contains(scalars[index].value) { index += 1 }
        if index < scalars.count, (0x30...0x7E).contains(scalars[index].value) { index += 1 }
        return index
    }

    /// Past a control sequence's parameter and intermediate bytes (0x20–0x3F) and its final byte (0x40–0x7E).
    /// Any other character ends a malformed sequence and is read again as text.
    private static func skipControlSequence(_ scalars: [Unicode.Scalar], from start: Int) -> Int {
        var index = start
        while index < scalars.count {
            let value = scalars[index].value
            if (0x20...0x3F).contains(value) {
                index += 1
            } else if (0x40...0x7E).contains(value) {
                return index + 1
            } else {
                return index
            }
        }
        return index
    }

    /// Past a string sequence's text and its terminator: BEL, `ESC \` or ST (U+009C); a newline ends it too.
    private static func skipString(_ scalars: [Unicode.Scalar], from start: Int) -> Int {
        var index = start
        while index < scalars.count {
            switch scalars[index].value {
            case 0x07, 0x9C:
                return index + 1
            case 0x0A:
                return index  // the text after a newline is kept
            case 0x1B:
                // ESC \ ends the string; an ESC that starts anything else ends it too, and is read again.
                if index + 1 < scalars.count, scalars[index + 1] == "\\" { return index + 2 }
                return index
            default:
                index += 1
            }
        }
        return index
    }
}
