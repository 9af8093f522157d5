import Foundation

/// Files only this user may read: tokens, the head's key and certificate, known hosts.
enum PrivateFile {
    /// Writes `bytes` to `path` with mode 0600 from the first byte on (`open` with that mode, then `fchmod` for a
    /// file that existed with a wider one), whatever the umask. With `exclusive`, an existing file is left alone
    /// and `EEXIST` is thrown. A file that could not be written whole is removed.
    ///
    /// - Throws: ``Failure``, the `errno` of the call that failed.
    static func write(_ bytes: [UInt8], to path: String, exclusive: Bool = false) throws(Failure) {
        let flags = O_CREAT | O_WRONLY | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC)
        let descriptor = open(path, flags, 0o600)
        guard descriptor >= 0 else { throw Failure(errorNumber: errno) }
        guard fchmod(descriptor, 0o600) == 0 else {
            let number = errno
            close(descriptor)
            throw Failure(errorNumber: number)
        }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let number = errno
                close(descriptor)
                unlink(path)
                throw Failure(errorNumber: number)
            }
            written += count
        }
        guard close(descriptor) == 0 else {
            let number = errno
            unlink(path)
            throw Failure(errorNumber: number)
        }
    }

    /// A failed system call, by its `errno`.
    struct Failure: Error {
        var errorNumber: Int32
        var alreadyExists: Bool { errorNumber == EEXIST }
        var reason: String { String(cString: strerror(errorNumber)) }
    }
}
