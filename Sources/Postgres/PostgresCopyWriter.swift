/// Writes rows of a `COPY … FROM STDIN` in text format; handed to the body of
/// `PostgresConnection.copyFrom`. Not for use outside that body.
public final class PostgresCopyWriter {
    /// Data is sent once this much is buffered.
    static let chunkSize = 64 * 1024

    private let connection: PostgresConnection
    private var buffer: [UInt8] = []
    private var field: [UInt8] = []
    /// Rows written so far.
    public private(set) var rowCount = 0

    init(connection: PostgresConnection) {
        self.connection = connection
        buffer.reserveCapacity(Self.chunkSize + 4096)
    }

    /// Writes one row; `nil` (or an `Optional` that is nil) is NULL.
    nonisolated(nonsending) public func write(row values: [(any PostgresEncodable)?]) async throws {
        for (index, value) in values.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: "\t")) }
            if let value {
                try append(value)
            } else {
                appendNull()
            }
        }
        try await endRow()
    }

    /// Writes one row from typed values, without boxing them.
    nonisolated(nonsending) public func write<each Value: PostgresEncodable>(_ values: repeat each Value) async throws {
        var first = true
        for value in repeat each values {
            if !first { buffer.append(UInt8(ascii: "\t")) }
            first = false
            try append(value)
        }
        try await endRow()
    }

    nonisolated(nonsending) func flush() async throws {
        guard !buffer.isEmpty else { return }
        let chunk = buffer
        buffer.removeAll(keepingCapacity: true)
        try await connection.sendCopyData(chunk)
    }

    nonisolated(nonsending) private func endRow() async throws {
        buffer.append(UInt8(ascii: "\n"))
        rowCount += 1
        if buffer.count >= Self.chunkSize { try await flush() }
    }

    private func appendNull() {
        buffer.append(UInt8(ascii: "\\"))
        buffer.append(UInt8(ascii: "N"))
    }

    private func append<Value: PostgresEncodable>(_ value: Value) throws {
        guard !value.isPostgresNull else { return appendNull() }
        field.removeAll(keepingCapacity: true)
        try value.encodeText(into: &field)
        Self.escape(field, into: &buffer)
    }

    /// COPY text-format escaping: backslash, and the characters that delimit fields and rows.
    static func escape(_ field: [UInt8], into buffer: inout [UInt8]) {
        for byte in field {
            switch byte {
            case UInt8(ascii: "\\"):
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "\t"):
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "t"))
            case UInt8(ascii: "\n"):
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"):
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "r"))
            case 0x08:
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "b"))
            case 0x0B:
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "v"))
            case 0x0C:
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "f"))
            default:
                buffer.append(byte)
            }
        }
    }
}
